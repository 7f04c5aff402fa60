"""Label sets from probabilities: decision thresholds chosen on the validation split.

A ranking answers "which labels first"; a label set needs a cut. The policies, each choosing on
the validation split's scores and labels (never the test split's):

``fixed``
    One threshold for every label, given (the model's 0.5 by default).
``global``
    One threshold for every label: the value of :data:`GRID` that maximises micro-F1.
``per-level``
    One threshold per depth of the hierarchy, each maximising the micro-F1 of that depth's
    labels (deeper labels are rarer and score lower); a label outside the hierarchy, or a
    depth without validation positives, takes the global threshold.
``per-label``
    Each label the threshold that maximises its own F1 (the most direct route to macro-F1),
    when the label has at least ``min_support`` validation positives; rarer labels take the
    global threshold, since a handful of examples would choose it by chance.

A label set can also be closed under the hierarchy (:func:`close_under_ancestors`): a
predicted label brings its ancestors, as ancestor-closed gold sets (debtags') have them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

POLICIES = ("fixed", "global", "per-level", "per-label", "auto")

#: What ``auto`` chooses from, by 2-fold cross-validation inside the validation split.
AUTO_CANDIDATES = ("fixed", "global", "per-level", "per-label")

#: Candidate thresholds of the global and per-level searches.
GRID = np.round(np.arange(0.02, 0.985, 0.01), 2)


def dense_truth(truth: Sequence[Collection[int]], n_labels: int) -> np.ndarray:
    """``(N, C)`` bool matrix of label sets."""
    y = np.zeros((len(truth), n_labels), dtype=bool)
    for i, labels in enumerate(truth):
        y[i, list(labels)] = True
    return y


def best_global(scores: np.ndarray, y: np.ndarray, grid: np.ndarray = GRID) -> float:
    """The value of ``grid`` with the highest micro-F1 (the one nearest 0.5 among ties)."""
    n_true = int(y.sum())
    best, best_t = -1.0, 0.5
    for t in sorted(grid, key=lambda t: abs(t - 0.5)):  # ties go to the value nearest 0.5
        pred = scores >= t
        denom = int(pred.sum()) + n_true
        f1 = 2.0 * int((pred & y).sum()) / denom if denom else 0.0
        if f1 > best:
            best, best_t = f1, float(t)
    return best_t


def best_per_label(
    scores: np.ndarray, y: np.ndarray, fallback: float, min_support: int = 5
) -> np.ndarray:
    """``(C,)``: each label's F1-maximising threshold where it has ``>= min_support``
    positives, else ``fallback``.

    For a label, predicting its ``k`` highest-scoring documents gives
    ``F1(k) = 2 TP(k) / (k + P)``; the threshold is the midpoint between the ``k``-th and the
    ``k+1``-th score at the best ``k`` (every ``k`` at once: one sort per label).
    """
    n, c = scores.shape
    out = np.full(c, float(fallback))
    if n == 0:
        return out
    positives = y.sum(0)
    tuned = positives >= max(1, min_support)
    step = max(1, _CHUNK_ELEMENTS // n)  # labels at a time: bounded temporaries
    for lo in range(0, c, step):
        part = slice(lo, min(c, lo + step))
        chosen = _f1_best_cut(scores[:, part], y[:, part], positives[part])
        keep = tuned[part]
        out[part][keep] = np.clip(chosen[keep], GRID[0], GRID[-1])
    return out


#: Score entries sorted at once by :func:`best_per_label` (a few bytes each, several arrays).
_CHUNK_ELEMENTS = 4_000_000


def _f1_best_cut(scores: np.ndarray, y: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Per column, the midpoint between the ``k``-th and ``k+1``-th highest score at the
    ``k`` with the best F1 (the first best: the highest threshold among equals)."""
    n, c = scores.shape
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, 0).astype(np.float64)
    tp = np.cumsum(np.take_along_axis(y, order, 0), axis=0)
    f1 = 2.0 * tp / (np.arange(1, n + 1)[:, None] + positives[None, :])
    k = f1.argmax(0)
    cols = np.arange(c)
    below = np.where(k + 1 < n, s[np.minimum(k + 1, n - 1), cols], 0.0)
    return (s[k, cols] + below) / 2.0


def best_per_level(
    scores: np.ndarray, y: np.ndarray, levels: np.ndarray, fallback: float
) -> np.ndarray:
    """``(C,)``: one micro-F1-maximising threshold per value of ``levels`` (``-1``: no level,
    ``fallback``); a level without validation positives also takes ``fallback``."""
    out = np.full(scores.shape[1], float(fallback))
    for level in np.unique(levels[levels >= 0]):
        cols = np.flatnonzero(levels == level)
        if y[:, cols].any():
            out[cols] = best_global(scores[:, cols], y[:, cols])
    return out


def label_levels(hierarchy, names: Sequence[str]) -> np.ndarray:
    """``(C,)`` depth of each label in ``hierarchy`` (``-1``: not in it, or no hierarchy)."""
    if hierarchy is None:
        return np.full(len(names), -1)
    known = set(hierarchy.labels)
    return np.asarray([hierarchy.depth(n) if n in known else -1 for n in names])


def label_ancestors(hierarchy, names: Sequence[str]) -> list[list[int]]:
    """Each label's ancestors in ``hierarchy``, as indices into ``names`` (those it has)."""
    index = {n: i for i, n in enumerate(names)}
    if hierarchy is None:
        return [[] for _ in names]
    return [sorted(index[a] for a in hierarchy.ancestors(n) if a in index) for n in names]


@dataclass
class LabelThresholds:
    """One decision threshold per label, with the policy that chose it."""

    policy: str
    values: np.ndarray  # (C,) float
    closure: bool = False  # add every predicted label's ancestors
    notes: dict = field(default_factory=dict)  # e.g. the global threshold, labels tuned
    ancestors: list[list[int]] | None = None  # for closure: each label's ancestors

    def label_sets(
        self, scores: np.ndarray, ancestors: Sequence[Collection[int]] | None = None
    ) -> list[list[int]]:
        """Labels scoring ``>=`` their threshold, per row (closed under ``ancestors`` if
        :attr:`closure`)."""
        scores = np.asarray(scores)
        if scores.shape[1:] != self.values.shape:
            raise ValueError(f"{scores.shape[1]} labels scored for {self.values.size} thresholds")
        rows, cols = np.nonzero(scores >= self.values[None, :])
        counts = np.bincount(rows, minlength=scores.shape[0])
        sets = [part.tolist() for part in np.split(cols, np.cumsum(counts)[:-1])]
        ancestors = self.ancestors if ancestors is None else ancestors
        if self.closure and ancestors is not None:
            sets = close_under_ancestors(sets, ancestors)
        return sets

    def to_dict(self) -> dict:
        out = {
            "policy": self.policy,
            "closure": self.closure,
            "values": [float(v) for v in self.values],
            "notes": self.notes,
        }
        if self.closure and self.ancestors is not None:
            out["ancestors"] = self.ancestors
        return out

    @classmethod
    def from_dict(cls, d: dict) -> LabelThresholds:
        return cls(d["policy"], np.asarray(d["values"], dtype=np.float64), bool(d.get("closure")),
                   dict(d.get("notes", {})), d.get("ancestors"))  # fmt: skip


def choose_thresholds(
    scores: np.ndarray,
    truth: Sequence[Collection[int]],
    policy: str = "global",
    *,
    levels: np.ndarray | None = None,
    fixed: float = 0.5,
    min_support: int = 5,
    closure: bool = False,
    ancestors: list[list[int]] | None = None,
) -> LabelThresholds:
    """Thresholds for every label by ``policy`` (:data:`POLICIES`) from validation ``scores``
    ``(N, C)`` and gold ``truth``; ``levels`` ``(C,)`` (depth, ``-1`` for none) for
    ``per-level``."""
    if policy not in POLICIES:
        raise ValueError(f"threshold policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    scores = np.asarray(scores, dtype=np.float64)
    c = scores.shape[1]
    if policy == "auto":
        chosen, folds = choose_policy(scores, truth, levels, fixed, min_support, closure, ancestors)
        found = choose_thresholds(
            scores, truth, chosen, levels=levels, fixed=fixed, min_support=min_support,
            closure=closure, ancestors=ancestors,
        )  # fmt: skip
        found.notes = {**found.notes, "auto": {"chosen": chosen, "2-fold": folds}}
        return found
    if policy == "fixed":
        return LabelThresholds(policy, np.full(c, float(fixed)), closure, {}, ancestors)
    y = dense_truth(truth, c)
    g = best_global(scores, y)
    notes: dict = {"global": g}
    if policy == "global":
        values = np.full(c, g)
    elif policy == "per-level":
        if levels is None:
            raise ValueError("per-level thresholds need the labels' levels")
        values = best_per_level(scores, y, np.asarray(levels), g)
    else:
        values = best_per_label(scores, y, g, min_support)
        notes["tuned_labels"] = int((y.sum(0) >= max(1, min_support)).sum())
    return LabelThresholds(policy, values, closure, notes, ancestors)


def choose_policy(
    scores: np.ndarray,
    truth: Sequence[Collection[int]],
    levels: np.ndarray | None,
    fixed: float,
    min_support: int,
    closure: bool,
    ancestors: list[list[int]] | None,
) -> tuple[str, dict[str, float]]:
    """The policy of :data:`AUTO_CANDIDATES` whose label sets have the best mean of micro- and
    macro-F1 in 2-fold cross-validation inside the given (validation) split: thresholds tuned
    on one half (a seeded random halving) are scored on the other, both ways.

    Which policy wins depends on the model: per-label thresholds lifted TF-IDF's macro-F1 by
    6 points for 0.5 of micro-F1, but cost a weaker HyperIM 13 points of micro-F1 (a label
    it ranks poorly is best, on its own F1, predicted for far too many documents;
    BENCHMARKS.md). Ties go to the earlier candidate (the simpler policy)."""
    from hyperim.metrics import f1_scores

    n = len(truth)
    order = np.random.default_rng(0).permutation(n)
    halves = (np.sort(order[: n // 2]), np.sort(order[n // 2 :]))
    candidates = [p for p in AUTO_CANDIDATES if p != "per-level" or levels is not None]
    means: dict[str, float] = {}
    for policy in candidates:
        values = []
        for fit, held in (halves, halves[::-1]):
            if len(fit) == 0 or len(held) == 0:
                continue
            th = choose_thresholds(
                scores[fit], [truth[i] for i in fit], policy, levels=levels, fixed=fixed,
                min_support=min_support, closure=closure, ancestors=ancestors,
            )  # fmt: skip
            f1 = f1_scores(th.label_sets(scores[held]), [truth[i] for i in held], scores.shape[1])
            values.append((f1["micro_f1"] + f1["macro_f1"]) / 2.0)
        means[policy] = float(np.mean(values)) if values else 0.0
    best = max(candidates, key=lambda p: (means[p], -candidates.index(p)))
    return best, {p: round(v, 4) for p, v in means.items()}


def hierarchy_thresholds(
    scores: np.ndarray,
    truth: Sequence[Collection[int]],
    policy: str,
    *,
    hierarchy=None,
    names: Sequence[str] | None = None,
    fixed: float = 0.5,
    min_support: int = 5,
    closure: bool = False,
) -> LabelThresholds | None:
    """:func:`choose_thresholds` with the labels' levels and ancestors taken from
    ``hierarchy`` (labels ``names``); None for the one ``fixed`` threshold without closure,
    which needs neither tuning nor saving."""
    if policy == "fixed" and not closure:
        return None
    names = names if names is not None else [str(i) for i in range(np.shape(scores)[1])]
    return choose_thresholds(
        scores, truth, policy, levels=label_levels(hierarchy, names), fixed=fixed,
        min_support=min_support, closure=closure,
        ancestors=label_ancestors(hierarchy, names) if closure else None,
    )  # fmt: skip


def label_set_metrics(
    scores: np.ndarray,
    truth: Sequence[Collection[int]],
    thresholds: LabelThresholds | None,
    fixed: float = 0.5,
) -> dict[str, float]:
    """Ranking metrics and F1 of ``scores``: F1 of the label sets of ``thresholds``, and
    ``micro_f1@T`` / ``macro_f1@T`` at the one threshold ``T`` = ``fixed`` beside; without
    ``thresholds``, F1 at ``fixed`` alone."""
    from hyperim.metrics import evaluate_scores, f1_scores

    out = evaluate_scores(scores, truth, threshold=fixed)
    if thresholds is not None:
        out[f"micro_f1@{fixed:g}"], out[f"macro_f1@{fixed:g}"] = out["micro_f1"], out["macro_f1"]
        out.update(f1_scores(thresholds.label_sets(scores), truth, np.shape(scores)[1]))
    return out


def tuned_metrics(
    scores: np.ndarray,
    truth: Sequence[Collection[int]],
    valid: Callable[[], tuple[np.ndarray, Sequence[Collection[int]]]],
    policy: str,
    *,
    hierarchy=None,
    names: Sequence[str] | None = None,
    fixed: float = 0.5,
    min_support: int = 5,
    closure: bool = False,
) -> dict[str, float]:
    """:func:`label_set_metrics` of ``scores`` with thresholds chosen by ``policy`` on the
    validation scores and label sets that ``valid()`` gives (called only when the policy
    tunes): how a model without thresholds of its own (a baseline) is scored like one with
    them."""
    thresholds = None
    if policy != "fixed" or closure:
        valid_scores, valid_truth = valid()
        thresholds = hierarchy_thresholds(
            valid_scores, valid_truth, policy, hierarchy=hierarchy, names=names, fixed=fixed,
            min_support=min_support, closure=closure,
        )  # fmt: skip
    return label_set_metrics(scores, truth, thresholds, fixed)


def close_under_ancestors(
    sets: Sequence[Collection[int]], ancestors: Sequence[Collection[int]]
) -> list[list[int]]:
    """Each set with every ancestor (``ancestors[label]``: all of the label's ancestors) of
    its labels added, sorted."""
    out = []
    for labels in sets:
        closed = set(labels)
        for label in labels:
            closed.update(ancestors[label])
        out.append(sorted(closed))
    return out
