"""Decision thresholds chosen on validation scores (hyperim.thresholds)."""

from __future__ import annotations

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
