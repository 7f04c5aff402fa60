"""The fused Euclidean all-pairs distance (EuclideanIM) equals the broadcast formula."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hyperim.geometry import euclidean
from hyperim.geometry.euclidean import euclidean_pairwise_dist, euclidean_pairwise_dist_naive

F32_EPS = torch.finfo(torch.float32).eps


def points(shape: tuple[int, ...], seed: int, scale: float = 1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).mul_(scale).to(dtype)


def labels_for(per_document: bool, b: int, c: int, k: int, seed: int) -> torch.Tensor:
    return points((b, c, k) if per_document else (c, k), seed)


def assert_matches_naive(words, labels, rtol=1e-10, atol=1e-12, **kwargs) -> None:
    """Values and gradients (under a random upstream gradient) of fused vs naive."""
    words = words.detach().requires_grad_()
    labels = labels.detach().requires_grad_()
    fast = euclidean_pairwise_dist(words, labels, **kwargs)
    slow = euclidean_pairwise_dist_naive(words, labels)
    assert fast.shape == slow.shape
    torch.testing.assert_close(fast, slow, rtol=rtol, atol=atol)
    g = torch.randn(slow.shape, generator=torch.Generator().manual_seed(9), dtype=slow.dtype)
    gf = torch.autograd.grad(fast, (words, labels), g)
    gs = torch.autograd.grad(slow, (words, labels), g)
    for a, b in zip(gf, gs, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("per_document", [False, True])
@pytest.mark.parametrize("chunk", [None, 7])
def test_equals_naive_float64(per_document: bool, chunk: int | None, monkeypatch) -> None:
    if chunk is not None:  # force several label chunks through the module constant
        monkeypatch.setattr(euclidean, "CHUNK_ELEMENTS", chunk)
    words, labels = points((3, 5, 4), 0), labels_for(per_document, 3, 11, 4, 1)
    g, m = (3, 5) if per_document else (1, 15)
    n_chunks = len(euclidean._label_slices(g, m, 11, euclidean.CHUNK_ELEMENTS))
    assert n_chunks == (1 if chunk is None else 11)  # chunk < G*M: one label per chunk
    assert_matches_naive(words, labels)
    out = euclidean_pairwise_dist(words, labels)
    assert out.shape == (3, 5, 11)


@pytest.mark.parametrize("per_document", [False, True])
@pytest.mark.parametrize("labels_per_chunk", [1, 2, 3, 4, 5, 10, 11, 12])
def test_chunk_boundaries(per_document: bool, labels_per_chunk: int) -> None:
    """C = 11 labels split into chunks of every size, most of which do not divide 11."""
    b, t = 2, 3
    rows = b * t  # G * M in both layouts
    words, labels = points((b, t, 6), 2), labels_for(per_document, b, 11, 6, 3)
    chunk = rows * labels_per_chunk
    slices = euclidean._label_slices(*((b, t) if per_document else (1, rows)), 11, chunk)
    assert len(slices) == -(-11 // labels_per_chunk)
    assert_matches_naive(words, labels, chunk_elements=chunk)


@pytest.mark.parametrize("per_document", [False, True])
def test_gradcheck(per_document: bool) -> None:
    # random Gaussian points: all pairwise distances are far from 0
    words = points((2, 3, 4), 4).requires_grad_()
    labels = labels_for(per_document, 2, 5, 4, 5).requires_grad_()
    assert euclidean_pairwise_dist(words, labels).min() > 0.1
    assert torch.autograd.gradcheck(
        lambda w, lab: euclidean_pairwise_dist(w, lab, chunk_elements=7), (words, labels)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_document", [False, True])
def test_zero_distance_gradient_finite(dtype: torch.dtype, per_document: bool) -> None:
    words = points((2, 4, 5), 6, dtype=dtype)
    words[0, 0] = 0.0  # the origin, equal to a zero label below
    labels = labels_for(per_document, 2, 6, 5, 7).to(dtype)
    if per_document:
        labels[:, :3] = words[:, :3]  # each document's first labels equal its first words
        labels[0, 3] = 0.0
    else:
        labels[:3] = words[0, :3]
        labels[3] = 0.0
    words.requires_grad_()
    labels.requires_grad_()
    d = euclidean_pairwise_dist(words, labels, chunk_elements=5)
    assert torch.isfinite(d).all() and (d >= 0).all()
    # each coincident pair alone: distance 0 and subgradient 0
    for t in range(3):
        pair = d[0, t, t]
        assert pair == 0
        gw, gl = torch.autograd.grad(pair, (words, labels), retain_graph=True)
        assert (gw == 0).all() and (gl == 0).all()
    gw, gl = torch.autograd.grad(d.sum(), (words, labels))
    assert torch.isfinite(gw).all() and torch.isfinite(gl).all()
    if dtype == torch.float64:  # the naive norm's gradient at 0 is 0 too
        assert_matches_naive(words, labels, chunk_elements=5)


def test_all_zero_inputs() -> None:
    words = torch.zeros(2, 3, 4, requires_grad=True)
    labels = torch.zeros(5, 4, requires_grad=True)
    d = euclidean_pairwise_dist(words, labels)
    assert (d == 0).all()
    gw, gl = torch.autograd.grad(d.sum(), (words, labels))
    assert (gw == 0).all() and (gl == 0).all()


def near_and_far(k: int, seed: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Words ``(3, 20, k)`` and labels ``(45, k)``: 10 labels near words (relative distance
    1e-4 … 1), 5 equal to words, 30 independent (far)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 20, k, generator=g, dtype=torch.float64) * scale
    rel = 10 ** torch.empty(10, 1, dtype=torch.float64).uniform_(-4, 0, generator=g)
    near = w[0, :10] + scale * rel * torch.randn(10, k, generator=g, dtype=torch.float64)
    far = scale * torch.randn(30, k, generator=g, dtype=torch.float64)
    return w, torch.cat([near, w[1, :5], far])


@pytest.mark.parametrize("k", [2, 16, 150])
@pytest.mark.parametrize("scale", [0.01, 1.0, 10.0])
def test_float32_error_bound(k: int, scale: float) -> None:
    """float32 error is at most ~2·min(√(eps S²), eps S²/d), S² = ‖w‖² + ‖l‖² (measured ≤ 1.9
    over 60 draws); the bound here is 4x that, plus float32's own rounding of d."""
    w64, l64 = near_and_far(k, seed=k, scale=scale)
    w32, l32 = w64.float(), l64.float()
    ref = euclidean_pairwise_dist_naive(w32.double(), l32.double())  # exact for these inputs
    got = euclidean_pairwise_dist(w32, l32, chunk_elements=100).double()
    s2 = w32.double().pow(2).sum(-1)[:, :, None] + l32.double().pow(2).sum(-1)
    cancel = torch.minimum((F32_EPS * s2).sqrt(), F32_EPS * s2 / ref.clamp_min(1e-300))
    err = (got - ref).abs()
    assert (err <= 4 * cancel + 4 * F32_EPS * ref).all(), (err / cancel).max()
    far = ref > 0.5 * s2.sqrt()  # independent pairs: full float32 precision
    assert far.sum() > 1000
    torch.testing.assert_close(got[far], ref[far], rtol=2e-6, atol=0)


def test_float32_gradients_far_pairs() -> None:
    """Without near pairs the float32 gradient matches the float64 reference to ~1e-6."""
    w64, l64 = points((4, 30, 150), 11), points((40, 150), 12)
    g = points((4, 30, 40), 13)
    w32, l32 = w64.float().requires_grad_(), l64.float().requires_grad_()
    w64.requires_grad_()
    l64.requires_grad_()
    got = torch.autograd.grad(
        euclidean_pairwise_dist(w32, l32, chunk_elements=500), (w32, l32), g.float()
    )
    ref = torch.autograd.grad(euclidean_pairwise_dist_naive(w64, l64), (w64, l64), g)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_only_one_input_requires_grad() -> None:
    words, labels = points((2, 3, 4), 14), points((5, 4), 15)
    ref_w, ref_l = words.clone().requires_grad_(), labels.clone().requires_grad_()
    gw_ref, gl_ref = torch.autograd.grad(
        euclidean_pairwise_dist_naive(ref_w, ref_l).sum(), (ref_w, ref_l)
    )
    w = words.clone().requires_grad_()
    (gw,) = torch.autograd.grad(euclidean_pairwise_dist(w, labels, chunk_elements=6).sum(), (w,))
    torch.testing.assert_close(gw, gw_ref)
    lab = labels.clone().requires_grad_()
    (gl,) = torch.autograd.grad(euclidean_pairwise_dist(words, lab, chunk_elements=6).sum(), (lab,))
    torch.testing.assert_close(gl, gl_ref)
    assert not euclidean_pairwise_dist(words, labels).requires_grad


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="expected words"):
        euclidean_pairwise_dist(torch.zeros(2, 3, 4, 5), torch.zeros(6, 5))
    with pytest.raises(ValueError, match="expected words"):
        euclidean_pairwise_dist(torch.zeros(2, 3, 4), torch.zeros(4))


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 5),
    c=st.integers(1, 9),
    k=st.integers(1, 6),
    per_document=st.booleans(),
    chunk=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_property_equals_naive(
    b: int, t: int, c: int, k: int, per_document: bool, chunk: int, seed: int
) -> None:
    words, labels = points((b, t, k), seed), labels_for(per_document, b, c, k, seed + 1)
    # float64 cancellation: relative error ~ eps (S/d)², negligible unless points nearly meet
    assume(euclidean_pairwise_dist_naive(words, labels).min() > 1e-2)
    assert_matches_naive(words, labels, rtol=1e-9, atol=1e-11, chunk_elements=chunk)
