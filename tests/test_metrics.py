"""Tests of hyperim.metrics on hand-computed cases, plus property tests."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperim.metrics import (
    METRIC_KEYS,
    StreamingEvaluator,
    evaluate_scores,
    f1_scores,
    format_table,
    ranking_metrics,
    threshold_sets,
    top_k,
)

LOG2, LOG3, LOG4 = math.log(2), math.log(3), math.log(4)


def test_ranking_hand_case() -> None:
    # truth {0, 2}, ranking [2, 1, 0, 3, 4]: hits at ranks 1 and 3.
    m = ranking_metrics(np.array([[2, 1, 0, 3, 4]]), [{0, 2}])
    assert m["P@1"] == pytest.approx(100.0)  # y[2] = 1
    assert m["P@3"] == pytest.approx(100 * 2 / 3)  # (1 + 0 + 1) / 3
    assert m["P@5"] == pytest.approx(100 * 2 / 5)  # (1 + 0 + 1 + 0 + 0) / 5
    # DCG = 1/log2 + 1/log4; ideal DCG (|y| = 2 < k) = 1/log2 + 1/log3
    ndcg = (1 / LOG2 + 1 / LOG4) / (1 / LOG2 + 1 / LOG3)  # = 0.9197...
    assert m["nDCG@3"] == pytest.approx(100 * ndcg)
    assert m["nDCG@5"] == pytest.approx(100 * ndcg)  # no further hits, same ideal
    assert list(m) == ["P@1", "P@3", "P@5", "nDCG@3", "nDCG@5"]


def test_ranking_fewer_true_labels_than_k() -> None:
    # truth {3}, ranking [0, 3, 1, 2, 4]: one hit at rank 2.
    m = ranking_metrics([[0, 3, 1, 2, 4]], [[3]])
    assert m["P@1"] == 0.0
    assert m["P@3"] == pytest.approx(100 / 3)
    assert m["P@5"] == pytest.approx(100 / 5)  # P@5 can never reach 1 with one true label
    # DCG = 1/log3; ideal DCG = 1/log2 (only min(k, |y|) = 1 term)
    assert m["nDCG@3"] == pytest.approx(100 * LOG2 / LOG3)
    assert m["nDCG@5"] == pytest.approx(100 * LOG2 / LOG3)
    # a perfect ranking of a single label reaches nDCG 100 but P@5 only 20
    m = ranking_metrics([[3, 0, 1, 2, 4]], [[3]])
    assert m["nDCG@5"] == pytest.approx(100.0)
    assert m["P@5"] == pytest.approx(20.0)


def test_ranking_no_true_labels_scores_zero_and_counts() -> None:
    # doc 0: perfect (all 100); doc 1: no true labels (all 0) -> every mean is 50.
    m = ranking_metrics([[0, 1, 2], [0, 1, 2]], [{0, 1, 2}, set()], ks=(1, 3))
    assert m == pytest.approx({"P@1": 50.0, "P@3": 50.0, "nDCG@3": 50.0})


def test_ranking_short_rows_count_missing_as_wrong() -> None:
    # ranking [2] only, truth {0, 2}: P@3 = 1/3, P@5 = 1/5; DCG = 1/log2
    m = ranking_metrics([[2]], [[0, 2]])
    assert m["P@1"] == pytest.approx(100.0)
    assert m["P@3"] == pytest.approx(100 / 3)
    assert m["P@5"] == pytest.approx(20.0)
    assert m["nDCG@5"] == pytest.approx(100 * (1 / LOG2) / (1 / LOG2 + 1 / LOG3))


def test_ranking_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        ranking_metrics([[0]], [{0}, {1}])


def test_top_k_ties_break_by_lower_index() -> None:
    scores = np.array([[0.5, 0.9, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1], [0.0, 0.3, 0.7, 0.3]])
    assert top_k(scores, 2).tolist() == [[1, 0], [0, 1], [2, 1]]
    assert top_k(scores, 3).tolist() == [[1, 0, 2], [0, 1, 2], [2, 1, 3]]
    assert top_k(scores, 10).shape == (3, 4)  # k clipped to C


def test_top_k_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([[0.1, np.nan]]), 1)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 8),
    c=st.integers(1, 30),
    k=st.integers(1, 35),
    levels=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_top_k_matches_stable_argsort(n: int, c: int, k: int, levels: int, seed: int) -> None:
    # few distinct values -> many ties, also at the top-k boundary
    scores = np.random.default_rng(seed).integers(0, levels, size=(n, c)).astype(np.float32)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top_k(scores, k), expected)


def test_f1_hand_case() -> None:
    truth = [{0, 1}, {1}, {2}]
    predicted = [{0}, {1, 2}, {3}]
    # label 0: tp 1, pred 1, true 1 -> F1 = 2*1/(1+1) = 1
    # label 1: tp 1 (doc 1), pred 1, true 2 -> F1 = 2*1/(1+2) = 2/3
    # label 2: tp 0, pred 1, true 1 -> 0;  label 3: tp 0, pred 1, true 0 -> 0
    # macro = (1 + 2/3 + 0 + 0) / 4 = 5/12; micro = 2*TP/(#pred + #true) = 2*2/(4+4) = 1/2
    m = f1_scores(predicted, truth, n_labels=4)
    assert m["micro_f1"] == pytest.approx(50.0)
    assert m["macro_f1"] == pytest.approx(100 * 5 / 12)
    # labels 4 and 5 occur nowhere: undefined F1, excluded, so macro is unchanged
    assert f1_scores(predicted, truth, n_labels=6) == pytest.approx(m)


def test_f1_edge_cases() -> None:
    assert f1_scores([set(), set()], [set(), set()], 3) == {"micro_f1": 0.0, "macro_f1": 0.0}
    assert f1_scores([[1, 1]], [[1]], 2) == pytest.approx({"micro_f1": 100.0, "macro_f1": 100.0})
    with pytest.raises(ValueError, match="out of range"):
        f1_scores([[3]], [[0]], 3)
    with pytest.raises(ValueError):
        f1_scores([[0]], [[0], [1]], 3)


def test_threshold_sets() -> None:
    scores = np.array([[0.5, 0.49, 0.9], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]])
    assert threshold_sets(scores) == [[0, 2], [], [0, 1, 2]]
    assert threshold_sets(scores, 0.95) == [[], [], [0, 1, 2]]


def test_evaluate_scores_and_format_table() -> None:
    scores = np.array([[0.9, 0.2, 0.6, 0.1, 0.0, 0.3], [0.1, 0.8, 0.3, 0.7, 0.2, 0.0]])
    truth = [{0, 2}, {3}]
    m = evaluate_scores(scores, truth)
    assert tuple(m) == METRIC_KEYS
    # doc 0: ranking [0, 2, 5, ...] -> P@1 1; doc 1: ranking [1, 3, ...] -> P@1 0
    assert m["P@1"] == pytest.approx(50.0)
    # predicted {0, 2} and {1, 3}: TP 3, #pred 4, #true 3 -> micro 6/7;
    # per label: 0 -> 1, 1 -> 0, 2 -> 1, 3 -> 1 -> macro 3/4
    assert m["micro_f1"] == pytest.approx(100 * 6 / 7)
    assert m["macro_f1"] == pytest.approx(75.0)
    table = format_table({"model-a": m, "b": {"P@1": 1.0}})
    lines = table.splitlines()
    assert len(lines) == 3 and all(key in lines[0] for key in METRIC_KEYS)
    assert "50.00" in lines[1] and "85.71" in lines[1]
    assert lines[2].split() == ["b", "1.00", *["-"] * 6]


@st.composite
def _eval_data(draw: st.DrawFn) -> tuple[np.ndarray, list[set[int]], list[int]]:
    n = draw(st.integers(1, 30))
    c = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scores = rng.random((n, c)).round(1)  # rounding makes ties
    truth = [set(np.flatnonzero(rng.random(c) < 0.3).tolist()) for _ in range(n)]
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return scores, truth, cuts


@settings(max_examples=50, deadline=None)
@given(_eval_data())
def test_streaming_equals_batch(data: tuple[np.ndarray, list[set[int]], list[int]]) -> None:
    scores, truth, cuts = data
    c = scores.shape[1]
    batch = evaluate_scores(scores, truth)
    evaluator, other = StreamingEvaluator(c), StreamingEvaluator(c)
    bounds = [0, *cuts, len(truth)]
    for lo, hi in itertools.pairwise(bounds):
        part = scores[lo:hi]
        evaluator.update(top_k(part, 5), truth[lo:hi], threshold_sets(part))
        other.update_scores(part, truth[lo:hi])
    assert evaluator.result() == batch  # exactly, not approximately
    assert other.result() == batch


def test_streaming_empty() -> None:
    assert StreamingEvaluator(3).result() == dict.fromkeys(METRIC_KEYS, 0.0)
