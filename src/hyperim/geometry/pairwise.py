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


class _Kernels:
    """The chunk kernels, compiled with ``torch.compile`` when possible.

    Compilation fuses each chunk into one loop nest (3-7x faster than eager on CPU). It is on
    unless ``HYPERIM_COMPILE=0``; if compiling fails (no C compiler, say), hyperim warns once
    and runs the same functions eagerly.
    """

    def __init__(self) -> None:
        self.enabled = os.environ.get("HYPERIM_COMPILE", "1") != "0"
        self._compiled: dict[str, Callable] = {}

    def get(self, name: str, fn: Callable) -> Callable:
        if not self.enabled:
            return fn
        if name not in self._compiled:
            self._compiled[name] = torch.compile(fn, dynamic=True)
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
            self.enabled = False
            return fn(*args)


KERNELS = _Kernels()


def set_compile(enabled: bool) -> None:
    """Turn compilation of the interaction kernels on or off (also ``HYPERIM_COMPILE=0``)."""
    KERNELS.enabled = enabled


def _chunk_size(g: int, n: int, m: int, total: int, chunk_elements: int) -> int:
    return max(1, min(total, chunk_elements // max(1, g * n * m)))


class _PairwiseDistance(torch.autograd.Function):
    """``(G, n, M, q) x (G, n, q, L) -> (G, M, L)`` product distances; see module docstring."""

    @staticmethod
    def forward(ctx, xl, yl, aggregate, chunk_elements):
        g, n, m, _ = xl.shape
        total = yl.shape[-1]
        gap = acosh_min_gap(xl.dtype)
        out = xl.new_empty((g, m, total))
        step = _chunk_size(g, n, m, total, chunk_elements)
        for lo in range(0, total, step):
            ylc = yl[..., lo : lo + step]
            out[..., lo : lo + step] = KERNELS.run(
                "forward", _forward_chunk, xl, ylc, aggregate, gap
            )
        ctx.save_for_backward(xl, yl, out)
        ctx.aggregate, ctx.step = aggregate, step
        return out

    @staticmethod
    def backward(ctx, grad):
        xl, yl, out = ctx.saved_tensors
        gap = acosh_min_gap(xl.dtype)
        grad_x = torch.zeros_like(xl)
        grad_y = torch.empty_like(yl)
        step = ctx.step
        grad = grad.contiguous()
        for lo in range(0, yl.shape[-1], step):
            sl = slice(lo, lo + step)
            gx, gy = KERNELS.run(
                "backward",
                _backward_chunk,
                xl,
                yl[..., sl],
                grad[..., sl],
                out[..., sl],
                ctx.aggregate,
                gap,
            )
            grad_x += gx
            grad_y[..., sl] = gy
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
    b, t, n, _ = x.shape
    xl = lift_words(x)  # (B, T, n, q)
    yl = lift_labels(y)
    if y.dim() == 3:  # shared labels: one group of B*T rows
        xg = xl.reshape(1, b * t, n, -1).transpose(1, 2)  # (1, n, BT, q)
        yg = yl.permute(1, 2, 0).unsqueeze(0)  # (1, n, q, C)
        return _PairwiseDistance.apply(xg, yg, aggregate, chunk_elements).view(b, t, -1)
    xg = xl.transpose(1, 2)  # (B, n, T, q)
    yg = yl.permute(0, 2, 3, 1)  # (B, n, q, L)
    return _PairwiseDistance.apply(xg, yg, aggregate, chunk_elements)


def pairwise_dist_naive(
    x: torch.Tensor, y: torch.Tensor, aggregate: Aggregate = "sum"
) -> torch.Tensor:
    """Reference: the broadcast Möbius sum of Eq. (1) over ``(B, T, C, n, d)``. Slow, huge."""
    if y.dim() == 3:
        y = y.unsqueeze(0)  # (1, C, n, d)
    per_ball = dist(x[:, :, None], y[:, None])  # (B, T, C, n)
    return combine_ball_distances(per_ball, aggregate)
