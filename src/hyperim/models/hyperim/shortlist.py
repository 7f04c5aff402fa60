"""Shortlist inference: exact Eq. (6) scores for a few candidate labels per document.

Exact scoring of every label costs ``T × C × n`` ball distances per document (150 × 36,504 × 75
= 4.1e8 at the WikiLSHTC shape), which no constant factor makes cheap. :func:`shortlist_topk`
splits it in two stages:

1. **Candidates.** A cheap first stage scores every label against *one point per document*
   instead of ``T``, and keeps the ``M`` best with a streaming top-M over label chunks (memory
   ``(B, M + label_chunk)``, never ``(B, C)`` or ``(B, C, n, d)``). The methods:

   ``"midpoint"`` (default)
       The document's summary point is the gyromidpoint, ball by ball, of its encoded words
       θ^w over real tokens (Ungar's Möbius gyromidpoint, the Poincaré form of the Einstein
       midpoint),

       .. math:: m = \\tfrac12 \\otimes \\frac{\\sum_t w_t \\lambda_{x_t} x_t}
                                          {\\sum_t w_t (\\lambda_{x_t} - 1)},
                 \\qquad \\lambda_x = \\frac{2}{1 - \\lVert x\\rVert^2},

       with weights ``w_t`` = the mask (``weighting="uniform"``, default), or the mask times
       the linearised per-position gain of the prediction layers, ``w_e · W_f[:, t]``
       clipped at 0 (``weighting="head"``).
   ``"last"``
       The last real GRU state θ^w_{len-1} (the encoder's own running summary).
   ``"lifted-mean"``
       No summary point: the mean over tokens of the lifted word vectors of
       :mod:`hyperim.geometry.pairwise`, so the stage-1 distance comes from the (weighted)
       mean over tokens of ``Σ_b (cosh d_b - 1)``.
   ``"beam"``
       A top-down beam through the label hierarchy (``hierarchy`` = :func:`label_tree`): the
       top-level labels are scored against the midpoint, the ``beam`` best are expanded, and
       so on to the leaves; candidates are the ``M`` best labels seen. Cheaper than scanning
       every label, but it trusts internal labels' positions to summarise their subtrees.

   The summary point is compared with every label by ``metric="lifted"`` (default): one matrix
   product of lifted vectors gives ``u_b = cosh d_b - 1`` for every ball and
   ``d̂ = √(2 Σ_b u_b)`` (``≈ √(Σ_b d_b²)``, the riemannian distance, for close points; times
   ``√n`` for the sum aggregate), with no transcendental function per (document, label,
   ball); or by ``metric="distance"``: the model's own product distance (fused
   :func:`~hyperim.geometry.pairwise_dist`, ``n`` acosh per pair, about 9 times slower).
   The stage-1 score is not ``-d̂`` but Eq. (6) applied to ``s_t = -d̂`` at every real
   position (:class:`HeadProfile`, exact and cheap for the ReLU head), plus ``label_bias``:
   the prediction layers need not decrease with distance (their weights have both signs, and
   for short documents a trained head can rank far labels first), and ranking by the
   profile recovers those labels.

2. **Exact scores.** The encoded words meet only the ``M`` candidates, as a per-document label
   set ``(B, M, n, d)`` (the partial interaction of training), then the prediction layers,
   ``label_bias`` and ``config.logit_offset``: the same logits :func:`hyperim.inference.
   topk_labels` gives for those labels. With ``M >= C`` the result equals exact top-k.

:func:`shortlist_recall` measures how many of the exact top-k labels the candidates hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hyperim.errors import HyperIMError
from hyperim.geometry.numerics import MIN_NORM
from hyperim.geometry.pairwise import lift_labels, lift_words, pairwise_dist
from hyperim.models.base import merge_topk
from hyperim.models.hyperim.model import HyperIMModel

#: Labels scored at a time by the first stage (bounds its memory, as ``LABEL_CHUNK`` does).
LABEL_CHUNK = 4096
#: Candidates per document by default.
DEFAULT_CANDIDATES = 256
METHODS = ("midpoint", "last", "lifted-mean", "beam")
WEIGHTINGS = ("head", "uniform")
METRICS = ("lifted", "distance")


# ------------------------------------------------------------------------------ hierarchy
@dataclass
class LabelTree:
    """Children of each label as label ids (CSR), for the ``"beam"`` method.

    ``roots`` are the labels without a parent (labels absent from the hierarchy included);
    the children of label ``i`` are ``children[offsets[i]:offsets[i + 1]]``.
    """

    roots: np.ndarray
    offsets: np.ndarray
    children: np.ndarray

    @classmethod
    def from_parents(cls, parents: Sequence[Sequence[int]] | np.ndarray) -> LabelTree:
        """From each label's parent ids (a list per label, or one id per label, -1 = none)."""
        n = len(parents)
        edges: list[tuple[int, int]] = []
        for child, ps in enumerate(parents):
            ps = [int(ps)] if np.ndim(ps) == 0 else [int(p) for p in ps]
            edges += [(p, child) for p in ps if p >= 0]
        has_parent = np.zeros(n, dtype=bool)
        order = sorted(set(edges))
        for _, c in order:
            has_parent[c] = True
        counts = np.bincount([p for p, _ in order], minlength=n) if order else np.zeros(n, int)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        children = np.asarray([c for _, c in order], dtype=np.int64)
        return cls(np.flatnonzero(~has_parent), offsets, children)


def label_tree(hierarchy, labels: Sequence[str]) -> LabelTree:
    """A :class:`LabelTree` over label ids from a :class:`hyperim.data.Hierarchy` and the
    model's label names (``LabelIndex.labels``); edges to unknown labels are dropped."""
    index = {name: i for i, name in enumerate(labels)}
    parents = [[index[p] for p in hierarchy.parents(name) if p in index] for name in labels]
    return LabelTree.from_parents(parents)


# ------------------------------------------------------------------------------ stage 1
def head_gain(model: HyperIMModel, t: int) -> torch.Tensor:
    """``(t,)`` linearised gain of Eq. (6) per position: ``∂logit/∂s_t`` with the activation
    taken as the identity, ``w_e · W_f[:, t]``."""
    head = model.head
    return (head.w_e.weight @ head.w_f.weight[:, :t]).squeeze(0)


def token_weights(
    model: HyperIMModel, mask: torch.Tensor, weighting: str, dtype: torch.dtype
) -> torch.Tensor:
    """``(B, T)`` non-negative weights of the real tokens (padding gets 0).

    ``"uniform"``: the mask. ``"head"``: the mask times the head's per-position gain clipped
    at 0; a document whose real positions all have gain <= 0 falls back to uniform.
    """
    if weighting not in WEIGHTINGS:
        raise HyperIMError(f"unknown weighting {weighting!r}; choose from {WEIGHTINGS}")
    m = mask.to(dtype)
    if weighting == "uniform":
        return m
    w = m * head_gain(model, mask.shape[1]).to(dtype).clamp_min(0)
    empty = w.sum(1, keepdim=True) <= 0
    return torch.where(empty, m, w)


def gyromidpoint(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted Möbius gyromidpoint over axis 1, ball by ball.

    Parameters
    ----------
    x : (B, T, n, d)
        Points in a product of balls.
    weights : (B, T)
        Non-negative; zero weight (padding) leaves the result unchanged.

    Returns
    -------
    (B, n, d) midpoints, inside the balls.
    """
    w = weights.to(x.dtype)[:, :, None, None]  # (B, T, 1, 1)
    lam = 2 / (1 - x.pow(2).sum(-1, keepdim=True)).clamp_min(MIN_NORM)  # λ_x (B, T, n, 1)
    num = (w * lam * x).sum(1)  # (B, n, d)
    den = (w * (lam - 1)).sum(1).clamp_min(MIN_NORM)  # λ - 1 >= 1 for every point
    two_mean = num / den  # inside the ball: a convex combination in the Klein model
    # ½ ⊗ v = v / (1 + √(1 - ‖v‖²))
    n2 = two_mean.pow(2).sum(-1, keepdim=True).clamp_max(1.0)
    return two_mean / (1 + torch.sqrt(1 - n2))


def last_state(theta_w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, n, d)``: θ^w at each document's last real token (documents are right-padded)."""
    last = (mask.sum(1) - 1).clamp_min(0)
    return theta_w[torch.arange(theta_w.shape[0], device=theta_w.device), last]


@dataclass
class HeadProfile:
    """Eq. (6) of each document as a function of one distance ``D``: the prediction layers
    applied to the constant score vector ``s_t = -D`` at the real positions (0 at padding),

    .. math:: f_b(D) = w_e \\cdot \\varphi(b_f - D\\, c_b) + b_e, \\qquad c_b = W^f m_b,

    ``m_b`` the document's mask (with the pooled head, ``c_b`` also holds ``W^p [1, 1]``: both
    pooled values of the profile are ``-D``; exact for documents with at least one token). With
    the ReLU (or no activation) ``f_b`` is piecewise linear
    in ``D``, with a kink where a hidden unit switches, so it is kept exactly as ``h + 1``
    lines between sorted breakpoints and evaluated with one ``searchsorted``; other
    activations are evaluated directly (``(B, L, h)`` work).

    The head need not decrease with distance (its weights have both signs, and short
    documents can flip it), so ranking labels by ``f_b(D)`` instead of by ``-D`` finds the
    labels Eq. (6) actually scores highest.
    """

    c: torch.Tensor  # (B, h)
    bias: torch.Tensor  # (h,)
    w_e: torch.Tensor  # (h,)
    b_e: torch.Tensor  # () or 0-d zeros
    activation: str
    breaks: torch.Tensor | None = None  # (B, h) sorted breakpoints (inf: never switches)
    alpha: torch.Tensor | None = None  # (B, h + 1): f = alpha + beta * D between breakpoints
    beta: torch.Tensor | None = None

    @classmethod
    def build(cls, model: HyperIMModel, mask: torch.Tensor, dtype: torch.dtype) -> HeadProfile:
        head = model.head
        t = mask.shape[1]
        w_f = head.w_f.weight[:, :t].to(dtype)  # (h, T)
        c = mask.to(dtype) @ w_f.T  # (B, h)
        if head.w_p is not None:  # pooled head: max and mean of -D over real positions are -D
            c = c + head.w_p.weight.sum(1).to(c)
        b_f = head.w_f.bias if head.w_f.bias is not None else torch.zeros(w_f.shape[0])
        b_f = b_f.to(c)
        w_e = head.w_e.weight[0].to(c)
        b_e = head.w_e.bias[0].to(c) if head.w_e.bias is not None else c.new_zeros(())
        prof = cls(c, b_f, w_e, b_e, head.activation)
        if head.activation in ("relu", "identity"):
            prof._lines()
        return prof

    def _lines(self) -> None:
        c, b, w = self.c, self.bias[None].expand_as(self.c), self.w_e[None].expand_as(self.c)
        if self.activation == "identity":  # one line: w·(b - D c) + b_e
            self.breaks = c.new_full((c.shape[0], 0), float("inf"))
            self.alpha = (w * b).sum(1, keepdim=True) + self.b_e
            self.beta = -(w * c).sum(1, keepdim=True)
            return
        # unit j is active where b_j - D c_j > 0; as D grows it switches at D = b_j / c_j
        active0 = torch.where(c == 0, b > 0, c > 0)  # as D -> -inf
        t = torch.where(c == 0, torch.full_like(c, float("inf")), b / c)
        on = active0.to(c.dtype)
        alpha0 = (on * w * b).sum(1, keepdim=True) + self.b_e
        beta0 = -(on * w * c).sum(1, keepdim=True)
        sign = torch.where(c > 0, -1.0, 1.0).to(c.dtype) * (c != 0)  # turns off (-) or on (+)
        order = t.argsort(1)
        self.breaks = t.gather(1, order)
        d_alpha = (sign * w * b).gather(1, order)
        d_beta = (-sign * w * c).gather(1, order)
        self.alpha = torch.cat([alpha0, alpha0 + d_alpha.cumsum(1)], dim=1)
        self.beta = torch.cat([beta0, beta0 + d_beta.cumsum(1)], dim=1)

    def __call__(self, d: torch.Tensor) -> torch.Tensor:
        """``f_b(D)`` for ``d`` of shape ``(B, L)``."""
        if self.breaks is None:  # tanh, sigmoid: evaluate directly
            from hyperim.nn.head import ACTIVATIONS

            act = ACTIVATIONS[self.activation]
            pre = self.bias - d[..., None] * self.c[:, None, :]  # (B, L, h)
            return (act(pre) if act is not None else pre) @ self.w_e + self.b_e
        assert self.alpha is not None and self.beta is not None
        k = torch.searchsorted(self.breaks, d.contiguous())  # (B, L) in 0..h
        return self.alpha.gather(1, k) + self.beta.gather(1, k) * d

    def rows(self, lo: int, hi: int) -> HeadProfile:
        """The profile of documents ``lo:hi``."""
        sl = slice(lo, hi)
        return HeadProfile(
            self.c[sl],
            self.bias,
            self.w_e,
            self.b_e,
            self.activation,
            None if self.breaks is None else self.breaks[sl],
            None if self.alpha is None else self.alpha[sl],
            None if self.beta is None else self.beta[sl],
        )


@dataclass
class _Stage1:
    """How to score a chunk of labels against each document in the first stage."""

    model: HyperIMModel
    point: torch.Tensor  # (B, n, d) summary point, or (B, n, q) mean lifted words
    lifted_query: torch.Tensor | None  # (B, n*q) lifted summary, for the lifted metric
    metric: str
    profile: HeadProfile

    def scores(self, ids: torch.Tensor | slice) -> torch.Tensor:
        """``(B, L)`` stage-1 scores of labels ``ids`` (a slice: shared; a ``(B, L)`` tensor:
        a label set per document)."""
        model = self.model
        weight = model.labels.weight
        labels = weight[ids]  # (L, n, d) or (B, L, n, d)
        if self.metric == "distance":
            # (B, 1, n, d) against (L, n, d) or (B, L, n, d) -> (B, 1, L)
            d = pairwise_dist(self.point[:, None], labels, model.config.aggregate)[:, 0]
        else:
            assert self.lifted_query is not None
            yl = lift_labels(labels).flatten(-2)  # (L, n*q) or (B, L, n*q)
            q = self.lifted_query  # (B, n*q); shared labels: one GEMM
            u = 2 * (q @ yl.T if yl.dim() == 2 else torch.einsum("bq,blq->bl", q, yl))  # (B, L)
            # Σ_b u_b = Σ_b (cosh d_b - 1) ≈ ½ Σ_b d_b²: the riemannian distance, or (Cauchy-
            # Schwarz, equal per-ball distances) the sum aggregate's √n times it
            d2 = 2 * u.clamp_min(0)
            if model.config.aggregate == "sum":
                d2 = d2 * model.config.n_balls
            d = torch.sqrt(d2)
        score = self.profile(d)
        if model.head.label_bias is not None:
            score = score + model.head.label_bias[ids]
        return score


def _stage1(
    model: HyperIMModel,
    theta_w: torch.Tensor,
    mask: torch.Tensor,
    method: str,
    weighting: str,
    metric: str,
) -> _Stage1:
    if metric not in METRICS:
        raise HyperIMError(f"unknown metric {metric!r}; choose from {METRICS}")
    w = token_weights(model, mask, weighting, theta_w.dtype)  # (B, T)
    profile = HeadProfile.build(model, mask, theta_w.dtype)
    if method == "lifted-mean":
        xl = lift_words(theta_w)  # (B, T, n, q)
        mean = (w[:, :, None, None] * xl).sum(1) / w.sum(1).clamp_min(MIN_NORM)[:, None, None]
        return _Stage1(model, mean, mean.flatten(1), "lifted", profile)
    if method in ("midpoint", "beam"):
        point = gyromidpoint(theta_w, w)
    elif method == "last":
        point = last_state(theta_w, mask)
    else:
        raise HyperIMError(f"unknown method {method!r}; choose from {METHODS}")
    query = lift_words(point).flatten(1) if metric == "lifted" else None
    return _Stage1(model, point, query, metric, profile)


def _scan_candidates(stage: _Stage1, n_labels: int, m: int, label_chunk: int) -> torch.Tensor:
    """Streaming top-``m`` of the stage-1 scores over label chunks: ``(B, m)`` label ids."""
    b = stage.point.shape[0]
    device = stage.point.device
    best_v = best_i = None
    for lo in range(0, n_labels, label_chunk):
        hi = min(lo + label_chunk, n_labels)
        s = stage.scores(slice(lo, hi))
        ids = torch.arange(lo, hi, device=device).expand(b, -1)
        best_v, best_i = merge_topk(best_v, best_i, s, ids, m)
    assert best_i is not None
    return best_i


def _beam_candidates(stage: _Stage1, tree: LabelTree, m: int, beam: int) -> torch.Tensor:
    """Top-down beam through ``tree``: ``(B, m)`` label ids (the ``m`` best labels scored on
    the way; padded with the best ones when the beam saw fewer than ``m``)."""
    b = stage.point.shape[0]
    device = stage.point.device
    out = []
    for row in range(b):
        sub = _Stage1(
            stage.model,
            stage.point[row : row + 1],
            None if stage.lifted_query is None else stage.lifted_query[row : row + 1],
            stage.metric,
            stage.profile.rows(row, row + 1),
        )
        seen_v: list[torch.Tensor] = []
        seen_i: list[np.ndarray] = []
        frontier = tree.roots
        visited = np.zeros(len(tree.offsets) - 1, dtype=bool)
        while len(frontier):
            frontier = frontier[~visited[frontier]]
            if not len(frontier):
                break
            visited[frontier] = True
            ids = torch.from_numpy(frontier).to(device)[None]
            v = sub.scores(ids)[0]
            seen_v.append(v)
            seen_i.append(frontier)
            keep = frontier[v.topk(min(beam, len(frontier))).indices.cpu().numpy()]
            parts = [tree.children[tree.offsets[i] : tree.offsets[i + 1]] for i in keep]
            frontier = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        v = torch.cat(seen_v)
        ids = torch.from_numpy(np.concatenate(seen_i)).to(device)
        top = ids[v.topk(min(m, len(v))).indices]
        if len(top) < m:  # pad with repeats of the best (scored twice, harmless)
            top = torch.cat([top, top[:1].expand(m - len(top))])
        out.append(top)
    return torch.stack(out)


@torch.no_grad()
def candidate_labels(
    model: HyperIMModel,
    theta_w: torch.Tensor,
    mask: torch.Tensor,
    candidates: int = DEFAULT_CANDIDATES,
    method: str = "midpoint",
    hierarchy: LabelTree | None = None,
    *,
    weighting: str = "uniform",
    metric: str = "lifted",
    label_chunk: int = LABEL_CHUNK,
    beam: int = 32,
) -> torch.Tensor:
    """The first stage alone: ``(B, min(candidates, C))`` label ids per document, from encoded
    words ``theta_w`` ``(B, T, n, d)`` (see the module docstring for the options)."""
    if candidates < 1 or label_chunk < 1 or beam < 1:
        raise HyperIMError("candidates, label_chunk and beam must be >= 1")
    n_labels = model.config.n_labels
    m = min(candidates, n_labels)
    stage = _stage1(model, theta_w, mask, method, weighting, metric)
    if method == "beam":
        if hierarchy is None:
            raise HyperIMError("method 'beam' needs hierarchy= (a LabelTree, see label_tree)")
        return _beam_candidates(stage, hierarchy, m, beam)
    return _scan_candidates(stage, n_labels, m, label_chunk)


# ------------------------------------------------------------------------------ stage 2
@torch.no_grad()
def exact_scores(
    model: HyperIMModel, theta_w: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor
) -> torch.Tensor:
    """Calibrated Eq. (6) logits ``(B, L)`` of label set ``ids`` ``(B, L)`` per document
    (``label_bias`` and ``config.logit_offset`` included), as in training's partial
    interaction."""
    return model.score_subset((theta_w, mask), ids)


@torch.no_grad()
def shortlist_topk_encoded(
    model: HyperIMModel,
    theta_w: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    candidates: int = DEFAULT_CANDIDATES,
    method: str = "midpoint",
    hierarchy: LabelTree | None = None,
    **options,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`shortlist_topk` from already-encoded words; also returns the candidates."""
    if k < 1:
        raise HyperIMError("k must be >= 1")
    cand = candidate_labels(model, theta_w, mask, candidates, method, hierarchy, **options)
    logits = exact_scores(model, theta_w, mask, cand)  # (B, M)
    values, pos = logits.topk(min(k, cand.shape[1]), dim=1)
    return values, cand.gather(1, pos), cand


@torch.no_grad()
def shortlist_topk(
    model: HyperIMModel,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    candidates: int = DEFAULT_CANDIDATES,
    method: str = "midpoint",
    hierarchy: LabelTree | None = None,
    **options,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k labels from exact Eq. (6) scores of ``candidates`` labels per document chosen by a
    cheap first stage (module docstring).

    Parameters
    ----------
    model : HyperIMModel
    tokens, mask : torch.Tensor
        ``(B, T)`` token ids (right-padded) and bool mask.
    k : int
        Labels per document, >= 1; clipped to the number of candidates.
    candidates : int
        ``M``, candidate labels per document (clipped to ``n_labels``; ``M >= C`` is exact).
    method : str
        ``"midpoint"``, ``"last"``, ``"lifted-mean"`` or ``"beam"``.
    hierarchy : LabelTree, optional
        Required by ``"beam"`` (:func:`label_tree`).
    **options
        ``weighting`` (``"uniform"`` | ``"head"``), ``metric`` (``"lifted"`` |
        ``"distance"``), ``label_chunk`` (labels per first-stage chunk), ``beam`` (width).

    Returns
    -------
    values : (B, k) calibrated logits, descending.
    indices : (B, k) label ids (long).
    """
    theta_w = model.encode(tokens, mask)
    values, indices, _ = shortlist_topk_encoded(
        model, theta_w, mask, k, candidates, method, hierarchy, **options
    )
    return values, indices


@torch.no_grad()
def shortlist_recall(
    model: HyperIMModel,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    k: int = 5,
    candidates: int = DEFAULT_CANDIDATES,
    method: str = "midpoint",
    hierarchy: LabelTree | None = None,
    exact: torch.Tensor | None = None,
    **options,
) -> float:
    """Mean share of each document's exact top-``k`` labels that are among its candidates.

    ``exact`` is the ``(B, k)`` exact top-k ids if already known (else computed with
    :func:`hyperim.inference.topk_labels`, which scores every label).
    """
    from hyperim.inference import topk_labels

    theta_w = model.encode(tokens, mask)
    if exact is None:
        exact = topk_labels(model, tokens, mask, k)[1]
    cand = candidate_labels(model, theta_w, mask, candidates, method, hierarchy, **options)
    return candidate_recall(cand, exact)


def candidate_recall(cand: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean over rows of the share of ``exact`` ``(B, k)`` ids found in ``cand`` ``(B, M)``."""
    if exact.numel() == 0:
        return 1.0
    hit = (exact[:, :, None] == cand[:, None, :]).any(-1)  # (B, k)
    return float(hit.to(torch.float64).mean())
