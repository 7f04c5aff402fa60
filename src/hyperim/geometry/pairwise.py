"""All-pairs distances between many words and many labels: the hot path of the interaction.

The naive way to get ``d(x_t, l_i)`` for every word ``t`` and label ``i`` broadcasts a Möbius
sum of shape ``(B, T, C, n, d)``; at the RCV1 shape (64 × 300 × 103 × 75 × 2) that is tens of
GB with autograd's saved tensors. Here the distance is computed from norms and inner products:

.. math::
    d(x, y) = \\cosh^{-1}(1 + u), \\qquad
    u = 2\\,\\frac{\\lVert x\\rVert^2 + \\lVert y\\rVert^2 - 2\\langle x, y\\rangle}
                 {(1 - \\lVert x\\rVert^2)(1 - \\lVert y\\rVert^2)}
      = 2\\,\\langle \\tilde x, \\tilde y\\rangle,

with lifted vectors :math:`\\tilde x = a\\,[\\lVert x\\rVert^2, 1, -2x]` and
:math:`\\tilde y = b\\,[1, \\lVert y\\rVert^2, y]` (:math:`a = 1/(1-\\lVert x\\rVert^2)`,
:math:`b = 1/(1-\\lVert y\\rVert^2)`), so all pairs of one ball are one batched matrix product
with inner dimension ``d + 2``. A custom autograd function walks over label chunks and
recomputes instead of storing, so memory is bounded by the chunk size, forward and backward.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable

import torch

from hyperim.geometry.numerics import MIN_NORM, acosh_min_gap
from hyperim.geometry.poincare import dist
from hyperim.geometry.product import Aggregate, combine_ball_distances

#: Elements of one ``(G, n, M, chunk)`` working tensor; bounds the interaction's memory.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def lift_words(x: torch.Tensor) -> torch.Tensor:
    """``(..., n, d) -> (..., n, d + 2)``: :math:`a[\\lVert x\\rVert^2, 1, -2x]`."""
    x2 = x.pow(2).sum(-1, keepdim=True)
    a = 1 / (1 - x2).clamp_min(MIN_NORM)
    return torch.cat([x2 * a, a, -2 * a * x], dim=-1)


def lift_labels(y: torch.Tensor) -> torch.Tensor:
    """``(..., n, d) -> (..., n, d + 2)``: :math:`b[1, \\lVert y\\rVert^2, y]`."""
    y2 = y.pow(2).sum(-1, keepdim=True)
    b = 1 / (1 - y2).clamp_min(MIN_NORM)
    return torch.cat([b, y2 * b, b * y], dim=-1)


def _lifted_inner(xl: torch.Tensor, yl: torch.Tensor) -> torch.Tensor:
    """``u = 2 <x~, y~>`` for ``(G, n, M, q) x (G, n, q, L) -> (G, n, M, L)``, written as ``q``
    broadcast products so a compiler fuses it with what follows (no matmul of inner size 4);
    run eagerly, one batched matmul is faster."""
    if not torch.compiler.is_compiling():
        return 2 * torch.matmul(xl, yl)
    u = xl[..., 0:1] * yl[..., 0:1, :]
    for j in range(1, xl.shape[-1]):
        u = u + xl[..., j : j + 1] * yl[..., j : j + 1, :]
    return 2 * u


def _forward_chunk(xl: torch.Tensor, yl: torch.Tensor, aggregate: str, gap: float) -> torch.Tensor:
    """Product distances ``(G, M, L)`` of one label chunk: acosh(1 + u) = log1p(u + √(u(u+2)))."""
    u = _lifted_inner(xl, yl).clamp_min(gap)
    d = torch.log1p(u + torch.sqrt(u * (u + 2)))
    return combine_ball_distances(d, aggregate, dim=1)


def _backward_chunk(
    xl: torch.Tensor,
    yl: torch.Tensor,
    grad: torch.Tensor,
    out: torch.Tensor,
    aggregate: str,
    gap: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. ``xl`` ``(G, n, M, q)`` and ``yl`` ``(G, n, q, L)`` for one chunk,
    recomputing ``u`` instead of storing it."""
    u = _lifted_inner(xl, yl)
    live = u > gap  # the clamp's gradient is 0 where it bites
    u = u.clamp_min(gap)
    s = torch.sqrt(u * (u + 2))
    g = grad[:, None]  # (G, 1, M, L)
    if aggregate == "riemannian":  # ∂√(Σ d²)/∂d_i = d_i / D
        g = g * torch.log1p(u + s) / out[:, None].clamp_min(1e-30)
    # d acosh(1+u)/du = 1/√(u(u+2)), du/d<x~,y~> = 2
    gu = torch.where(live, 2 * g / s, torch.zeros_like(s))  # (G, n, M, L)
    q = xl.shape[-1]
    gx = torch.stack([(gu * yl[..., j : j + 1, :]).sum(-1) for j in range(q)], dim=-1)
    gy = torch.stack([(gu * xl[..., j : j + 1]).sum(-2) for j in range(q)], dim=-2)
    return gx, gy


#: Documents from which batch inference compiles the kernels (in the ``auto`` mode):
#: compiling costs 15-40 s on a 2-core machine once per process, and pays back only over
#: thousands of documents; one text, or a handful, is scored eagerly at once.
COMPILE_MIN_DOCS = 2000


class _Kernels:
    """The chunk kernels, compiled with ``torch.compile`` where the work pays for it.

    Compilation fuses each chunk into one loop nest (3-7x faster than eager on CPU) but costs
    seconds of warm-up per process and shape. ``HYPERIM_COMPILE`` chooses: ``1`` always,
    ``0`` never, unset (``auto``) when :meth:`worth_it` is told of enough work — training, or
    batch inference of :data:`COMPILE_MIN_DOCS` documents or more. If compiling fails (no C
    compiler, say), hyperim warns once and runs the same functions eagerly.
    """

    #: Kernels compiled for the first shape they see, and shape-generic only for the others
    #: (``dynamic=None``): the GRU cell runs T times per batch on small tensors, where
    #: shape-generic code costs twice as much, and nearly every batch has the same size.
    STATIC_FIRST = frozenset({"gru_cell"})

    def __init__(self) -> None:
        mode = os.environ.get("HYPERIM_COMPILE", "auto")
        self.enabled = mode == "1"
        self.auto = mode not in ("0", "1")
        self._compiled: dict[str, Callable] = {}

    def worth_it(self, documents: float = math.inf) -> None:
        """In ``auto`` mode, compile from now on if ``documents`` (default: training) is work
        enough."""
        if self.auto and documents >= COMPILE_MIN_DOCS:
            self.enabled = True

    def get(self, name: str, fn: Callable) -> Callable:
        if not self.enabled:
            return fn
        if name not in self._compiled:
            dynamic = None if name in self.STATIC_FIRST else True
            self._compiled[name] = torch.compile(fn, dynamic=dynamic)
        return self._compiled[name]

    def run(self, name: str, fn: Callable, *args: object) -> object:
        try:
            return self.get(name, fn)(*args)
        except Exception as e:
            if not self.enabled:
                raise
            warnings.warn(
                f"torch.compile unavailable ({type(e).__name__}); running eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            self.enabled = self.auto = False
            return fn(*args)


KERNELS = _Kernels()


def set_compile(enabled: bool) -> None:
    """Turn compilation of the interaction kernels on or off for good (overrides both
    ``HYPERIM_COMPILE`` and the ``auto`` choice)."""
    KERNELS.enabled, KERNELS.auto = enabled, False


def compile_if_worth_it(documents: float = math.inf) -> None:
    """Tell the kernels how much work is coming (see :class:`_Kernels`)."""
    KERNELS.worth_it(documents)


#: Most labels in one tile: the tile's innermost (contiguous, vectorised) axis is the label
#: axis, so it is kept long; a short one (a few labels per chunk) runs several times slower.
LABEL_TILE = 1024


def _tiles(g: int, n: int, m: int, total: int, chunk_elements: int) -> list[tuple[slice, ...]]:
    """Tiles ``(groups, words, labels)`` of the ``(G, n, M, L)`` work so that one tile's
    ``(Gc, n, Mc, Lc)`` tensor holds at most ``chunk_elements`` (or one row of ``Lc`` labels).

    Labels stay whole up to :data:`LABEL_TILE`; then word rows shrink; then groups are joined.
    """
    lc = min(total, LABEL_TILE, max(1, chunk_elements // n))
    per_group = n * m * lc
    if per_group <= chunk_elements:
        gc, mc = max(1, min(g, chunk_elements // per_group)), m
    else:
        gc, mc = 1, max(1, chunk_elements // (n * lc))
    return [
        (slice(g0, g0 + gc), slice(m0, m0 + mc), slice(l0, l0 + lc))
        for g0 in range(0, g, gc)
        for m0 in range(0, m, mc)
        for l0 in range(0, total, lc)
    ]


class _PairwiseDistance(torch.autograd.Function):
    """``(G, n, M, q) x (G, n, q, L) -> (G, M, L)`` product distances; see module docstring."""

    @staticmethod
    def forward(ctx, xl, yl, aggregate, chunk_elements):
        g, n, m, _ = xl.shape
        total = yl.shape[-1]
        gap = acosh_min_gap(xl.dtype)
        out = xl.new_empty((g, m, total))
        tiles = _tiles(g, n, m, total, chunk_elements)
        for gs, ms, ls in tiles:
            out[gs, ms, ls] = KERNELS.run(
                "forward", _forward_chunk, xl[gs, :, ms], yl[gs, ..., ls], aggregate, gap
            )
        ctx.save_for_backward(xl, yl, out)
        ctx.aggregate, ctx.tiles = aggregate, tiles
        return out

    @staticmethod
    def backward(ctx, grad):
        xl, yl, out = ctx.saved_tensors
        gap = acosh_min_gap(xl.dtype)
        grad_x = torch.zeros_like(xl)
        grad_y = torch.zeros_like(yl)
        grad = grad.contiguous()
        for gs, ms, ls in ctx.tiles:
            gx, gy = KERNELS.run(
                "backward",
                _backward_chunk,
                xl[gs, :, ms],
                yl[gs, ..., ls],
                grad[gs, ms, ls],
                out[gs, ms, ls],
                ctx.aggregate,
                gap,
            )
            grad_x[gs, :, ms] += gx
            grad_y[gs, ..., ls] += gy
        return grad_x, grad_y, None, None


def pairwise_dist(
    x: torch.Tensor,
    y: torch.Tensor,
    aggregate: Aggregate = "sum",
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Product distances between every word and every label.

    Parameters
    ----------
    x : (B, T, n, d)
        Points (encoded words).
    y : (C, n, d) or (B, L, n, d)
        Labels shared by all documents, or a label set per document (partial interaction).
    aggregate : "sum" or "riemannian"
        How per-ball distances combine (:func:`combine_ball_distances`).
    chunk_elements : int
        Work-tensor budget; memory does not grow with the number of labels beyond it.

    Returns
    -------
    (B, T, C) or (B, T, L) distances.
    """
    if y.dim() == 3:  # shared labels: one group of B*T rows
        b, t = x.shape[:2]
        xg, yg = KERNELS.run("lift_shared", _lift_shared, x, y)  # (1, n, BT, q), (1, n, q, C)
        return _PairwiseDistance.apply(xg, yg, aggregate, chunk_elements).view(b, t, -1)
    xg, yg = KERNELS.run("lift_per_doc", _lift_per_doc, x, y)  # (B, n, T, q), (B, n, q, L)
    return _PairwiseDistance.apply(xg, yg, aggregate, chunk_elements)


def _lift_shared(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lifted words ``(1, n, B*T, q)`` and labels ``(1, n, q, C)``, contiguous (the kernels
    stream along words and labels; strided inputs make them 4x slower)."""
    b, t, n, _ = x.shape
    xg = lift_words(x).reshape(1, b * t, n, -1).transpose(1, 2).contiguous()
    yg = lift_labels(y).permute(1, 2, 0).unsqueeze(0).contiguous()
    return xg, yg


def _lift_per_doc(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lifted words ``(B, n, T, q)`` and each document's labels ``(B, n, q, L)``, contiguous."""
    xg = lift_words(x).transpose(1, 2).contiguous()
    yg = lift_labels(y).permute(0, 2, 3, 1).contiguous()
    return xg, yg


def pairwise_dist_naive(
    x: torch.Tensor, y: torch.Tensor, aggregate: Aggregate = "sum"
) -> torch.Tensor:
    """Reference: the broadcast Möbius sum of Eq. (1) over ``(B, T, C, n, d)``. Slow, huge."""
    if y.dim() == 3:
        y = y.unsqueeze(0)  # (1, C, n, d)
    per_ball = dist(x[:, :, None], y[:, None])  # (B, T, C, n)
    return combine_ball_distances(per_ball, aggregate)
