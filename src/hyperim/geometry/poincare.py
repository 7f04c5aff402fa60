"""Pure functions on the Poincaré ball of curvature -1 (paper §"The Poincaré Ball").

Every function works on the last axis, so a tensor of shape ``(..., n_balls, ball_dim)`` is
treated as ``n_balls`` independent points: the product-of-balls layout is first-class.
``project``, ``mobius_add``, ``expmap0`` and ``logmap0`` also take ``dim``, the coordinate axis,
for the "planar" layout ``(..., ball_dim, n_balls)`` that the GRU's hot loop uses (its per-ball
reductions then run along a vectorised axis). Functions
that need a matrix or a distance across balls live in :mod:`hyperim.geometry.product`.

All clamps come from :mod:`hyperim.geometry.numerics`.
"""

from __future__ import annotations

import torch

from hyperim.geometry.numerics import MAX_NORM, MIN_NORM, acosh_min_gap, artanh, safe_norm


def project(x: torch.Tensor, max_norm: float = MAX_NORM, dim: int = -1) -> torch.Tensor:
    r"""Project points back into the ball of radius ``max_norm`` (paper: ``1 - 1e-5``).

    .. math:: \pi(x) = x \cdot \min\left(1, \frac{r}{\lVert x \rVert}\right)

    Dividing by the norm (not the squared norm) keeps the direction and never inverts a point.
    """
    n = safe_norm(x, dim=dim)
    return x * torch.where(n > max_norm, max_norm / n, torch.ones_like(n))


def lambda_x(x: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    r"""Conformal factor :math:`\lambda_x = 2 / (1 - \lVert x \rVert^2)`."""
    return 2.0 / (1.0 - x.pow(2).sum(dim=-1, keepdim=keepdim)).clamp_min(MIN_NORM)


def mobius_add(x: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Möbius addition.

    .. math::
        x \oplus y = \frac{(1 + 2\langle x, y\rangle + \lVert y\rVert^2)\,x
                            + (1 - \lVert x\rVert^2)\,y}
                           {1 + 2\langle x, y\rangle + \lVert x\rVert^2 \lVert y\rVert^2}
    """
    x2 = x.pow(2).sum(dim=dim, keepdim=True)
    y2 = y.pow(2).sum(dim=dim, keepdim=True)
    xy = (x * y).sum(dim=dim, keepdim=True)
    num = (1 + 2 * xy + y2) * x + (1 - x2) * y
    den = 1 + 2 * xy + x2 * y2
    return num / den.clamp_min(MIN_NORM)


def expmap0(v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Exponential map at 0: :math:`\exp_0(v) = \tanh(\lVert v\rVert)\, v / \lVert v\rVert`."""
    n = safe_norm(v, dim=dim)
    return torch.tanh(n) * (v / n)


def logmap0(y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Logarithmic map at 0: :math:`\log_0(y) = \operatorname{artanh}(\lVert y\rVert)\, y/\lVert y\rVert`."""
    n = safe_norm(y, dim=dim)
    return artanh(n) * (y / n)


def expmap(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Exponential map at ``x``.

    .. math:: \exp_x(v) = x \oplus \left(\tanh\!\left(\tfrac{\lambda_x}{2}\lVert v\rVert\right)
              \frac{v}{\lVert v\rVert}\right)
    """
    n = safe_norm(v)
    return mobius_add(x, torch.tanh(lambda_x(x) * n / 2) * (v / n))


def logmap(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Logarithmic map at ``x``.

    .. math:: \log_x(y) = \frac{2}{\lambda_x}\operatorname{artanh}(\lVert -x \oplus y\rVert)
              \frac{-x \oplus y}{\lVert -x \oplus y\rVert}
    """
    u = mobius_add(-x, y)
    n = safe_norm(u)
    return (2 / lambda_x(x)) * artanh(n) * (u / n)


def dist(x: torch.Tensor, y: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    r"""Geodesic distance, Eq. (1): :math:`d(x, y) = 2\operatorname{artanh}(\lVert -x \oplus y\rVert)`."""
    return 2 * artanh(safe_norm(mobius_add(-x, y), keepdim=keepdim))


def dist_acosh(x: torch.Tensor, y: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    r"""The same distance in its ambient form (used by the fast interaction).

    .. math:: d(x, y) = \cosh^{-1}\!\left(1 + \tfrac12 \lambda_x \lambda_y \lVert x - y\rVert^2\right)
    """
    z = 1 + 0.5 * lambda_x(x, keepdim) * lambda_x(y, keepdim) * (x - y).pow(2).sum(-1, keepdim)
    return torch.acosh(z.clamp_min(1 + acosh_min_gap(z.dtype)))


def mobius_matvec(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Möbius matrix–vector product for ``m`` of shape ``(out, in)``.

    .. math:: M \otimes x = \tanh\!\left(\frac{\lVert Mx\rVert}{\lVert x\rVert}
              \operatorname{artanh}(\lVert x\rVert)\right)\frac{Mx}{\lVert Mx\rVert},
              \qquad M \otimes x = 0 \text{ if } Mx = 0.

    This equals :math:`\exp_0(M \log_0(x))`; the ``Mx = 0`` case falls out with a zero
    (finite) gradient because the norms are perturbed away from 0.
    """
    return expmap0(logmap0(x) @ m.transpose(-1, -2))


def mobius_pointwise(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\operatorname{diag}(w) \otimes x = \exp_0(w \odot \log_0(x))` (Eq. 5's gates)."""
    return expmap0(w * logmap0(x))


def mobius_fn(fn, x: torch.Tensor) -> torch.Tensor:
    r"""Möbius version of a pointwise non-linearity: :math:`\varphi^{\otimes}(x) = \exp_0(\varphi(\log_0 x))`."""
    return expmap0(fn(logmap0(x)))
