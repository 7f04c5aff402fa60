"""Products of low-dimensional Poincaré balls (the paper's 75×2D embeddings).

A point of :math:`(\\mathbb{B}^d)^n` is a tensor of shape ``(..., n, d)``. Per-ball operations
are the functions of :mod:`hyperim.geometry.poincare`; this module adds what crosses balls: the
distance over the product and the Möbius matrix–vector product with a full matrix.
"""

from __future__ import annotations

from typing import Literal

import torch

from hyperim.geometry.poincare import dist, expmap0, logmap0

#: How per-ball distances combine into one distance over the product.
#: ``"sum"``: :math:`\sum_i d_i` (the authors' code); ``"riemannian"``: :math:`\sqrt{\sum_i d_i^2}`,
#: the product manifold's own geodesic distance (what Poincaré GloVe uses).
Aggregate = Literal["sum", "riemannian"]


def combine_ball_distances(d: torch.Tensor, aggregate: Aggregate, dim: int = -1) -> torch.Tensor:
    """Combine per-ball distances along ``dim`` into the product distance."""
    if aggregate == "sum":
        return d.sum(dim=dim)
    if aggregate == "riemannian":
        return d.pow(2).sum(dim=dim).clamp_min(1e-30).sqrt()
    raise ValueError(f"unknown aggregate {aggregate!r}; expected 'sum' or 'riemannian'")


def product_dist(x: torch.Tensor, y: torch.Tensor, aggregate: Aggregate = "sum") -> torch.Tensor:
    """Distance between points of shape ``(..., n, d)``: per-ball Eq. (1), then combined."""
    return combine_ball_distances(dist(x, y), aggregate)


def product_matvec(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Möbius matrix–vector product on a product of balls.

    ``x`` has shape ``(..., n, d)`` and ``m`` shape ``(n_out * d, n * d)``; the result has shape
    ``(..., n_out, d)``:

    .. math:: M \otimes x = \exp_0\!\left(M \log_0(x)\right)

    with :math:`\log_0`, :math:`\exp_0` taken ball by ball. For a single ball (``n = 1``) this is
    exactly the paper's Möbius matrix–vector product; over a product it lets one matrix mix
    the balls (the authors' code shares one ``d × d`` matrix across balls instead).
    """
    d = x.shape[-1]
    v = logmap0(x).flatten(-2) @ m.transpose(-1, -2)  # (..., n_out * d)
    return expmap0(v.unflatten(-1, (-1, d)))
