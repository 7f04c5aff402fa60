"""Decision thresholds chosen on validation scores (hyperim.thresholds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyperim.metrics import f1_scores
from hyperim.thresholds import (
    GRID,
    LabelThresholds,
    best_global,
    best_per_label,
    choose_thresholds,
    close_under_ancestors,
    dense_truth,
)


def scored(n: int = 400, c: int = 6, seed: int = 0):
    """Labels whose positives score around a label-specific level (rarer labels lower)."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, c)) < np.linspace(0.4, 0.05, c)
    centre = np.linspace(0.7, 0.2, c)  # where a label's positives score
    noise = 0.1 * rng.standard_normal((n, c))
    s = np.where(y, centre, centre - 0.25) + noise  # negatives just below their positives
    return np.clip(s, 0, 1), y


def sets_of(y: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(r).tolist() for r in y]


def test_global_threshold_is_the_grid_value_with_the_best_micro_f1() -> None:
    s, y = scored()
    t = best_global(s, y)
    f1 = {g: f1_scores(LabelThresholds("x", np.full(6, g)).label_sets(s), sets_of(y), 6)["micro_f1"]
          for g in GRID}  # fmt: skip
    assert f1[t] == max(f1.values())
    assert t in GRID


def test_per_label_threshold_maximises_each_labels_f1() -> None:
    s, y = scored()
    values = best_per_label(s, y, fallback=0.5, min_support=1)

    def f1(j: int, t: float) -> float:
        pred = s[:, j] >= t
        return 2 * (pred & y[:, j]).sum() / (pred.sum() + y[:, j].sum())

    for j in range(s.shape[1]):
        assert f1(j, values[j]) >= max(f1(j, t) for t in GRID) - 1e-12
    # rarer labels (lower scores) get lower thresholds
    assert values[-1] < values[0]


def test_rare_labels_fall_back_and_per_label_beats_global_on_macro_f1() -> None:
    s, y = scored(seed=1)
    few = y.copy()
    few[:, 5] = False
    few[:3, 5] = True  # 3 positives: below min_support
    th = choose_thresholds(s, sets_of(few), "per-label", min_support=5)
    assert th.values[5] == th.notes["global"] and th.notes["tuned_labels"] == 5
    s2, y2 = scored(seed=2)  # fresh data from the same source: does it generalise?
    per = choose_thresholds(s, sets_of(y), "per-label")
    glob = choose_thresholds(s, sets_of(y), "global")
    macro = {
        name: f1_scores(t.label_sets(s2), sets_of(y2), 6)["macro_f1"]
        for name, t in (("per", per), ("global", glob))
    }
    assert macro["per"] > macro["global"]


def test_auto_picks_per_label_where_labels_differ_and_a_shared_one_where_they_are_noise() -> None:
    """``auto`` cross-validates the policies inside the split: labels whose positives score
    at label-specific levels need their own thresholds; labels the model barely ranks (pure
    noise, a weak model) would each be predicted for far too many documents by their own
    F1-maximising threshold, so one shared threshold wins there."""
    s, y = scored(n=600)
    th = choose_thresholds(s, sets_of(y), "auto", levels=np.zeros(6, int))
    assert th.policy == "per-label" and th.notes["auto"]["chosen"] == "per-label"
    assert set(th.notes["auto"]["2-fold"]) == {"fixed", "global", "per-level", "per-label"}
    assert np.array_equal(th.values, choose_thresholds(s, sets_of(y), "per-label").values)
    rng = np.random.default_rng(3)
    good = y[:, :1]  # one label ranked well, five labels scored at random
    noise_y = np.concatenate([good, rng.random((600, 5)) < 0.1], axis=1)
    noise_s = np.concatenate([s[:, :1], 0.3 * rng.random((600, 5))], axis=1)
    weak = choose_thresholds(noise_s, sets_of(noise_y), "auto")
    assert weak.policy != "per-label", weak.notes
    assert "per-level" not in weak.notes["auto"]["2-fold"]  # no levels: not a candidate


def test_per_level_and_fixed() -> None:
    s, y = scored()
    levels = np.array([0, 0, 1, 1, 2, -1])
    th = choose_thresholds(s, sets_of(y), "per-level", levels=levels)
    assert th.values[0] == th.values[1] and th.values[2] == th.values[3]
    assert th.values[5] == th.notes["global"]
    assert th.values[4] < th.values[0]  # the deep, low-scoring level cuts lower
    fixed = choose_thresholds(s, sets_of(y), "fixed", fixed=0.3)
    assert (fixed.values == 0.3).all()
    with pytest.raises(ValueError, match="policy"):
        choose_thresholds(s, sets_of(y), "nosuch")
    with pytest.raises(ValueError, match="levels"):
        choose_thresholds(s, sets_of(y), "per-level")


def test_round_trip_and_ancestor_closure() -> None:
    s, y = scored()
    th = choose_thresholds(s, sets_of(y), "per-label", closure=True)
    again = LabelThresholds.from_dict(th.to_dict())
    assert again.policy == th.policy and again.closure and (again.values == th.values).all()
    ancestors = [[], [0], [0, 1], [], [3], []]  # 2 -> 1 -> 0, 4 -> 3
    assert close_under_ancestors([[2], [4, 5], []], ancestors) == [[0, 1, 2], [3, 4, 5], []]
    sets = again.label_sets(s, ancestors)
    for row in sets:
        for label in row:
            assert set(ancestors[label]) <= set(row)
    assert dense_truth([[1], []], 3).tolist() == [[False, True, False], [False, False, False]]
    with pytest.raises(ValueError, match="thresholds"):
        again.label_sets(s[:, :3])


def test_training_saves_validation_thresholds_that_predict_and_evaluate_use(
    tiny_dataset, tmp_path
) -> None:
    import json

    from hyperim.api import HyperIM
    from hyperim.config import TrainConfig
    from hyperim.errors import DataError
    from hyperim.train import train

    cfg = TrainConfig.of(
        epochs=2, n_balls=4, max_len=24, min_count=1, batch_size=16, lr=1e-2, negatives=3,
        word_init="random", threshold_policy="per-label", threshold_min_support=2,
        label_closure=True,
    )  # fmt: skip
    train(tiny_dataset, tmp_path / "run", cfg, progress=False)
    m = HyperIM.from_pretrained(tmp_path / "run")
    assert m.thresholds is not None and m.thresholds.policy == "per-label"
    assert m.thresholds.values.shape == (len(m.labels),) and m.thresholds.closure
    texts = ["my puppy will bark at the kitten", "a drill and a saw"]
    sets = m.predict_labels(texts)
    for labels in sets:  # closed: "animal::dog" brings "animal"
        for label in labels:
            if "::" in label:
                assert label.split("::")[0] in labels, labels
    probs = m.predict_proba(texts)
    assert m.label_sets(probs, threshold=0.5) == [np.flatnonzero(r >= 0.5).tolist() for r in probs]
    truth = [{0}, {1}]
    metrics = m.metrics(probs, truth)
    assert "micro_f1@0.5" in metrics and "macro_f1@0.5" in metrics
    assert "micro_f1@0.5" not in m.metrics(probs, truth, threshold=0.5)
    m.save_pretrained(tmp_path / "copy")  # round trip keeps them
    again = HyperIM.from_pretrained(tmp_path / "copy")
    assert (again.thresholds.values == m.thresholds.values).all()
    assert again.predict_labels(texts) == sets
    config = json.loads((tmp_path / "copy" / "config.json").read_text())
    config["thresholds"]["values"] = config["thresholds"]["values"][:2]
    (tmp_path / "copy" / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="thresholds for"):
        HyperIM.from_pretrained(tmp_path / "copy")


def test_baselines_take_the_same_thresholds_in_the_cli_and_the_benchmark(
    tiny_dataset, tmp_path
) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "HYPERIM_COMPILE": "0", "OMP_NUM_THREADS": "1"}

    def cli(*args: str) -> dict:
        p = subprocess.run([sys.executable, "-m", "hyperim", *args], capture_output=True,
                           text=True, env=env, timeout=600)  # fmt: skip
        assert p.returncode == 0, p.stderr
        return p

    p = cli("baseline", "tfidf", "--data", str(tiny_dataset), "--json",
            "--threshold-policy", "per-label", "--label-closure")  # fmt: skip
    metrics = json.loads(p.stdout)
    assert {"micro_f1", "macro_f1", "micro_f1@0.5", "macro_f1@0.5"} <= set(metrics)
    out = tmp_path / "bench"
    cli("benchmark", "--data", str(tiny_dataset), "--out", str(out), "--models",
        "frequency,hyperim", "--epochs", "1", "--option", "threshold_policy=global",
        "--option", "n_balls=2", "--option", "word_init=random")  # fmt: skip
    rows = {json.loads(x)["model"]: json.loads(x) for x in
            (out / "results.jsonl").read_text().splitlines()}  # fmt: skip
    for name in ("frequency", "hyperim"):
        assert "micro_f1@0.5" in json.dumps(rows[name]), rows[name]


def test_per_label_in_chunks_equals_all_at_once(monkeypatch) -> None:
    import hyperim.thresholds as T

    s, y = scored(n=300, c=6, seed=3)
    whole = best_per_label(s, y, fallback=0.4, min_support=1)
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 600)  # two labels at a time
    assert (best_per_label(s, y, fallback=0.4, min_support=1) == whole).all()


def test_early_stopping_on_the_blend_of_ranking_and_label_sets(tiny_dataset, tmp_path) -> None:
    import json

    from hyperim.config import TrainConfig
    from hyperim.train import train

    cfg = TrainConfig.of(
        epochs=2, n_balls=4, max_len=24, min_count=1, batch_size=16, negatives=3,
        word_init="random", metric="blend", patience=5,
    )  # fmt: skip
    summary = train(tiny_dataset, tmp_path / "run", cfg, progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    for r in log:  # per-label by default: the tuned label sets' macro-F1 goes into the blend
        v = r["valid"]
        assert v["blend"] == pytest.approx((v["nDCG@5"] + v["macro_f1_tuned"]) / 2)
    best = max(log, key=lambda r: r["valid"]["blend"])
    assert summary["best_epoch"] == best["epoch"] and summary["blend"] == best["valid"]["blend"]


def test_predict_output_carries_the_label_set(tiny_dataset, tmp_path) -> None:
    from hyperim.api import HyperIM
    from hyperim.config import TrainConfig
    from hyperim.inference import predict_file
    from hyperim.train import train

    cfg = TrainConfig.of(
        epochs=2, n_balls=4, max_len=24, min_count=1, batch_size=16, lr=1e-2, negatives=3,
        word_init="random", label_closure=True,
    )  # fmt: skip
    train(tiny_dataset, tmp_path / "run", cfg, progress=False)
    m = HyperIM.from_pretrained(tmp_path / "run")
    texts = ["my puppy will bark at the kitten", "a drill and a saw", "nothing known"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    predict_file(m, tmp_path / "in.txt", tmp_path / "out.jsonl", k=6)  # k = every label
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    # with k covering every label, the set is the model's label set
    assert [sorted(r["set"]) for r in records] == [sorted(s) for s in m.predict_labels(texts)]
