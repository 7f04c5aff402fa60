"""HyperIM model: shapes, padding, partial interaction, Eq. (5) details, chunked inference."""

from __future__ import annotations

import geoopt
import pytest
import torch

from hyperim.data.batching import label_targets
from hyperim.errors import HyperIMError
from hyperim.geometry import expmap0, logmap0, mobius_add, product_matvec
from hyperim.models import HyperIMConfig, HyperIMModel
from hyperim.nn import HyperbolicGRU, Interaction
from hyperim.nn.gru import reference_forward
from hyperim.nn.head import pooled_scores


def small_model(**kw) -> HyperIMModel:
    """A tiny HyperIM in float64, without word dropout unless asked (these tests compare
    training-mode forwards)."""
    torch.manual_seed(0)
    kw.setdefault("word_dropout", 0.0)
    cfg = HyperIMConfig(vocab_size=30, n_labels=9, max_len=12, n_balls=3, ball_dim=2, **kw)
    return HyperIMModel(cfg).double()


def test_embeddings_start_inside_the_ball() -> None:
    m = small_model()
    for emb in (m.words, m.labels):
        assert isinstance(emb.weight, geoopt.ManifoldParameter)
        assert torch.isfinite(emb.weight).all()
        assert (emb.weight.norm(dim=-1) < 1).all()


def test_forward_shapes_and_loss() -> None:
    m = small_model()
    tokens = torch.randint(2, 30, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.bool)
    targets = (torch.rand(4, 9) < 0.3).double()
    logits, loss = m(tokens, mask, targets=targets)
    assert logits.shape == (4, 9) and loss is not None and loss.ndim == 0
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_word_dropout_acts_in_training_only() -> None:
    """Tangent-space word dropout changes the training forward (randomly, inside the ball)
    and nothing at evaluation: an evaluated model with it equals the same weights without."""
    plain, dropped = small_model(), small_model(word_dropout=0.5)
    tokens = torch.randint(2, 30, (4, 7))
    mask = torch.ones(4, 7, dtype=torch.bool)
    for m in (plain, dropped):
        m.eval()
    assert torch.equal(plain(tokens, mask)[0], dropped(tokens, mask)[0])
    dropped.train()
    a, b = dropped.encode(tokens, mask), dropped.encode(tokens, mask)
    assert not torch.equal(a, b) and not torch.equal(a, plain.encode(tokens, mask))
    assert (a.norm(dim=-1) < 1).all()
    with pytest.raises(HyperIMError, match="word_dropout"):
        HyperIMConfig(word_dropout=1.0).validate()


@pytest.mark.parametrize("head_pool", [False, True])
def test_padding_contributes_nothing(head_pool: bool) -> None:
    m = small_model(head_pool=head_pool)
    tokens = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0]])
    a, _ = m(tokens, tokens != 0)
    b, _ = m(padded, padded != 0)
    torch.testing.assert_close(a, b)
    # and a different token under the mask changes nothing either
    other = torch.tensor([[5, 6, 7, 9, 9, 9]])
    c, _ = m(other, padded != 0)
    torch.testing.assert_close(a, c)


@pytest.mark.parametrize("head_pool", [False, True])
def test_partial_interaction_matches_full_scores(head_pool: bool) -> None:
    m = small_model(head_pool=head_pool, label_bias=True)
    with torch.no_grad():
        m.head.label_bias.normal_()
    tokens = torch.randint(2, 30, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    full, _ = m(tokens, mask)
    labels = torch.tensor([[0, 3, 8], [2, 2, 5]])
    part, _ = m(tokens, mask, labels=labels)
    torch.testing.assert_close(part, full.gather(1, labels))


def test_pooled_scores_by_hand() -> None:
    s = torch.tensor([[[-3.0, -1.0, -2.0, 0.0], [-4.0, -6.0, -5.0, 0.0]], [[0.0] * 4] * 2])
    mask = torch.tensor([[True, True, True, False], [False] * 4])
    got = pooled_scores(s, mask)  # (B=2, L=2, 2): max, mean over real positions
    want = torch.tensor([[[-1.0, -2.0], [-4.0, -5.0]], [[0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(got, want)


def test_pooled_head_sees_a_near_word_anywhere() -> None:
    m = small_model(head_pool=True)
    with torch.no_grad():  # only the max feature, through one positive unit
        m.head.w_f.weight.zero_()
        m.head.w_f.bias.fill_(10.0)
        m.head.w_p.weight.zero_()
        m.head.w_p.weight[0, 0] = 1.0
        m.head.w_e.weight.zero_()
        m.head.w_e.weight[0, 0] = 1.0
    s = torch.tensor([[[-5.0, -0.5, -5.0, -5.0]]], dtype=torch.float64)
    moved = torch.tensor([[[-5.0, -5.0, -5.0, -0.5]]], dtype=torch.float64)
    mask = torch.ones(1, 4, dtype=torch.bool)
    assert m.head.shared(s, mask).item() == pytest.approx(m.head.shared(moved, mask).item())
    assert m.head.shared(s, mask).item() == pytest.approx(10.0 - 0.5 + m.head.w_e.bias.item())
    with pytest.raises(ValueError, match="mask"):
        m.head.shared(s)


def test_negative_sampling_excludes_positives() -> None:
    g = torch.Generator().manual_seed(0)
    pos = [torch.tensor([1, 4]).numpy(), torch.tensor([7]).numpy()]
    labels, targets, mask = label_targets(pos, 20, 5, g)
    assert labels.shape == (2, 7)
    assert targets[0, :2].tolist() == [1, 1] and targets[1, :2].tolist() == [1, 0]
    assert mask[1, 1] == 0  # padded positive slot does not count in the loss
    for i, p in enumerate(pos):
        negs = set(labels[i, 2:].tolist())
        assert len(negs) == 5 and not negs & set(p.tolist())
    none, full, _ = label_targets(pos, 20, 0, g)
    assert none is None and full.shape == (2, 20) and full.sum() == 3


@pytest.mark.parametrize("head_pool", [False, True])
def test_score_all_chunks_equal_full(head_pool: bool) -> None:
    m = small_model(head_pool=head_pool)
    tokens = torch.randint(2, 30, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    full, _ = m(tokens, mask)
    torch.testing.assert_close(m.score_all(tokens, mask, label_chunk=2), full)


def test_gru_first_step_and_candidate_weight() -> None:
    """θ^w_0 = 0, so θ^w_1 = diag(z_1) ⊗ (U^g ⊗ θ^e_1 ⊕ b^g) exactly; U^r only acts through r_1,
    which multiplies θ^w_0 = 0, so changing U^r changes nothing (the candidate uses U^g)."""
    torch.manual_seed(0)
    gru = HyperbolicGRU(2, 2).double()
    e = torch.rand(1, 1, 2, 2, dtype=torch.float64) * 0.3
    k = 4
    with torch.no_grad():
        gru.u[k : 2 * k] = 0  # U^z = 0, so z_1 = σ(log0(b^z))
        gru.bias[1] = torch.tensor([[0.3, -0.2], [0.1, 0.5]])
        gru.bias[2] = torch.tensor([[0.05, 0.1], [-0.2, 0.0]])
        z = torch.sigmoid(logmap0(gru.bias[1]))
        cand = mobius_add(product_matvec(gru.u[2 * k :], e[:, 0]), gru.bias[2])
        expected = expmap0(z * logmap0(cand))
        out = gru(e)
        torch.testing.assert_close(out[:, 0], expected)
        gru.u[:k] = torch.randn(k, k, dtype=torch.float64)  # change U^r
        torch.testing.assert_close(gru(e)[:, 0], out[:, 0])


def test_gru_equals_eq5_reference_with_gradients() -> None:
    """The fast GRU (planar layout, permuted weights) equals a direct transcription of Eq. (5)
    (:func:`hyperim.nn.gru.reference_forward`; no projections: the test keeps points well
    inside the ball) over several steps, values and gradients, in float64."""
    torch.manual_seed(1)
    gru = HyperbolicGRU(3, 2).double()
    with torch.no_grad():
        gru.bias.copy_(expmap0(torch.randn(3, 3, 2, dtype=torch.float64) * 0.2))
    e = expmap0(torch.randn(2, 6, 3, 2, dtype=torch.float64) * 0.5)
    fast, ref = gru(e), reference_forward(gru, e)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)
    params = (gru.w_rz, gru.w_g, gru.u, gru.bias)
    weight = torch.randn_like(fast)
    g_fast = torch.autograd.grad((fast * weight).sum(), params)
    g_ref = torch.autograd.grad((ref * weight).sum(), params)
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("phi", ["tanh", "sigmoid", "relu"])
def test_gru_equals_eq5_reference_with_phi(phi: str) -> None:
    """The candidate's non-linearity ϕ (as exp0∘ϕ∘log0) is the same in both cells."""
    torch.manual_seed(1)
    gru = HyperbolicGRU(3, 2, phi=phi).double()
    with torch.no_grad():
        gru.bias.copy_(expmap0(torch.randn(3, 3, 2, dtype=torch.float64) * 0.2))
    e = expmap0(torch.randn(2, 6, 3, 2, dtype=torch.float64) * 0.5)
    with torch.no_grad():
        torch.testing.assert_close(gru(e), reference_forward(gru, e), rtol=1e-10, atol=1e-12)


def test_gru_checkpointing_changes_nothing() -> None:
    """Recomputing segments in the backward (3 steps each, over 7) gives the same values and
    gradients as storing every step."""
    torch.manual_seed(2)
    gru = HyperbolicGRU(3, 2, checkpoint_steps=0).double()
    e = expmap0(torch.randn(2, 7, 3, 2, dtype=torch.float64) * 0.5).requires_grad_()
    params = (e, gru.w_rz, gru.w_g, gru.u, gru.bias)
    stored = gru(e)
    g_stored = torch.autograd.grad(stored.pow(2).sum(), params)
    gru.checkpoint_steps = 3
    recomputed = gru(e)
    g_recomputed = torch.autograd.grad(recomputed.pow(2).sum(), params)
    torch.testing.assert_close(recomputed, stored, rtol=1e-12, atol=1e-14)  # matmul order
    for a, b in zip(g_recomputed, g_stored, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_naive_interaction_matches_model_path() -> None:
    torch.manual_seed(1)
    w = torch.rand(2, 4, 3, 2, dtype=torch.float64) * 0.4
    lab = torch.rand(5, 3, 2, dtype=torch.float64) * 0.4
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.float64)
    fast = Interaction("sum")(w, lab, mask)
    slow = Interaction("sum", naive=True)(w, lab, mask)
    torch.testing.assert_close(fast, slow)
    assert (fast[0, :, 3] == 0).all()  # padding position scores 0


def test_sampling_logit_offset() -> None:
    import math

    from hyperim.train import sampling_logit_offset

    assert sampling_logit_offset(0, 600, 7.0) == 0.0  # every label scored: no correction
    assert sampling_logit_offset(600, 600, 7.0) == 0.0
    assert math.isclose(sampling_logit_offset(100, 607, 7.0), math.log(100 / 600))
    m = small_model(logit_offset=-1.5)
    tokens = torch.randint(2, 30, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.bool)
    raw, _ = m(tokens, mask)
    torch.testing.assert_close(m.score_all(tokens, mask), raw - 1.5)  # inference only


def test_embedding_gradient_does_not_depend_on_threads() -> None:
    """Rows repeated in a batch must add up in a fixed order: two identical training runs then
    give identical weights (an accumulating ``weight[index]`` backward did not, with 2 threads)."""
    from hyperim.nn import HyperbolicEmbedding

    torch.manual_seed(0)
    emb = HyperbolicEmbedding(50, 75, 2, init_scale=0.1)
    index = torch.randint(0, 50, (64, 256))  # every row about 330 times
    upstream = torch.randn(64, 256, 75, 2)

    def grad(threads: int) -> torch.Tensor:
        torch.set_num_threads(threads)
        emb.weight.grad = None
        emb(index).backward(upstream)
        return emb.weight.grad.clone()

    before = torch.get_num_threads()
    try:
        reference = grad(1)
        for _ in range(3):
            assert torch.equal(grad(2), reference)
    finally:
        torch.set_num_threads(before)
