"""Every registered model family through one door: train, save/load, resume, CLI, benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hyperim.api import HyperIM
from hyperim.baselines.frequency import FrequencyBaseline
from hyperim.config import TrainConfig
from hyperim.data import LabelIndex, load_dataset
from hyperim.errors import HyperIMError
from hyperim.metrics import evaluate_scores
from hyperim.models import family_names, get_family
from hyperim.train import train

COMMON = dict(max_len=24, min_count=1, batch_size=16, lr=1e-2, negatives=3, checkpoint_every=3)
#: Small options per family, from random starts (pre-training has tests of its own).
SMALL = {
    "hyperim": dict(n_balls=4, ball_dim=2, label_init="random", word_init="random"),
    "euclidean": dict(dim=8, label_init="random", word_init="random"),
    "sleec": dict(dim=8, learners=2, cluster_size=80, k=5),
    "exam": dict(word_dim=8, hidden_dim=8, label_dim=16, word_init="random"),
    "dxml": dict(dim=8, word_dim=8, hidden_dim=16, word_init="random", walks_per_label=4),
    "hrdgcnn": dict(nodes=32, word_dim=8, word_init="random"),
    "hmcnf": dict(word_dim=8, filters=8, bottleneck=16, hidden=16, word_init="random"),
}

#: Training options per family for the learning test (default: 8 epochs at COMMON's).
SMALL_TRAIN: dict[str, dict] = {}
#: Families without per-word scores (``word_label_scores`` is None): no evidence words.
WITHOUT_EVIDENCE: set[str] = {"sleec", "hrdgcnn", "hmcnf"}


def config(family: str, **kw) -> TrainConfig:
    return TrainConfig.of(**{"model": family, **COMMON, **SMALL[family], **kw})


def test_every_family_has_small_test_options() -> None:
    assert set(SMALL) == set(family_names())
    for name in family_names():
        f = get_family(name)
        assert f.model_class.model_type == name and f.model_class.config_class is f.config_class


@pytest.mark.parametrize("family", sorted(SMALL))
def test_family_learns_saves_and_loads_exactly(
    family: str, tiny_dataset: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    # without label_bias: from its zero start of W^e the tiny data needs 20 epochs
    # (tests/test_train.py::test_learns_beyond_label_frequency)
    fields = {f.name for f in get_family(family).config_class.option_fields()}
    no_bias = {"label_bias": False} if "label_bias" in fields else {}
    cfg = config(family, **({"epochs": 8, "patience": 20} | SMALL_TRAIN.get(family, {}) | no_bias))
    summary = train(tiny_dataset, run, cfg, progress=False)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    if "fit_losses" in log[0]:  # fitted in closed form: its solver's objective falls
        assert len(log) == 1 and log[0]["fit_losses"][-1] < log[0]["fit_losses"][0] / 10
    else:
        assert log[-1]["train_loss"] < log[0]["train_loss"]  # it learns
    m = HyperIM.from_pretrained(run)
    assert m.model_type == family
    points = m.model.label_points()  # what plot and the server's disk draw
    assert points is not None or not m.model.words_in_label_space
    if points is not None:
        assert points[0] in ("poincare", "euclidean") and points[1].shape[0] == len(m.labels)
    assert json.loads((run / "model" / "config.json").read_text())["model_type"] == family
    ds = load_dataset(tiny_dataset)
    texts = [d.tokens for d in ds.test]
    truth = [set(m.labels.encode(d.labels)) for d in ds.test]
    ours = evaluate_scores(m.predict_proba(texts), truth)
    index = LabelIndex(ds.labels)
    freq = FrequencyBaseline().fit([index.encode(d.labels) for d in ds.train], len(index))
    prior = evaluate_scores(
        freq.predict_proba(len(texts)), [set(index.encode(d.labels)) for d in ds.test]
    )
    assert ours["nDCG@3"] > prior["nDCG@3"] + 5, (ours, prior)  # beats label frequency
    assert summary["best_epoch"] >= 1
    # save/load: identical scores, evidence words from the document
    m.save_pretrained(tmp_path / "saved")
    again = HyperIM.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(m.predict_proba(texts), again.predict_proba(texts))
    preds = again.predict(["cat kitten meow and the dog"], k=2, evidence=2)[0]
    assert len(preds) == 2
    assert all(set(p.evidence) <= {"cat", "kitten", "meow", "and", "the", "dog"} for p in preds)
    if family not in WITHOUT_EVIDENCE:  # a family with per-word scores names its evidence
        assert all(p.evidence for p in preds)
    # top-k streaming over label chunks equals the full matrix
    tokens, mask = torch.randint(2, len(m.vocab), (3, 7)), torch.ones(3, 7, dtype=torch.bool)
    full = m.model.score_all(tokens, mask)
    values, ids = m.model.topk(tokens, mask, 3, label_chunk=2)
    torch.testing.assert_close(values, full.topk(3).values)
    torch.testing.assert_close(full.gather(1, ids), values)
    # subset scoring equals the chunked scores of the same labels
    enc = m.model.encode_batch(tokens, mask)
    sub = m.model.score_subset(enc, ids)
    torch.testing.assert_close(sub, values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "family", [f for f in sorted(SMALL) if get_family(f).model_class.trained_by_gradients]
)
def test_family_resumes_after_interruption(
    family: str, tiny_dataset: Path, tmp_path: Path, interrupt_adam
) -> None:
    cfg = config(family, epochs=2, patience=9)
    train(tiny_dataset, tmp_path / "straight", cfg, progress=False)
    interrupt_adam(10 + 4)  # 10 steps per epoch: dies at step 4 of epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(tiny_dataset, tmp_path / "broken", cfg, progress=False)
    interrupt_adam(None)
    train(None, tmp_path / "broken", resume=True, progress=False)
    # the last state, epoch 2 included, bit for bit (same threads, same kernels)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "broken" / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_trains_and_predicts_every_family(tiny_dataset: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hyperim", *args], capture_output=True, text=True, timeout=600
        )

    common = ["--max-len", "24", "--batch-size", "16", "--negatives", "3", "--epochs", "1"]
    common += ["--eval-batch-size", "7"]
    flags = {
        "hyperim": [
            "--n-balls",
            "3",
            "--label-init",
            "random",
            "--word-init",
            "random",
            "--no-label-bias",
            "--phi",
            "identity",
        ],
        "euclidean": ["--dim", "6", "--label-init", "hierarchy", "--word-init", "random"],
        "sleec": ["--dim", "6", "--learners", "2", "--cluster-size", "80"],
        "exam": [
            "--word-dim",
            "6",
            "--hidden-dim",
            "4",
            "--label-dim",
            "12",
            "--word-init",
            "glove",
        ],
        "dxml": [
            "--dim",
            "6",
            "--hidden-layers",
            "1",
            "--word-init",
            "random",
            "--label-trainable",
        ],
        "hrdgcnn": ["--nodes", "32", "--word-dim", "8", "--recursive-reg", "0.01"],
        "hmcnf": ["--word-dim", "6", "--filters", "4", "--hidden", "8", "--word-init", "random"],
    }
    for family, extra in flags.items():
        out = tmp_path / family
        p = run(
            "train",
            "--model",
            family,
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            *common,
            *extra,
        )
        assert p.returncode == 0, p.stderr
        cfg = json.loads((out / "model" / "config.json").read_text())
        assert cfg["model_type"] == family
        assert json.loads((out / "run.json").read_text())["config"]["eval_batch_size"] == 7
        if family == "hyperim":
            assert (cfg["model"]["n_balls"], cfg["model"]["label_bias"]) == (3, False)
            assert cfg["model"]["phi"] == "identity"
        elif family == "euclidean":
            assert cfg["model"]["dim"] == 6 and (out / "pretrained").is_dir()
        elif family == "sleec":  # the data fixed its sizes: 160 documents, 2 clusters
            assert (cfg["model"]["learners"], cfg["model"]["n_train"]) == (2, 160)
            assert cfg["model"]["n_clusters"] == 2
        elif family == "exam":
            assert (cfg["model"]["word_dim"], cfg["model"]["label_dim"]) == (6, 12)
            assert list((out / "pretrained").glob("words.euclidean-glove.6d.npz"))
        elif family == "dxml":
            assert (cfg["model"]["dim"], cfg["model"]["label_trainable"]) == (6, True)
            assert list((out / "pretrained").glob("labels.deepwalk.6d.*.npz"))
        elif family == "hrdgcnn":  # GloVe on the training split; the hierarchy's 4 edges
            assert cfg["model"]["recursive_reg"] == 0.01 and cfg["model"]["n_edges"] == 4
            assert list((out / "pretrained").glob("words.euclidean-glove.8d.npz"))
        elif family == "hmcnf":
            assert (cfg["model"]["hidden"], cfg["model"]["level_sizes"]) == (8, [2, 4])
        p = run("predict", "--model", str(out), "--json", "cat kitten meow")
        assert p.returncode == 0, p.stderr
        assert len(json.loads(p.stdout)["labels"]) == 5
        p = run(
            "predict",
            "--model",
            str(out),
            "--input",
            str(tiny_dataset / "test.jsonl"),
            "--output",
            str(tmp_path / f"{family}.jsonl"),
            "--evidence",
            "1",
        )
        assert p.returncode == 0, p.stderr
        assert len((tmp_path / f"{family}.jsonl").read_text().splitlines()) == 40
        p = run("evaluate", "--model", str(out), "--json")
        assert p.returncode == 0 and "nDCG@5" in json.loads(p.stdout), p.stderr
    # an option of another family is refused with one line, nothing written
    p = run("train", "--model", "euclidean", "--out", str(tmp_path / "x"), "--n-balls", "3")
    assert p.returncode == 2 and "no such option --n-balls for model euclidean" in p.stderr
    assert not (tmp_path / "x").exists()
    p = run("models", "euclidean")
    assert p.returncode == 0 and "--dim" in p.stdout


def test_a_model_saved_before_families_still_loads(tiny_dataset: Path, tmp_path: Path) -> None:
    """config.json without model_type, label_bias as the model's own tensor, defaults of then."""
    train(tiny_dataset, tmp_path / "run", config("hyperim", epochs=1), progress=False)
    m = HyperIM.from_pretrained(tmp_path / "run")
    want = m.predict_proba(["cat and dog", "a saw"])
    d = tmp_path / "legacy"
    m.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    for key in ("model_type", "files"):
        cfg.pop(key)
    for key in ("label_init", "word_init", "wordnet_dir", "word_dropout"):  # came later
        cfg["model"].pop(key)
    (d / "config.json").write_text(json.dumps(cfg))
    state = load_file(str(d / "model.safetensors"))
    state["label_bias"] = state.pop("head.label_bias")
    save_file(state, str(d / "model.safetensors"))
    old = HyperIM.from_pretrained(d)
    assert old.model_type == "hyperim"
    assert old.model.config.word_dropout == 0.0  # it trained without (default of then)
    np.testing.assert_array_equal(old.predict_proba(["cat and dog", "a saw"]), want)


def test_a_corrupted_saved_model_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    from hyperim.errors import DataError

    train(tiny_dataset, tmp_path / "run", config("euclidean", epochs=1), progress=False)
    path = tmp_path / "run" / "model" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"model\.safetensors: does not match the size"):
        HyperIM.from_pretrained(tmp_path / "run")


def test_flat_toml_of_the_earlier_version_still_works(tmp_path: Path) -> None:
    p = tmp_path / "old.toml"
    p.write_text('[train]\nepochs = 8\nn_balls = 5\nphi = "identity"\nlabel_bias = false\n')
    cfg = TrainConfig.from_toml(p).validate()
    assert cfg.model == "hyperim" and cfg.epochs == 8
    assert cfg.model_options == {"n_balls": 5, "phi": "identity", "label_bias": False}
    mc = cfg.model_config()
    assert (mc.n_balls, mc.phi, mc.label_bias) == (5, "identity", False)
    # the new layout: [train] + [model]
    p.write_text('[train]\nmodel = "euclidean"\nepochs = 2\n[model]\ndim = 12\n')
    cfg = TrainConfig.from_toml(p).validate()
    assert (cfg.model, cfg.model_config().dim) == ("euclidean", 12)
    p.write_text('[train]\nmodel = "euclidean"\n[model]\nn_balls = 12\n')
    with pytest.raises(HyperIMError, match=r"unknown option\(s\) n_balls in \[model\]"):
        TrainConfig.from_toml(p)
    p.write_text('[train]\nmodel = "euclidean"\n[model]\ndim = "12"\n')
    with pytest.raises(HyperIMError, match="option dim must be int"):
        TrainConfig.from_toml(p)


def test_benchmark_and_ablation_commands(tiny_dataset: Path, tmp_path: Path) -> None:
    from hyperim.benchmark import (
        ablation_entries,
        parse_models,
        run_entries,
        write_ablation,
        write_benchmark,
    )

    entries = parse_models("hyperim,euclidean,tfidf,frequency")
    for e in entries:
        if e.model in SMALL:
            e.options |= COMMON | SMALL[e.model]
    out = tmp_path / "bench"
    results = run_entries(entries, tiny_dataset, out, seeds=2, epochs=1, log=lambda m: None)
    assert len(results) == 8 and not any("error" in r for r in results)
    table = write_benchmark(results, out, "tiny").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows] == [
        "model",
        "hyperim",
        "euclidean",
        "tfidf",
        "frequency",
    ]
    assert "±" in rows[1]  # two seeds: mean ± std
    # resumable: a second call trains nothing again
    seen: list[str] = []
    again = run_entries(entries, tiny_dataset, out, seeds=2, epochs=1, log=seen.append)
    assert len(seen) == 8 and all("done before" in s for s in seen)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in results]
    # a failing entry is reported in its row, the others go on
    bad = parse_models("euclidean,frequency")
    bad[0].options |= COMMON | SMALL["euclidean"] | {"word_init": str(tmp_path / "nope.txt")}
    res = run_entries(bad, tiny_dataset, tmp_path / "bad", epochs=1, log=lambda m: None)
    assert "error" in res[0] and "metrics" in res[1]
    assert "failed:" in write_benchmark(res, tmp_path / "bad", "bad").read_text()
    # the ablation: four variants by dimension, a table and a plot
    abl = ablation_entries([2, 4], word_init="random")
    for e in abl:
        e.options |= COMMON
    res = run_entries(abl, tiny_dataset, tmp_path / "abl", epochs=1, log=lambda m: None)
    assert len(res) == 8 and not any("error" in r for r in res)
    md, png = write_ablation(res, tmp_path / "abl", "tiny")
    text = md.read_text()
    for v in ("E-rand", "E-hier", "H-rand", "H-hier"):
        assert f"| {v} |" in text
    assert "| variant | 2-D | 4-D |" in text and png.stat().st_size > 10_000
    with pytest.raises(HyperIMError, match="dimension must be even"):
        ablation_entries([3])
    with pytest.raises(HyperIMError, match="unknown nope"):
        parse_models("hyperim,nope")


def test_euclidean_starts_from_a_glove_file(tiny_dataset: Path, tmp_path: Path) -> None:
    from hyperim.models.euclidean import EuclideanIMModel
    from hyperim.train import build_model, prepare, training_data

    glove = tmp_path / "vectors.txt"  # the GloVe text format: word x1 ... xd, no header
    glove.write_text("cat " + " ".join(["0.5"] * 8) + "\nDrill " + " ".join(["-1"] * 8) + "\n")
    cfg = config("euclidean", word_init=str(glove), label_init="hierarchy").validate()
    prep = prepare(tiny_dataset, cfg)
    model = build_model(cfg, len(prep.vocab), len(prep.labels))
    assert isinstance(model, EuclideanIMModel)
    before = model.words.detach().clone()
    said: list[str] = []
    data = training_data(prep, cfg, tmp_path / "run")
    data.log = said.append
    model.init_from_data(data)
    words = model.words.detach()
    assert torch.equal(words[prep.vocab.token_to_id("cat")], torch.full((8,), 0.5))
    assert torch.equal(words[prep.vocab.token_to_id("drill")], torch.full((8,), -1.0))
    changed = (words != before).any(1)
    assert int(changed.sum()) == 2  # the words the file lacks keep their random start
    assert any(f"2/{len(prep.vocab)} words found" in s for s in said)
    # E-hier: parents and their children closer than unrelated labels, cached for a resume
    lab = {name: model.labels[prep.labels.index(name)].detach() for name in prep.labels.labels}
    near = (lab["animal"] - lab["animal::cat"]).norm()
    far = (lab["tool"] - lab["animal::cat"]).norm()
    assert near < far
    assert list((tmp_path / "run" / "pretrained").glob("labels.euclidean-hierarchy.*.npz"))
    # a file of another dimension is one line naming both
    bad = config("euclidean", word_init=str(glove), dim=5).validate()
    model = build_model(bad, len(prep.vocab), len(prep.labels))
    with pytest.raises(HyperIMError, match="dimension 8 for a model of dim 5"):
        model.init_from_data(training_data(prep, bad, tmp_path / "run2"))


def test_benchmark_through_the_cli(tiny_dataset: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "hyperim", *args], capture_output=True, text=True, timeout=600
        )

    out = tmp_path / "b"
    common = ["--data", str(tiny_dataset), "--out", str(out)]
    p = run(
        "benchmark",
        *common,
        "--models",
        "euclidean,frequency",
        "--epochs",
        "1",
        "--option",
        "dim=4",
        "--option",
        "word_init=random",
        "--option",
        "max_len=24",
    )
    assert p.returncode == 0, p.stderr
    assert "| euclidean |" in p.stdout and "| frequency |" in p.stdout
    assert (out / "results.md").read_text() == p.stdout
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    for args, needle in (
        (["--models", "euclidean,nope", "--epochs", "1"], "unknown nope"),
        (["--models", "frequency"], "give --epochs N or --budget MINUTES"),
        (["--models", "frequency", "--epochs", "1", "--option", "n_balls=2"], "n_balls"),
    ):
        p = run("benchmark", *common, *args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert needle in p.stderr
    p = run("ablation", *common, "--dims", "2,3", "--epochs", "1")
    assert p.returncode == 2 and "dimension must be even" in p.stderr


def test_trainer_honours_a_family_that_scores_every_label_and_reads_sizes_from_data(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scores_every_label: all labels, no sampled negatives, no logit offset;
    config_for_data: the data fixes a size before the model is built, saved in config.json."""
    from dataclasses import replace

    from hyperim.models.euclidean import EuclideanIMModel

    seen: list[object] = []
    forward = EuclideanIMModel.forward

    def spy(self, tokens, mask, labels=None, targets=None, target_mask=None):
        seen.append(labels)
        return forward(self, tokens, mask, labels, targets, target_mask)

    def sized(cls, config, data):  # e.g. a size the hierarchy fixes
        return replace(config, dim=len(data.labels) + 1)

    monkeypatch.setattr(EuclideanIMModel, "scores_every_label", True)
    monkeypatch.setattr(EuclideanIMModel, "config_for_data", classmethod(sized))
    monkeypatch.setattr(EuclideanIMModel, "forward", spy)
    train(tiny_dataset, tmp_path / "run", config("euclidean", epochs=1), progress=False)
    assert seen and all(x is None for x in seen)  # negatives=3 in COMMON: not sampled
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["model"]
    n_labels = len(load_dataset(tiny_dataset).labels)
    assert saved["logit_offset"] == 0.0 and saved["dim"] == n_labels + 1
    monkeypatch.undo()
    again = HyperIM.from_pretrained(tmp_path / "run")  # loads without the data
    assert again.model.config.dim == n_labels + 1
