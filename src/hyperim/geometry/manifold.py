"""geoopt's Poincaré ball with the paper's projection radius (``1 - 1e-5``, any dtype).

geoopt projects float32 points to radius ``1 - 4e-3``; the paper (§"Numerical Errors") uses
``1 - 1e-5``. Riemannian Adam retracts with :meth:`retr` and re-projects with :meth:`projx`, so
overriding both puts every hyperbolic parameter under :func:`hyperim.geometry.poincare.project`.
"""

from __future__ import annotations

import geoopt
import torch

from hyperim.geometry.poincare import project


class PoincareBall(geoopt.PoincareBall):
    """Unit Poincaré ball (curvature -1) whose projection is :func:`project`."""

    def __init__(self) -> None:
        super().__init__(c=1.0)

    def projx(self, x: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return project(x)

    def retr(self, x: torch.Tensor, u: torch.Tensor, *, dim: int = -1) -> torch.Tensor:
        return project(x + u)
