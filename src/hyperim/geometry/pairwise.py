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


def _acosh1p(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(acosh(1 + u), sqrt(u (u + 2)))`` for ``u >= gap``, accurate for small ``u``."""
    s = (u * (u + 2)).sqrt_()
    return torch.log1p(u + s), s


def _chunk_size(g: int, n: int, m: int, total: int, chunk_elements: int) -> int:
    return max(1, min(total, chunk_elements // max(1, g * n * m)))


class _PairwiseDistance(torch.autograd.Function):
    """``(G, n, M, q) x (G, n, q, L) -> (G, M, L)`` product distances; see module docstring."""

    @staticmethod
    def forward(ctx, xl, yl, aggregate, chunk_elements):  # noqa: ANN001, ANN205
        g, n, m, _ = xl.shape
        total = yl.shape[-1]
        gap = acosh_min_gap(xl.dtype)
        out = xl.new_empty((g, m, total))
        step = _chunk_size(g, n, m, total, chunk_elements)
        for lo in range(0, total, step):
            u = torch.matmul(xl, yl[..., lo : lo + step]).mul_(2).clamp_min_(gap)  # (G, n, M, c)
            d, _ = _acosh1p(u)
            out[..., lo : lo + step] = combine_ball_distances(d, aggregate, dim=1)
        ctx.save_for_backward(xl, yl, out)
        ctx.aggregate, ctx.step = aggregate, step
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        xl, yl, out = ctx.saved_tensors
        gap = acosh_min_gap(xl.dtype)
        grad_x = torch.zeros_like(xl) if ctx.needs_input_grad[0] else None
        grad_y = torch.zeros_like(yl) if ctx.needs_input_grad[1] else None
        step = ctx.step
        for lo in range(0, yl.shape[-1], step):
            ylc = yl[..., lo : lo + step]
            u = torch.matmul(xl, ylc).mul_(2)  # (G, n, M, c)
            live = u > gap  # the clamp's gradient is 0 where it bites
            u.clamp_min_(gap)
            d, s = _acosh1p(u)
            g = grad[:, None, :, lo : lo + step]  # (G, 1, M, c)
            if ctx.aggregate == "riemannian":
                g = g * d / out[:, None, :, lo : lo + step].clamp_min(1e-30)
            # d/du acosh(1+u) = 1/sqrt(u(u+2)); du/d<x~,y~> = 2
            gu = (2 * g / s).mul_(live)
            if grad_x is not None:
                grad_x += torch.matmul(gu, ylc.transpose(-1, -2))
            if grad_y is not None:
                grad_y[..., lo : lo + step] = torch.matmul(xl.transpose(-1, -2), gu)
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


def pairwise_dist_naive(x: torch.Tensor, y: torch.Tensor, aggregate: Aggregate = "sum") -> torch.Tensor:
    """Reference: the broadcast Möbius sum of Eq. (1) over ``(B, T, C, n, d)``. Slow, huge."""
    if y.dim() == 3:
        y = y.unsqueeze(0)  # (1, C, n, d)
    per_ball = dist(x[:, :, None], y[:, None])  # (B, T, C, n)
    return combine_ball_distances(per_ball, aggregate)
