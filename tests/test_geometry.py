"""Algebraic identities of the Poincaré-ball math, over dtypes, with gradients at 0 and the edge."""

from __future__ import annotations

import geoopt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperim.geometry import (
    MAX_NORM,
    PoincareBall,
    dist,
    dist_acosh,
    expmap,
    expmap0,
    logmap,
    logmap0,
    mobius_add,
    mobius_matvec,
    product_dist,
    product_matvec,
    project,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 2e-4, torch.float64: 1e-9}
K = torch.tensor(-1.0, dtype=torch.float64)


def points(
    seed: int, shape: tuple[int, ...], dtype: torch.dtype, max_norm: float = 0.9
) -> torch.Tensor:
    """Random points with norms spread over [0, max_norm)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(*shape, generator=g, dtype=torch.float64)
    r = torch.rand(*shape[:-1], 1, generator=g, dtype=torch.float64) * max_norm
    return (v / v.norm(dim=-1, keepdim=True) * r).to(dtype)


seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 6)


@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, d=dims)
@settings(max_examples=25, deadline=None)
def test_mobius_add_identities(dtype: torch.dtype, seed: int, d: int) -> None:
    x, y = points(seed, (8, d), dtype), points(seed + 1, (8, d), dtype)
    zero = torch.zeros_like(x)
    assert torch.allclose(mobius_add(x, zero), x, atol=TOL[dtype])  # x ⊕ 0 = x
    assert torch.allclose(mobius_add(zero, x), x, atol=TOL[dtype])  # 0 ⊕ x = x
    assert torch.allclose(mobius_add(-x, x), zero, atol=TOL[dtype])  # (−x) ⊕ x = 0
    # left cancellation law: −x ⊕ (x ⊕ y) = y
    assert torch.allclose(mobius_add(-x, mobius_add(x, y)), y, atol=50 * TOL[dtype])
    assert (mobius_add(x, y).norm(dim=-1) < 1).all()


@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, d=dims)
@settings(max_examples=25, deadline=None)
def test_maps_are_inverse(dtype: torch.dtype, seed: int, d: int) -> None:
    x = points(seed, (8, d), dtype, 0.7)
    y = points(seed + 1, (8, d), dtype, 0.7)
    v = logmap(x, y)
    assert torch.allclose(expmap(x, v), y, atol=20 * TOL[dtype])  # exp_x ∘ log_x = id
    assert torch.allclose(expmap0(logmap0(y)), y, atol=TOL[dtype])  # exp_0 ∘ log_0 = id
    u = points(seed + 2, (8, d), dtype, 1.5)  # tangent vectors
    assert torch.allclose(logmap0(expmap0(u)), u, atol=10 * TOL[dtype])
    assert torch.allclose(logmap(x, expmap(x, u)), u, atol=100 * TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, d=dims)
@settings(max_examples=25, deadline=None)
def test_distance_is_a_metric(dtype: torch.dtype, seed: int, d: int) -> None:
    x, y, z = (points(seed + i, (16, d), dtype) for i in range(3))
    dxy = dist(x, y)
    assert torch.allclose(dxy, dist(y, x), atol=TOL[dtype])  # symmetry
    assert (dist(x, x) < 10 * TOL[dtype] ** 0.5).all()  # d(x, x) = 0
    assert (dxy <= dist(x, z) + dist(z, y) + 10 * TOL[dtype]).all()  # triangle inequality
    assert torch.allclose(dxy, dist_acosh(x, y), atol=10 * TOL[dtype], rtol=1e-3)  # Eq. (1) forms


@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, d=dims)
@settings(max_examples=20, deadline=None)
def test_agrees_with_geoopt(dtype: torch.dtype, seed: int, d: int) -> None:
    x, y = points(seed, (8, d), dtype), points(seed + 1, (8, d), dtype)
    k = K.to(dtype)
    m = torch.randn(d + 1, d, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    pm = geoopt.manifolds.stereographic.math
    tol = 20 * TOL[dtype]
    assert torch.allclose(mobius_add(x, y), pm.mobius_add(x, y, k=k), atol=tol)
    assert torch.allclose(dist(x, y), pm.dist(x, y, k=k), atol=tol)
    assert torch.allclose(expmap0(y), pm.expmap0(y, k=k), atol=tol)
    assert torch.allclose(logmap0(y), pm.logmap0(y, k=k), atol=tol)
    assert torch.allclose(logmap(x, y), pm.logmap(x, y, k=k), atol=tol)
    assert torch.allclose(expmap(x, y), pm.expmap(x, y, k=k), atol=tol)
    assert torch.allclose(mobius_matvec(m, x), pm.mobius_matvec(m, x, k=k), atol=tol)


def test_mobius_matvec_zero_case_has_finite_gradient() -> None:
    m = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    out = mobius_matvec(m, x)  # Mx = 0  ->  M ⊗ x = 0
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(m.grad).all() and torch.isfinite(x.grad).all()


def test_project_divides_by_the_norm() -> None:
    x = torch.tensor([[3.0, 4.0], [0.1, 0.2], [0.0, 0.0]], dtype=torch.float64)
    p = project(x)
    assert torch.allclose(
        p[0], torch.tensor([0.6, 0.8], dtype=torch.float64) * MAX_NORM
    )  # same direction
    assert torch.equal(p[1:], x[1:])  # inside points untouched
    assert project(torch.tensor([[1.2, 0.0]])).norm() <= MAX_NORM


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("radius", [0.0, MAX_NORM])
def test_finite_gradients_at_zero_and_boundary(dtype: torch.dtype, radius: float) -> None:
    direction = torch.tensor([[0.6, 0.8], [-1.0, 0.0]], dtype=dtype)
    x = (direction * radius).requires_grad_()
    y = (torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=dtype) * MAX_NORM).requires_grad_()
    m = torch.eye(2, dtype=dtype, requires_grad=True)
    for f in (
        lambda: dist(x, y).sum(),
        lambda: dist_acosh(x, y).sum(),
        lambda: logmap0(x).sum(),
        lambda: expmap0(x).sum(),
        lambda: mobius_add(x, y).sum(),
        lambda: mobius_matvec(m, x).sum(),
        lambda: logmap(y, x).sum(),
        lambda: dist(x, x).sum(),
    ):
        grads = torch.autograd.grad(f(), [x, y, m], allow_unused=True)
        for g in grads:
            assert g is None or torch.isfinite(g).all()


def test_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(0)
    x = points(0, (3, 2), torch.float64).requires_grad_()
    y = points(1, (3, 2), torch.float64).requires_grad_()
    m = torch.randn(2, 2, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(mobius_add, (x, y))
    assert torch.autograd.gradcheck(dist, (x, y))
    assert torch.autograd.gradcheck(logmap, (x, y))
    assert torch.autograd.gradcheck(expmap, (x, y))
    assert torch.autograd.gradcheck(mobius_matvec, (m, x))


def test_product_of_balls() -> None:
    x, y = points(0, (4, 5, 2), torch.float64), points(1, (4, 5, 2), torch.float64)
    per_ball = dist(x, y)  # (4, 5)
    assert torch.allclose(product_dist(x, y, "sum"), per_ball.sum(-1))
    assert torch.allclose(product_dist(x, y, "riemannian"), per_ball.pow(2).sum(-1).sqrt())
    # with a block-diagonal matrix the product matvec is the per-ball Möbius matvec
    blocks = [torch.randn(2, 2, dtype=torch.float64) for _ in range(5)]
    m = torch.block_diag(*blocks)
    expected = torch.stack([mobius_matvec(b, x[:, i]) for i, b in enumerate(blocks)], dim=1)
    assert torch.allclose(product_matvec(m, x), expected, atol=1e-12)
    # one ball: exactly the paper's Möbius matvec
    m1 = torch.randn(2, 2, dtype=torch.float64)
    assert torch.allclose(product_matvec(m1, x[:, :1]), mobius_matvec(m1, x[:, :1]), atol=1e-12)


def test_manifold_uses_paper_radius() -> None:
    ball = PoincareBall()
    p = ball.projx(torch.tensor([[2.0, 0.0]]))
    assert abs(p.norm().item() - MAX_NORM) < 1e-6  # geoopt alone would use 1 - 4e-3 in float32
    r = ball.retr(torch.tensor([[0.99, 0.0]]), torch.tensor([[0.5, 0.0]]))
    assert r.norm() <= MAX_NORM + 1e-7
