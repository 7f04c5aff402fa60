"""Synthetic hierarchical datasets: deterministic, loadable, ancestor-closed, informative."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from hyperim.baselines import FrequencyBaseline, TfidfBaseline
from hyperim.data import load_dataset
from hyperim.data.synthetic import (
    PRESETS,
    SyntheticConfig,
    _level_sizes,
    generate_synthetic,
    pseudo_words,
)
from hyperim.errors import HyperIMError
from hyperim.metrics import evaluate_scores

SMALL = SyntheticConfig(labels=40, docs=300, depth=3, vocab_size=400, doc_length=30)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", SMALL)
    b = generate_synthetic(tmp_path / "b", SMALL)
    generate_synthetic(tmp_path / "c", SMALL.updated(seed=1))
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "hierarchy.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/train.jsonl").read_bytes() != (tmp_path / "c/train.jsonl").read_bytes()
    assert {k: v for k, v in a.items() if k not in ("path", "files", "seconds")} == {
        k: v for k, v in b.items() if k not in ("path", "files", "seconds")
    }
    # gzip output is byte-identical too (no time stamp) and holds the same documents
    generate_synthetic(tmp_path / "g1", SMALL.updated(gz=True))
    generate_synthetic(tmp_path / "g2", SMALL.updated(gz=True))
    g1 = (tmp_path / "g1/train.jsonl.gz").read_bytes()
    assert g1 == (tmp_path / "g2/train.jsonl.gz").read_bytes()
    assert gzip.decompress(g1) == (tmp_path / "a/train.jsonl").read_bytes()


def test_loads_with_requested_sizes_and_closed_labels(tmp_path: Path) -> None:
    summary = generate_synthetic(tmp_path / "d", SMALL)
    ds = load_dataset(tmp_path / "d")
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (240, 30, 30)
    assert summary["splits"] == {"train": 240, "valid": 30, "test": 30}
    assert len(ds.labels) == 40 and ds.hierarchy is not None
    assert len(ds.hierarchy.labels) == 40 and ds.report.warnings() == []
    assert sum(summary["levels"]) == 40 and len(summary["levels"]) == 3
    assert set(ds.hierarchy.roots) == {f"L1_{i}" for i in range(summary["levels"][0])}
    for label in ds.labels:  # L<level>_<i>: level = depth + 1
        assert ds.hierarchy.depth(label) == int(label[1 : label.index("_")]) - 1
    leaves = {x for x in ds.labels if not ds.hierarchy.children(x)}
    n_labels = 0
    for doc in ds.train + ds.valid + ds.test:
        labels = set(doc.labels)
        assert labels and doc.tokens
        for label in labels:
            assert ds.hierarchy.ancestors(label) <= labels
        assert labels & leaves  # every document carries at least one leaf
        n_labels += len(labels)
    assert n_labels / 300 == pytest.approx(summary["mean_labels"])
    assert summary["mean_tokens"] == pytest.approx(30, rel=0.15)
    meta = json.loads((tmp_path / "d" / "synthetic.json").read_text())
    assert meta["config"] == SMALL.to_dict()


def test_leaf_only_labels_and_gz(tmp_path: Path) -> None:
    cfg = SMALL.updated(ancestor_closed=False, gz=True, labels_per_doc=2.0)
    summary = generate_synthetic(tmp_path / "d", cfg)
    ds = load_dataset(tmp_path / "d")
    assert ds.files.train.name == "train.jsonl.gz"
    leaves = {x for x in ds.labels if not ds.hierarchy.children(x)}
    assert all(set(d.labels) <= leaves for d in ds.train)
    assert 1.5 < summary["mean_labels"] <= 2.0
    before = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()}
    for again in (cfg, cfg.updated(gz=False)):  # never over a dataset, either compression
        with pytest.raises(HyperIMError, match="already holds a dataset"):
            generate_synthetic(tmp_path / "d", again)
    assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()} == before


def test_level_sizes_and_scale() -> None:
    for n, depth, b in [(36_504, 5, None), (103, 4, None), (10, 4, 3.0), (3, 5, None), (7, 1, 2)]:
        sizes = _level_sizes(n, depth, b)
        assert sum(sizes) == n and min(sizes) >= 1 and len(sizes) == min(depth, n)
    sizes = _level_sizes(36_504, 4, None)
    assert sizes == sorted(sizes)  # geometric growth
    words = pseudo_words(6000)
    assert len(set(words)) == 6000 and all(w.isalpha() and w.islower() for w in words)
    assert PRESETS["wikilshtc"].labels == 36_504 and PRESETS["rcv1"].labels == 103
    with pytest.raises(HyperIMError, match="labels_per_doc"):
        SyntheticConfig(labels_per_doc=0.5).validate()


def test_text_is_informative(tmp_path: Path) -> None:
    cfg = SyntheticConfig(labels=30, docs=900, depth=3, vocab_size=1000, doc_length=40, seed=3)
    generate_synthetic(tmp_path / "d", cfg)
    ds = load_dataset(tmp_path / "d")
    index = {x: i for i, x in enumerate(ds.labels)}
    train_y = [[index[x] for x in d.labels] for d in ds.train]
    test_y = [{index[x] for x in d.labels} for d in ds.test]
    texts = [" ".join(d.tokens) for d in ds.train]
    tfidf = TfidfBaseline(ngram_range=(1, 1), min_df=1).fit(texts, train_y, len(index))
    scores = tfidf.predict_proba([" ".join(d.tokens) for d in ds.test])
    freq = FrequencyBaseline().fit(train_y, len(index)).predict_proba(len(ds.test))
    m_tfidf, m_freq = evaluate_scores(scores, test_y), evaluate_scores(freq, test_y)
    assert m_tfidf["nDCG@5"] > m_freq["nDCG@5"] + 20, (m_tfidf, m_freq)
    assert m_tfidf["P@3"] > m_freq["P@3"] + 20
    # the hierarchy matters: siblings' documents share words (their ancestors' topics),
    # documents of labels under different top-level labels much less
    vocab = {w: i for i, w in enumerate(sorted({t for d in ds.train for t in d.tokens}))}
    profile = {}
    for label in ds.labels:
        docs = [d for d in ds.train if label in d.labels]
        if len(docs) >= 5 and not ds.hierarchy.children(label):
            ids = [vocab[t] for d in docs for t in d.tokens]
            profile[label] = np.bincount(ids, minlength=len(vocab)) / len(ids)
    mean = np.mean(list(profile.values()), axis=0)
    unit = {x: (v - mean) / np.linalg.norm(v - mean) for x, v in profile.items()}
    root = {x: min(ds.hierarchy.ancestors(x) | {x}, key=ds.hierarchy.depth) for x in unit}
    sib, far = [], []
    for a in unit:
        for b in unit:
            if a < b:
                sim = float(unit[a] @ unit[b])
                if ds.hierarchy.parents(a) == ds.hierarchy.parents(b):
                    sib.append(sim)
                elif root[a] != root[b]:
                    far.append(sim)
    assert sib and far and np.mean(sib) > np.mean(far) + 0.2, (np.mean(sib), np.mean(far))
