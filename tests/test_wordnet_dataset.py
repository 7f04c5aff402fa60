"""The WordNet gloss dataset, built from the real WordNet 3.0: labels, filter, split, hierarchy,
determinism, loading, and the ``hyperim data wordnet`` verb."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hyperim.data import load_dataset
from hyperim.data.wordnet import WordNet
from hyperim.data.wordnet_dataset import build_wordnet_dataset
from hyperim.errors import HyperIMError
from tests.test_wordnet import real_wordnet

DEPTH, MIN_DOCS, MAX_DOCS = 3, 50, 2000
SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def wn() -> WordNet:
    return real_wordnet()  # skipped where WordNet is missing (a failure on CI)


def build(wn: WordNet, out: Path, seed: int = 0) -> dict:
    return build_wordnet_dataset(
        out, wn, depth=DEPTH, min_docs=MIN_DOCS, max_docs=MAX_DOCS, seed=seed
    )


@pytest.fixture(scope="module")
def built(wn: WordNet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("wordnet") / "ds"
    return out, build(wn, out)


def read_split(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]


def test_gloss_and_depth(wn: WordNet) -> None:
    assert wn.gloss("dog.n.01").startswith("a member of the genus Canis")
    assert wn.gloss("dog.n.01").endswith('"the dog barked all night"')
    assert wn.depth("entity.n.01") == 0
    assert wn.depth("physical_entity.n.01") == 1
    assert wn.depth("dog.n.01") == 8


def test_labels_are_frequent_ancestors_in_depth_range(wn: WordNet, built: tuple) -> None:
    out, summary = built
    docs = [d for split in SPLITS for d in read_split(out, split)]
    assert len(docs) == summary["documents"] == MAX_DOCS - summary["dropped_documents"]
    assert len({d["id"] for d in docs}) == len(docs)
    counts = Counter(label for d in docs for label in d["labels"])
    assert "entity.n.01" not in counts
    assert len(counts) == summary["labels"]
    assert min(counts.values()) >= MIN_DOCS
    for d in docs:
        assert d["text"] == wn.gloss(d["id"]) and d["text"]
        assert d["labels"] == sorted(d["labels"]) and d["labels"]
        in_range = {a for a in wn.hypernym_closure(d["id"]) if 1 <= wn.depth(a) <= DEPTH}
        assert set(d["labels"]) == in_range & set(counts)
        for dropped in in_range - set(counts):  # dropped for being rare in the sample
            assert counts[dropped] < MIN_DOCS
    assert sum(summary["labels_per_depth"].values()) == summary["labels"]
    assert {int(k) for k in summary["labels_per_depth"]} <= set(range(1, DEPTH + 1))


def test_split_sizes(built: tuple) -> None:
    out, summary = built
    sizes = {split: len(read_split(out, split)) for split in SPLITS}
    assert sizes == summary["splits"]
    n = sum(sizes.values())
    for split, share in zip(SPLITS, (0.7, 0.1, 0.2), strict=True):
        assert abs(sizes[split] - share * n) <= 1


def test_hierarchy_is_direct_hypernyms_between_kept_labels(wn: WordNet, built: tuple) -> None:
    out, summary = built
    lines = (out / "hierarchy.tsv").read_text().splitlines()
    assert lines == sorted(set(lines))
    edges = [tuple(line.split("\t")) for line in lines]
    labels = {label for split in SPLITS for d in read_split(out, split) for label in d["labels"]}
    assert all(len(e) == 2 and e[0] in labels and e[1] in labels for e in edges)
    assert set(edges) == {(p, c) for c in labels for p in wn.hypernyms(c) if p in labels}
    assert len(edges) == summary["edges"]


def test_loads_with_the_project_loader(built: tuple) -> None:
    out, summary = built
    ds = load_dataset(out)
    assert [len(ds.train), len(ds.valid), len(ds.test)] == list(summary["splits"].values())
    assert ds.hierarchy is not None
    assert len(ds.labels) == summary["labels"] and ds.report.labels_missing_from_hierarchy == 0
    assert len(ds.hierarchy.edges) == summary["edges"]
    assert ds.hierarchy.roots == sorted(ds.hierarchy.roots)
    assert all(ds.hierarchy.depth(r) == 0 for r in ds.hierarchy.roots)
    assert "physical_entity.n.01" in ds.hierarchy.roots
    meta = json.loads((out / "meta.json").read_text())
    assert meta["options"]["depth"] == DEPTH and meta["documents"] == summary["documents"]
    assert (out / "README.md").is_file()


def test_deterministic_by_seed(wn: WordNet, built: tuple, tmp_path: Path) -> None:
    out, _ = built
    build(wn, tmp_path / "same")
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "hierarchy.tsv", "meta.json"):
        assert (tmp_path / "same" / name).read_bytes() == (out / name).read_bytes(), name
    build(wn, tmp_path / "other", seed=1)
    assert (tmp_path / "other" / "test.jsonl").read_bytes() != (out / "test.jsonl").read_bytes()


def test_refuses_bad_options_and_non_empty_out(wn: WordNet, tmp_path: Path) -> None:
    with pytest.raises(HyperIMError, match="--depth must be >= 1"):
        build_wordnet_dataset(tmp_path / "a", wn, depth=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(HyperIMError, match="not empty"):
        build_wordnet_dataset(tmp_path / "full", wn)
    with pytest.raises(HyperIMError, match="no training documents"):
        build_wordnet_dataset(tmp_path / "b", wn, min_docs=10**6, max_docs=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing half-written
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hyperim", "data", "wordnet", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_cli_writes_a_dataset_into_an_empty_folder(wn: WordNet, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()  # an existing empty folder is fine
    p = cli("--out", str(out), "--depth", "2", "--max-docs", "500", "--seed", "3")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1 and "train 350 / valid 50 / test 100 documents" in lines[0]
    assert "labels (depth 1-2)" in lines[0] and "edges" in lines[0]
    ds = load_dataset(out)
    assert len(ds.train) == 350 and ds.hierarchy is not None
    assert json.loads((out / "meta.json").read_text())["options"]["seed"] == 3


def test_cli_refuses_a_non_empty_out(wn: WordNet, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("{}\n")
    p = cli("--out", str(tmp_path))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert "not empty" in lines[0] and str(tmp_path) in lines[0]
    assert (tmp_path / "train.jsonl").read_text() == "{}\n"


def test_the_written_folder_has_a_normal_folders_permissions(tmp_path: Path) -> None:
    """atomic_directory fills a mkdtemp folder (mode 0700); the folder renamed into place gets
    the mode mkdir would give it, so a dataset or saved model is not private to its writer."""
    from hyperim.atomic import atomic_directory

    umask = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "made") as tmp:
            (tmp / "f.txt").write_text("x\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "made" / "f.txt").read_text() == "x\n"
    assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == 0o755
