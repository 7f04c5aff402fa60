"""The torch.compile'd kernels (interaction and GRU cell) equal the eager ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from hyperim.geometry import MAX_NORM, pairwise_dist, pairwise_dist_naive, project
from hyperim.geometry.pairwise import KERNELS, set_compile
from hyperim.nn import HyperbolicGRU

pytestmark = [
    pytest.mark.filterwarnings("ignore:torch.compile unavailable:RuntimeWarning"),
    # raised (and then ignored) inside dynamo when it inspects non-leaf inputs
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
]


@pytest.fixture
def compiled() -> Iterator[None]:
    before = KERNELS.enabled
    set_compile(True)
    yield
    set_compile(before)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("aggregate", ["sum", "riemannian"])
def test_compiled_interaction_equals_naive(
    compiled: None, dtype: torch.dtype, aggregate: str
) -> None:
    g = torch.Generator().manual_seed(0)
    x = project(torch.randn(2, 7, 4, 2, generator=g, dtype=dtype) * 0.4, 0.95).requires_grad_()
    y = project(torch.randn(2, 9, 4, 2, generator=g, dtype=dtype) * 0.4, 0.95).requires_grad_()
    fast = pairwise_dist(x, y, aggregate, chunk_elements=100)  # several chunks
    slow = pairwise_dist_naive(x, y, aggregate)
    tol = dict(rtol=1e-6, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast, slow, **tol)
    gf = torch.autograd.grad(fast.sum(), (x, y))
    gs = torch.autograd.grad(slow.sum(), (x, y))
    for a, b in zip(gf, gs, strict=True):
        torch.testing.assert_close(
            a,
            b,
            **(
                {"rtol": 1e-6, "atol": 1e-8}
                if dtype == torch.float64
                else {"rtol": 1e-3, "atol": 1e-3}
            ),
        )


def test_compiled_boundary_gradients_finite(compiled: None) -> None:
    x = project(torch.randn(2, 5, 3, 2) * 10, MAX_NORM).requires_grad_()
    y = project(torch.randn(6, 3, 2) * 10, MAX_NORM).requires_grad_()
    gx, gy = torch.autograd.grad(pairwise_dist(x, y).sum(), (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


def test_compiled_gru_equals_eager() -> None:
    torch.manual_seed(0)
    gru = HyperbolicGRU(3, 2, phi="tanh", checkpoint_steps=2).double()  # 3 segments
    e = project(torch.randn(2, 5, 3, 2, dtype=torch.float64) * 0.3)
    before = KERNELS.enabled
    try:
        set_compile(False)
        eager = gru(e)
        g_eager = torch.autograd.grad(eager.sum(), gru.w_rz)[0]
        set_compile(True)
        comp = gru(e)
        g_comp = torch.autograd.grad(comp.sum(), gru.w_rz)[0]
    finally:
        set_compile(before)
    torch.testing.assert_close(comp, eager)
    torch.testing.assert_close(g_comp, g_eager)
