"""Embeddings that live in a product of Poincaré balls (words Θ^E and labels Θ^L)."""

from __future__ import annotations

import geoopt
import torch
from torch import nn

from hyperim.geometry import PoincareBall, project


class HyperbolicEmbedding(nn.Module):
    """A table of ``num`` points in :math:`(\\mathbb{B}^d)^n`, stored as a geoopt
    ``ManifoldParameter`` so that Riemannian Adam updates it.

    Initialised uniformly in ``[-init_scale, init_scale]`` per coordinate, then projected:
    always inside the ball, never from uninitialised memory.
    """

    def __init__(self, num: int, n_balls: int, ball_dim: int, init_scale: float = 1e-3) -> None:
        super().__init__()
        self.num, self.n_balls, self.ball_dim = num, n_balls, ball_dim
        self.init_scale = init_scale
        self.weight = geoopt.ManifoldParameter(
            torch.empty(num, n_balls, ball_dim), manifold=PoincareBall()
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Draw a fresh uniform initialisation inside the ball."""
        self.weight.uniform_(-self.init_scale, self.init_scale)
        self.weight.copy_(project(self.weight))

    @torch.no_grad()
    def load_points(self, points: torch.Tensor) -> None:
        """Copy pre-trained points (shape ``(num, n_balls, ball_dim)``) in, projected."""
        if points.shape != self.weight.shape:
            raise ValueError(
                f"expected shape {tuple(self.weight.shape)}, got {tuple(points.shape)}"
            )
        self.weight.copy_(project(points.to(self.weight)))

    @torch.no_grad()
    def load_rows(self, table: torch.Tensor, found: torch.Tensor) -> None:
        """Copy the rows of ``table`` ``(num, n_balls, ball_dim)`` where ``found`` ``(num,)``
        is true; the other rows keep their values."""
        weight = self.weight.detach().clone()
        weight[found] = table[found].to(weight)
        self.load_points(weight)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """``(...) -> (..., n_balls, ball_dim)``.

        A lookup by ``F.embedding``, whose CPU backward adds rows in index order: the same
        gradient every time. ``weight[index]`` is the same lookup, but its backward (an
        accumulating ``index_put_``) adds a row repeated in a batch in an order that depends on
        thread timing, so two identical runs drifted apart by rounding (BENCHMARKS.md).
        """
        flat = nn.functional.embedding(index, self.weight.view(self.num, -1))
        return flat.view(*index.shape, self.n_balls, self.ball_dim)

    def extra_repr(self) -> str:
        return f"{self.num}, {self.n_balls}x{self.ball_dim}D"
