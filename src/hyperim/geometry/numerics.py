"""Every numerical guard of hyperim's hyperbolic math, in one place.

The paper (§"Numerical Errors") projects hyperbolic parameters back into the ball of radius
``1 - 1e-5`` and perturbs vectors near 0 by ``eps = 1e-15`` before Möbius operations. The
remaining clamps keep ``artanh`` and ``arccosh`` (and their gradients) finite; they depend on
the dtype because float32 cannot resolve ``1 - 1e-15``.
"""

from __future__ import annotations

import torch

#: Radius of the ball that points are projected back into (paper: ``1 - 1e-5``).
MAX_NORM: float = 1.0 - 1e-5

#: Perturbation applied to norms near 0 before dividing by them (paper: ``1e-15``).
MIN_NORM: float = 1e-15

# Largest argument passed to artanh, and smallest ``z - 1`` passed to arccosh(z), per dtype.
_ARTANH_MAX = {torch.float16: 1 - 1e-3, torch.bfloat16: 1 - 1e-2, torch.float32: 1 - 1e-7}
_ACOSH_MIN_GAP = {torch.float16: 1e-3, torch.bfloat16: 1e-2, torch.float32: 1e-7}


def artanh_max(dtype: torch.dtype) -> float:
    """Largest value fed to ``artanh`` for ``dtype`` (``1 - 1e-15`` for float64)."""
    return _ARTANH_MAX.get(dtype, 1 - 1e-15)


def acosh_min_gap(dtype: torch.dtype) -> float:
    """Smallest ``z - 1`` fed to ``arccosh(z)`` for ``dtype``, keeping its gradient finite."""
    return _ACOSH_MIN_GAP.get(dtype, 1e-15)


def safe_norm(x: torch.Tensor, keepdim: bool = True, dim: int = -1) -> torch.Tensor:
    """Euclidean norm over axis ``dim`` (the last), perturbed away from 0 (paper: eps = 1e-15)."""
    return x.norm(dim=dim, keepdim=keepdim).clamp_min(MIN_NORM)


def artanh(x: torch.Tensor) -> torch.Tensor:
    """``artanh`` with its argument clamped into ``(-1, 1)`` for the dtype."""
    m = artanh_max(x.dtype)
    return torch.atanh(x.clamp(-m, m))
