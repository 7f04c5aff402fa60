"""Tests of the frequency and TF-IDF baselines on a tiny synthetic corpus."""

from __future__ import annotations

import numpy as np
import pytest

from hyperim.baselines import FrequencyBaseline, TfidfBaseline, label_frequencies, tune_tfidf
from hyperim.metrics import evaluate_scores

TOPICS = [
    "python interpreter bytecode module",
    "game player level graphics",
    "network socket server protocol",
]
N_LABELS = 5  # 0-2: topics; 3: never present; 4: on every document


def _corpus(n: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """Each document mixes 1-2 topics' words with shared filler words."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        topics = sorted(rng.choice(3, size=rng.integers(1, 3), replace=False).tolist())
        vocab = " ".join(TOPICS[t] for t in topics).split() + ["the", "a", "free", "tool"] * 2
        texts.append(" ".join(rng.choice(vocab, size=12)).upper())  # vectorizer lowercases
        labels.append([*topics, 4])
    return texts, labels


def test_label_frequencies_and_frequency_baseline() -> None:
    labels = [[0, 1], [0], [0, 0, 2]]  # duplicates count once per document
    np.testing.assert_allclose(label_frequencies(labels, 4), [1, 1 / 3, 1 / 3, 0])
    proba = FrequencyBaseline().fit(labels, 4).predict_proba(2)
    assert proba.shape == (2, 4) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, [[1, 1 / 3, 1 / 3, 0]] * 2, rtol=1e-6)
    with pytest.raises(RuntimeError):
        FrequencyBaseline().predict_proba(1)


def test_tfidf_beats_frequency_and_handles_constant_labels() -> None:
    train_x, train_y = _corpus(60, seed=0)
    test_x, test_y = _corpus(30, seed=1)
    model = TfidfBaseline(min_df=1, C=4.0).fit(train_x, train_y, N_LABELS)
    proba = model.predict_proba(test_x)
    assert proba.shape == (30, N_LABELS) and proba.dtype == np.float32
    assert ((proba >= 0) & (proba <= 1)).all()
    # label 3 has no positive, label 4 no negative: constant training frequency
    np.testing.assert_array_equal(proba[:, 3], 0.0)
    np.testing.assert_array_equal(proba[:, 4], 1.0)
    tfidf = evaluate_scores(proba, test_y, ks=(1, 3))
    freq = evaluate_scores(
        FrequencyBaseline().fit(train_y, N_LABELS).predict_proba(30), test_y, ks=(1, 3)
    )
    assert tfidf["P@3"] > freq["P@3"] + 10
    assert tfidf["nDCG@3"] > freq["nDCG@3"] + 10
    assert tfidf["macro_f1"] > freq["macro_f1"]
    # threaded fit gives the same model
    parallel = TfidfBaseline(min_df=1, C=4.0, n_jobs=2).fit(train_x, train_y, N_LABELS)
    np.testing.assert_allclose(parallel.predict_proba(test_x), proba, rtol=1e-6)


def test_tune_tfidf_picks_best_validation_ndcg() -> None:
    train_x, train_y = _corpus(60, seed=0)
    valid_x, valid_y = _corpus(20, seed=2)
    grid = {"C": [0.01, 4.0], "min_df": [1]}
    best, scores = tune_tfidf(train_x, train_y, valid_x, valid_y, N_LABELS, grid)
    assert [p for p, _ in scores] == [{"C": 0.01, "min_df": 1}, {"C": 4.0, "min_df": 1}]
    assert best == max(scores, key=lambda s: s[1]["nDCG@5"])[0]
    assert best["C"] == 4.0


def test_tfidf_errors() -> None:
    with pytest.raises(ValueError):
        TfidfBaseline().fit(["a b"], [[0], [1]], 2)
    with pytest.raises(RuntimeError):
        TfidfBaseline().predict_proba(["a"])
