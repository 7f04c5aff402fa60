"""Pre-trained starting points wired into training (H-hier) and the `hyperim pretrain` verbs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hyperim.config import TrainConfig
from hyperim.errors import DataError, HyperIMError
from hyperim.pretrain.io import load_embeddings, save_embeddings
from hyperim.train import build_model, prepare, training_data

SMALL = dict(n_balls=4, ball_dim=2, max_len=24, min_count=1)


def load_pretrained(model, cfg, prep, run_dir: Path) -> None:
    model.init_from_data(training_data(prep, cfg, run_dir))


def model_and_prep(data: Path, **options):
    cfg = TrainConfig.of(**SMALL, **options).validate()
    prep = prepare(data, cfg)
    return cfg, prep, build_model(cfg, len(prep.vocab), len(prep.labels))


def test_hierarchy_init_loads_the_cached_embedding(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg, prep, model = model_and_prep(tiny_dataset, label_init="hierarchy")
    load_pretrained(model, cfg, prep, tmp_path)
    cache = tmp_path / "pretrained" / "labels.hierarchy.txt"
    names, points = load_embeddings(cache)
    assert sorted(names) == sorted(prep.labels.labels)  # every label is in the hierarchy
    for name, point in zip(names, points, strict=True):
        row = model.labels.weight[prep.labels.index(name)]
        torch.testing.assert_close(row, point.to(row), rtol=0, atol=1e-7)
    stats = json.loads(cache.with_name(cache.name + ".stats.json").read_text())
    assert stats["reconstruction"]["map"] > 0.9  # a 6-node tree is reconstructed
    # a second run (a resume before the first checkpoint) reuses the cache, not a new fit
    before = cache.stat().st_mtime_ns
    load_pretrained(model, cfg, prep, tmp_path)
    assert cache.stat().st_mtime_ns == before


def test_word_file_fills_known_rows_only(tiny_dataset: Path, tmp_path: Path) -> None:
    _, prep, _ = model_and_prep(tiny_dataset)
    words = ["cat", "drill", "not-in-vocab"]
    pts = torch.full((3, 4, 2), 0.25, dtype=torch.float64)
    save_embeddings(tmp_path / "w.txt", words, pts, "riemannian")
    cfg, _, model = model_and_prep(tiny_dataset, word_init=str(tmp_path / "w.txt"))
    before = model.words.weight.detach().clone()
    load_pretrained(model, cfg, prep, tmp_path / "run")
    after = model.words.weight.detach()
    for w in ("cat", "drill"):
        assert torch.allclose(after[prep.vocab.token_to_id(w)], torch.tensor(0.25))
    changed = (after != before).flatten(1).any(1)
    assert int(changed.sum()) == 2  # the other words keep their random start


def test_bad_init_options_are_one_line_errors(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(HyperIMError, match="--word-init 'glovee'"):
        TrainConfig.of(word_init="glovee").validate()
    save_embeddings(tmp_path / "3d.txt", ["cat"], torch.zeros(1, 1, 3), "sum")
    cfg, prep, model = model_and_prep(tiny_dataset, word_init=str(tmp_path / "3d.txt"))
    with pytest.raises(HyperIMError, match=r"1x3D does not match the model's 4x2D"):
        load_pretrained(model, cfg, prep, tmp_path / "run")
    outside = tmp_path / "outside.txt"
    outside.write_text("1 2\ncat 0.9 0.9\n")
    cfg, prep, model = model_and_prep(tiny_dataset, word_init=str(outside))
    with pytest.raises(DataError, match=r"outside.txt:2:"):
        load_pretrained(model, cfg, prep, tmp_path / "run2")


def test_flat_dataset_cannot_use_hierarchy_init(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for split in ("train", "valid", "test"):
        (flat / f"{split}.jsonl").write_text('{"text": "a b", "labels": ["x"]}\n')
    cfg, prep, model = model_and_prep(flat, label_init="hierarchy")
    with pytest.raises(HyperIMError, match="no label hierarchy"):
        load_pretrained(model, cfg, prep, tmp_path / "run")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hyperim", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_pretrain_labels(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.txt"
    done = run_cli(
        "pretrain", "labels", "--hierarchy", str(tiny_dataset / "hierarchy.tsv"),
        "--out", str(out), "--dim", "4", "--n-balls", "2", "--epochs", "20", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["map"] > 0.9 and result["mean_rank"] >= 1
    header, *rows = out.read_text().splitlines()
    assert header == "6 4" and len(rows) == 6  # word2vec text format
    assert json.loads((tmp_path / "labels.txt.json").read_text())["n_balls"] == 2
    cyclic = tmp_path / "cyclic.tsv"
    cyclic.write_text("a\tb\nb\tc\nc\ta\n")
    done = run_cli("pretrain", "labels", "--hierarchy", str(cyclic), "--out", str(out))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "cycle" in done.stderr


def test_glove_and_wordnet_word_init(tiny_dataset: Path, tmp_path: Path) -> None:
    from tests.test_wordnet import real_wordnet

    real_wordnet()  # skips (or fails on CI) without WordNet 3.0
    cfg, prep, model = model_and_prep(tiny_dataset, word_init="glove+wordnet")
    before = model.words.weight.detach().clone()
    load_pretrained(model, cfg, prep, tmp_path)
    cache = tmp_path / "pretrained"
    assert (cache / "words.glove.txt").exists()  # plain GloVe kept for `--word-init glove`
    stats = json.loads((cache / "words.glove-wordnet.txt.stats.json").read_text())
    assert stats["wordnet"]["n_pairs"] >= 1  # e.g. (canine, dog) are both in the vocabulary
    assert stats["glove"]["nnz"] > 0
    after = model.words.weight.detach()
    assert (after[2:] != before[2:]).flatten(1).any(1).all()  # every real word moved
    assert bool((after.norm(dim=-1) < 1).all())


def test_auto_label_init_follows_the_dataset(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg, prep, model = model_and_prep(tiny_dataset, label_init="auto")
    load_pretrained(model, cfg, prep, tmp_path / "a")
    assert (tmp_path / "a" / "pretrained" / "labels.hierarchy.txt").exists()
    flat = tmp_path / "flat"
    flat.mkdir()
    for split in ("train", "valid", "test"):
        (flat / f"{split}.jsonl").write_text('{"text": "a b", "labels": ["x"]}\n')
    cfg, prep, model = model_and_prep(flat, label_init="auto")
    before = model.labels.weight.detach().clone()
    load_pretrained(model, cfg, prep, tmp_path / "b")  # no hierarchy: random, no error
    assert torch.equal(model.labels.weight.detach(), before)


def test_cli_pretrain_words(tiny_dataset: Path, tmp_path: Path) -> None:
    from tests.test_wordnet import real_wordnet

    real_wordnet()
    out = tmp_path / "words.txt"
    args = ["pretrain", "words", "--data", str(tiny_dataset), "--out", str(out)]
    done = run_cli(*args, "--n-balls", "3", "--epochs", "3", "--min-count", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["wordnet"]["n_pairs"] >= 1 and result["glove"]["nnz"] > 0
    names, points = load_embeddings(out)
    assert names[:2] == ["<pad>", "<unk>"] and points.shape == (result["words"], 3, 2)
    missing = run_cli(*args, "--wordnet-dir", str(tmp_path / "no-wordnet"))
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "WordNet directory not found" in (
        missing.stderr
    )
