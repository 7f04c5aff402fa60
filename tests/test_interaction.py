"""The fused interaction equals the naive broadcast Möbius formula, values and gradients."""

from __future__ import annotations

import pytest
import torch

from hyperim.geometry import MAX_NORM, pairwise_dist, pairwise_dist_naive, project


def ball_points(
    shape: tuple[int, ...], seed: int, scale: float = 0.4, dtype=torch.float64
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return project(torch.randn(*shape, generator=g, dtype=dtype) * scale, max_norm=0.95)


@pytest.mark.parametrize("aggregate", ["sum", "riemannian"])
@pytest.mark.parametrize("per_document", [False, True])
@pytest.mark.parametrize("chunk", [7, 1 << 24])
def test_fused_equals_naive_float64(aggregate: str, per_document: bool, chunk: int) -> None:
    x = ball_points((3, 6, 5, 2), 0).requires_grad_()
    y = ball_points((3, 11, 5, 2) if per_document else (11, 5, 2), 1).requires_grad_()
    fast = pairwise_dist(x, y, aggregate, chunk_elements=chunk)
    slow = pairwise_dist_naive(x, y, aggregate)
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-10)
    w = torch.randn_like(slow)
    gf = torch.autograd.grad((fast * w).sum(), (x, y))
    gs = torch.autograd.grad((slow * w).sum(), (x, y))
    for a, b in zip(gf, gs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_gradcheck_fused() -> None:
    x = ball_points((2, 3, 2, 2), 2).requires_grad_()
    y = ball_points((4, 2, 2), 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: pairwise_dist(a, b, "sum", 5), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: pairwise_dist(a, b, "riemannian", 5), (x, y))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_near_boundary_and_at_zero(dtype: torch.dtype) -> None:
    x = ball_points((2, 4, 3, 2), 4, scale=10.0, dtype=dtype)
    x = project(x, MAX_NORM)  # on the paper's boundary radius
    x[0, 0] = 0.0  # and exactly at the origin
    y = torch.cat(
        [x[0, :2], project(ball_points((3, 3, 2), 5, 10.0, dtype))]
    ).detach()  # equal points too
    x.requires_grad_()
    y.requires_grad_()
    d = pairwise_dist(x, y)
    assert torch.isfinite(d).all() and (d >= 0).all()
    gx, gy = torch.autograd.grad(d.sum(), (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


def test_float32_close_to_float64_reference() -> None:
    x64, y64 = ball_points((2, 5, 4, 2), 6), ball_points((7, 4, 2), 7)
    ref = pairwise_dist_naive(x64, y64)
    got = pairwise_dist(x64.float(), y64.float()).double()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
