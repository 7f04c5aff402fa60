"""Evaluation metrics for multi-label classification: P@k, nDCG@k, micro/macro-F1.

Ranking metrics follow Eq. (8) of the paper.  For a document with ground-truth label set
``y`` and ranking ``r`` (label indices by descending score)::

    P@k    = (1/k) * sum_{i=1..k} y[r_i]
    nDCG@k = (sum_{i=1..k} y[r_i] / log(i+1)) / (sum_{i=1..min(k,|y|)} 1 / log(i+1))

Both are averaged over **all** documents; a document with no true labels scores 0 for both
(its ideal DCG is 0, so nDCG is undefined and counted as 0 rather than dropped).  Every
metric is reported as a percentage (x100).

Everything is plain numpy and works from label indices, so the same code scores any model.
:class:`StreamingEvaluator` accumulates batch by batch, so evaluating over a huge label set
never needs the full (N, C) score matrix.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

import numpy as np

METRIC_KEYS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "micro_f1", "macro_f1")

LabelSets = Sequence[Collection[int]]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores of each row, in descending score order.

    Uses a partial partition (O(C) per row) plus a sort of the ``k`` winners.  Ties are
    broken by the lower label index, including at the top-k boundary, so the result is
    deterministic and equal to a stable full sort of ``-scores``.

    Parameters
    ----------
    scores : np.ndarray
        Score matrix of shape (N, C); must not contain NaN.
    k : int
        Number of labels to keep; clipped to C.

    Returns
    -------
    np.ndarray
        Integer array of shape (N, min(k, C)).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, C), got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n, c = scores.shape
    k = min(k, c)
    if n == 0:
        return np.empty((0, k), dtype=np.int64)
    # k-th largest value of each row; keep everything above it, then the lowest-index ties.
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    keep = scores > kth
    n_needed = k - keep.sum(axis=1)
    ties = scores == kth
    overfull = np.flatnonzero(ties.sum(axis=1) > n_needed)
    keep |= ties
    if overfull.size:  # rows with more boundary ties than free slots
        t = ties[overfull]
        first = np.cumsum(t, axis=1, dtype=np.int32) <= n_needed[overfull, None]
        keep[overfull] = (scores[overfull] > kth[overfull]) | (t & first)
    idx = np.nonzero(keep)[1].reshape(n, k)  # ascending label index within each row
    order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def _check_same_length(a: Sequence, b: Sequence, what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} vs {len(b)} documents")


def _per_doc_ranking(
    ranked: np.ndarray | Sequence[Sequence[int]], truth: LabelSets, ks: Sequence[int]
) -> np.ndarray:
    """Per-document P@k for every k, then nDCG@k for k > 1, as an (N, n_metrics) array."""
    _check_same_length(ranked, truth, "ranked and truth differ in length")
    kmax = max(ks)
    n = len(truth)
    hits = np.zeros((n, kmax), dtype=bool)
    n_true = np.zeros(n, dtype=np.int64)
    rows = ranked.tolist() if isinstance(ranked, np.ndarray) else ranked
    for i, (row, y) in enumerate(zip(rows, truth, strict=True)):
        ys = y if isinstance(y, set | frozenset) else set(y)
        n_true[i] = len(ys)
        top = list(itertools.islice(row, kmax))
        hits[i, : len(top)] = [r in ys for r in top]
    disc = 1.0 / np.log2(np.arange(2, kmax + 2))  # 1/log(i+1), i = 1..kmax; base cancels
    cum_disc = np.concatenate([[0.0], np.cumsum(disc)])
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * disc, axis=1)
    cols = [cum_hits[:, k - 1] / k for k in ks]
    for k in ks:
        if k > 1:
            ideal = cum_disc[np.minimum(n_true, k)]
            cols.append(np.divide(cum_dcg[:, k - 1], ideal, out=np.zeros(n), where=ideal > 0))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def _ranking_keys(ks: Sequence[int]) -> list[str]:
    return [f"P@{k}" for k in ks] + [f"nDCG@{k}" for k in ks if k > 1]


def ranking_metrics(
    ranked: np.ndarray | Sequence[Sequence[int]],
    truth: LabelSets,
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """P@k and nDCG@k (Eq. 8), averaged over all documents, in percent.

    Parameters
    ----------
    ranked : np.ndarray or sequence of sequences of int
        Label indices of each document in descending score order; rows may be shorter
        than ``max(ks)`` (missing positions count as wrong).
    truth : sequence of collections of int
        Ground-truth label set of each document (may be empty: scores 0).
    ks : sequence of int
        Cut-offs.  ``P@k`` is reported for each k, ``nDCG@k`` for each k > 1
        (nDCG@1 equals P@1).

    Returns
    -------
    dict[str, float]
        ``{"P@1": ..., "P@3": ..., "P@5": ..., "nDCG@3": ..., "nDCG@5": ...}``.
    """
    per_doc = _per_doc_ranking(ranked, truth, ks)
    means = per_doc.mean(axis=0) if len(per_doc) else np.zeros(per_doc.shape[1])
    return {key: 100.0 * float(v) for key, v in zip(_ranking_keys(ks), means, strict=True)}


def _flatten(sets: LabelSets, n_labels: int) -> np.ndarray:
    """Unique ``doc * n_labels + label`` codes of a sequence of label sets."""
    lengths = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
    labels = np.fromiter(
        itertools.chain.from_iterable(sets), dtype=np.int64, count=int(lengths.sum())
    )
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(f"label index out of range [0, {n_labels})")
    docs = np.repeat(np.arange(len(sets), dtype=np.int64), lengths)
    return np.unique(docs * n_labels + labels)


def _f1_counts(
    predicted: LabelSets, truth: LabelSets, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label counts (true positives, predicted, true), each of shape (n_labels,)."""
    _check_same_length(predicted, truth, "predicted and truth differ in length")
    pred = _flatten(predicted, n_labels)
    true = _flatten(truth, n_labels)
    tp = np.intersect1d(pred, true, assume_unique=True)
    return tuple(  # type: ignore[return-value]
        np.bincount(codes % n_labels, minlength=n_labels) for codes in (tp, pred, true)
    )


def _f1_from_counts(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> dict[str, float]:
    denom_all = int(n_pred.sum() + n_true.sum())
    micro = 2.0 * int(tp.sum()) / denom_all if denom_all else 0.0
    denom = n_pred + n_true
    occurs = denom > 0
    macro = float(np.mean(2.0 * tp[occurs] / denom[occurs])) if occurs.any() else 0.0
    return {"micro_f1": 100.0 * micro, "macro_f1": 100.0 * macro}


def f1_scores(predicted: LabelSets, truth: LabelSets, n_labels: int) -> dict[str, float]:
    """Micro- and macro-averaged F1 of predicted label sets, in percent.

    Micro-F1 is ``2 TP / (2 TP + FP + FN)`` pooled over all (document, label) pairs.
    Macro-F1 is the mean per-label F1 over the labels that occur in ``truth`` or in
    ``predicted`` for these documents; a label that occurs in neither has an undefined F1
    (0/0) and is excluded rather than counted as 0 or 1.  A label that is predicted but
    never true (or true but never predicted) counts with F1 = 0.

    Parameters
    ----------
    predicted, truth : sequence of collections of int
        Predicted and ground-truth label sets, one per document.
    n_labels : int
        Number of labels C; every index must lie in ``[0, C)``.

    Returns
    -------
    dict[str, float]
        ``{"micro_f1": ..., "macro_f1": ...}``.
    """
    return _f1_from_counts(*_f1_counts(predicted, truth, n_labels))


def threshold_sets(scores: np.ndarray, threshold: float = 0.5) -> list[list[int]]:
    """Labels whose score is ``>= threshold``, per row of an (N, C) score matrix."""
    scores = np.asarray(scores)
    if len(scores) == 0:
        return []
    rows, cols = np.nonzero(scores >= threshold)
    counts = np.bincount(rows, minlength=scores.shape[0])
    return [part.tolist() for part in np.split(cols, np.cumsum(counts)[:-1])]


def evaluate_scores(
    scores: np.ndarray,
    truth: LabelSets,
    threshold: float = 0.5,
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, float]:
    """Ranking metrics of ``scores`` plus F1 of the labels scoring ``>= threshold``.

    Parameters
    ----------
    scores : np.ndarray
        Probabilities of shape (N, C).
    truth : sequence of collections of int
        Ground-truth label sets.
    threshold : float
        Decision threshold for the F1 metrics.
    ks : sequence of int
        Cut-offs for P@k and nDCG@k.

    Returns
    -------
    dict[str, float]
        Ranking metrics followed by ``micro_f1`` and ``macro_f1``, all in percent.
    """
    scores = np.asarray(scores)
    out = ranking_metrics(top_k(scores, max(ks)), truth, ks)
    out.update(f1_scores(threshold_sets(scores, threshold), truth, scores.shape[1]))
    return out


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Plain-text table: one row per model name, columns :data:`METRIC_KEYS` (then any other
    metric a row has, e.g. ``micro_f1@0.5``), 2 decimals. Missing metrics are shown as ``-``.
    """
    name_w = max([len("model"), *map(len, rows)])
    keys = list(METRIC_KEYS)
    keys += [k for m in rows.values() for k in m if k not in keys]
    widths = [max(len(k), 6) for k in keys]

    def line(name: str, cells: Sequence[str]) -> str:
        padded = (c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return "  ".join([name.ljust(name_w), *padded])

    lines = [line("model", keys)]
    for name, m in rows.items():
        lines.append(line(name, [f"{m[k]:.2f}" if k in m else "-" for k in keys]))
    return "\n".join(lines)


class StreamingEvaluator:
    """Accumulate ranking and F1 metrics batch by batch.

    Keeps per-document ranking scores (a few floats per document) and per-label F1 counts,
    so :meth:`result` equals ``ranking_metrics`` + ``f1_scores`` over all the documents
    seen, without ever holding a full (N, C) score matrix.

    Parameters
    ----------
    n_labels : int
        Number of labels C.
    ks : sequence of int
        Cut-offs for P@k and nDCG@k.
    threshold : float
        Decision threshold used by :meth:`update_scores`.
    """

    def __init__(
        self, n_labels: int, ks: Sequence[int] = (1, 3, 5), threshold: float = 0.5
    ) -> None:
        self.n_labels = n_labels
        self.ks = tuple(ks)
        self.threshold = threshold
        self._per_doc: list[np.ndarray] = []
        self._tp = np.zeros(n_labels, dtype=np.int64)
        self._n_pred = np.zeros(n_labels, dtype=np.int64)
        self._n_true = np.zeros(n_labels, dtype=np.int64)

    def update(
        self,
        ranked: np.ndarray | Sequence[Sequence[int]],
        truth: LabelSets,
        predicted: LabelSets,
    ) -> None:
        """Add a batch: top-ranked label indices (B, K), true and predicted label sets."""
        self._per_doc.append(_per_doc_ranking(ranked, truth, self.ks))
        tp, n_pred, n_true = _f1_counts(predicted, truth, self.n_labels)
        self._tp += tp
        self._n_pred += n_pred
        self._n_true += n_true

    def update_scores(self, scores: np.ndarray, truth: LabelSets) -> None:
        """Add a batch from its (B, C) probability matrix."""
        self.update(top_k(scores, max(self.ks)), truth, threshold_sets(scores, self.threshold))

    def result(self) -> dict[str, float]:
        """Metrics over every document added so far, in percent."""
        keys = _ranking_keys(self.ks)
        per_doc = np.concatenate(self._per_doc) if self._per_doc else np.zeros((0, len(keys)))
        means = per_doc.mean(axis=0) if len(per_doc) else np.zeros(len(keys))
        out = {key: 100.0 * float(v) for key, v in zip(keys, means, strict=True)}
        out.update(_f1_from_counts(self._tp, self._n_pred, self._n_true))
        return out
