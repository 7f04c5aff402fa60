"""All-pairs Euclidean distances between words and labels: EuclideanIM's interaction.

EuclideanIM, the paper's Euclidean ablation of HyperIM, scores a word against a label by
``score(x_t, l_i) = -‖θ^w_t - θ^l_i‖``. Broadcasting the difference builds a ``(B, T, C, k)``
tensor (64 × 256 × 608 × 150 float32 is 6 GB, twice that with autograd's saved tensors). Here
every distance comes from norms and one matrix product:

.. math::
    d(w, l) = \\sqrt{\\max(\\lVert w\\rVert^2 + \\lVert l\\rVert^2 - 2\\langle w, l\\rangle,\\ 0)},

and a custom autograd function walks over label chunks, forward and backward, so that no
working tensor exceeds :data:`CHUNK_ELEMENTS` elements (besides the ``(B, T, L)`` output).

Backward uses the exact gradient :math:`\\partial d/\\partial w = (w - l)/d` without the 4-D
tensor: with :math:`h_{tl} = g_{tl}/d_{tl}` (``g`` the incoming gradient),

.. math::
    \\nabla_{w_t} = \\sum_l h_{tl}(w_t - l_l) = w_t \\sum_l h_{tl} - (h L)_t, \\qquad
    \\nabla_{l_l} = \\sum_t h_{tl}(l_l - w_t) = l_l \\sum_t h_{tl} - (h^\\top W)_l,

two more matrix products per chunk. At ``d = 0`` (a word equal to a label) the distance is not
differentiable; the pair contributes the subgradient 0, so gradients stay finite.

Precision. ``‖w‖² + ‖l‖² - 2⟨w, l⟩`` cancels for near points. With ``S² = ‖w‖² + ‖l‖²`` its
absolute error is a few ``eps · S²``, so the error of ``d`` is about
``min(sqrt(eps · S²), eps · S² / d)`` (measured: at most twice that, k ≤ 150, against the exact
distance of the same float32 inputs): relative error ``eps · (S/d)²``, full precision
for far pairs (d ~ S) and an absolute error of ``sqrt(eps) · S`` for near ones — in float32
(eps ≈ 1.2e-7) about ``3.5e-4 · S``. Pairs closer than that may come out as exactly 0 (and
then get gradient 0). The backward's direction ``w - l`` involves no square root of a cancelled
quantity, but it divides by the forward's ``d``, so a near pair's gradient length
``‖w - l‖ / d`` is 1 only up to ``d``'s relative error. In float64 (eps ≈ 2.2e-16) this is
negligible; :func:`euclidean_pairwise_dist_naive` is the exact (and memory-hungry) reference.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

#: Most elements of one ``(G, M, chunk)`` working tensor (G groups of M words against a chunk
#: of labels); bounds the memory of the forward and backward passes beyond their output.
CHUNK_ELEMENTS = 1 << 24


def _label_slices(g: int, m: int, total: int, chunk_elements: int) -> list[slice]:
    """Label chunks such that ``g * m * chunk <= chunk_elements`` (at least one label each)."""
    lc = max(1, min(total, chunk_elements // max(1, g * m)))
    return [slice(l0, l0 + lc) for l0 in range(0, total, lc)]


class _EuclideanPairwise(torch.autograd.Function):
    """``(G, M, k) x (G, N, k) -> (G, M, N)`` distances; see the module docstring."""

    @staticmethod
    def forward(ctx, w, lab, chunk_elements):
        g, m, _ = w.shape
        total = lab.shape[1]
        w2 = w.pow(2).sum(-1)[:, :, None]  # (G, M, 1)
        l2 = lab.pow(2).sum(-1)[:, None, :]  # (G, 1, N)
        out = w.new_empty((g, m, total))  # (G, M, N)
        slices = _label_slices(g, m, total, chunk_elements)
        for ls in slices:
            # ‖w‖² + ‖l‖² - 2⟨w, l⟩ for one chunk, clamped at 0 (cancellation can go below)
            d2 = torch.baddbmm(w2, w, lab[:, ls].transpose(1, 2), alpha=-2)  # (G, M, Lc)
            out[:, :, ls] = d2.add_(l2[:, :, ls]).clamp_min_(0).sqrt_()
        ctx.save_for_backward(w, lab, out)
        ctx.slices = slices
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        w, lab, out = ctx.saved_tensors
        need_w, need_l = ctx.needs_input_grad[:2]
        grad_w = torch.zeros_like(w) if need_w else None  # (G, M, k)
        grad_l = torch.zeros_like(lab) if need_l else None  # (G, N, k)
        for ls in ctx.slices:
            d = out[:, :, ls]  # (G, M, Lc)
            zero = d == 0
            h = (grad[:, :, ls] / d.masked_fill(zero, 1)).masked_fill_(zero, 0)  # g / d
            lc = lab[:, ls]  # (G, Lc, k)
            if need_w:  # w Σ_l h - h L
                grad_w.addcmul_(w, h.sum(-1, keepdim=True)).baddbmm_(h, lc, alpha=-1)
            if need_l:  # l Σ_t h - hᵀ W
                gl = torch.baddbmm(lc * h.sum(1)[:, :, None], h.transpose(1, 2), w, alpha=-1)
                grad_l[:, ls] = gl
        return grad_w, grad_l, None


def euclidean_pairwise_dist(
    words: torch.Tensor, labels: torch.Tensor, chunk_elements: int | None = None
) -> torch.Tensor:
    """Euclidean distances ``‖w_t - l_i‖`` between every word and every label, fused.

    Parameters
    ----------
    words : (B, T, k)
        Encoded words.
    labels : (C, k) or (B, L, k)
        Labels shared by all documents, or a label set per document (partial interaction).
    chunk_elements : int, optional
        Working-tensor budget in elements; :data:`CHUNK_ELEMENTS` (read at call time) if None.

    Returns
    -------
    (B, T, C) or (B, T, L) distances, differentiable in both inputs (subgradient 0 at d = 0;
    see the module docstring for float32 precision).
    """
    if words.dim() != 3 or labels.dim() not in (2, 3):
        raise ValueError(
            f"expected words (B, T, k) and labels (C, k) or (B, L, k), "
            f"got {tuple(words.shape)} and {tuple(labels.shape)}"
        )
    chunk = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    b, t, k = words.shape
    if labels.dim() == 2:  # shared labels: one group of B*T words
        wg = words.reshape(1, b * t, k)  # (1, BT, k)
        return _EuclideanPairwise.apply(wg, labels[None], chunk).view(b, t, -1)
    return _EuclideanPairwise.apply(words, labels, chunk)  # (B, T, L)


def euclidean_pairwise_dist_naive(words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference: ``‖w[:, :, None] - l‖`` broadcast over ``(B, T, C, k)``. Exact, slow, huge.

    ``words`` is ``(B, T, k)``; ``labels`` is ``(C, k)`` or ``(B, L, k)``; returns ``(B, T, C)``
    or ``(B, T, L)``.
    """
    if labels.dim() == 3:
        labels = labels[:, None]  # (B, 1, L, k)
    return (words[:, :, None] - labels).norm(dim=-1)
