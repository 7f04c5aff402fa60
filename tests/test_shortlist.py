"""Shortlist inference: exact when every label is a candidate, bounded and chunk-independent."""

from __future__ import annotations

import pytest
import torch

from hyperim.data import Hierarchy
from hyperim.inference import topk_labels
from hyperim.models import HyperIMConfig, HyperIMModel
from hyperim.models.hyperim.shortlist import (
    HeadProfile,
    LabelTree,
    candidate_labels,
    candidate_recall,
    gyromidpoint,
    label_tree,
    shortlist_recall,
    shortlist_topk,
    token_weights,
)

N_LABELS, VOCAB = 40, 60


def random_model(
    label_bias: bool = True, aggregate: str = "riemannian", head_pool: bool = False
) -> HyperIMModel:
    torch.manual_seed(0)
    cfg = HyperIMConfig(
        vocab_size=VOCAB,
        n_labels=N_LABELS,
        max_len=12,
        n_balls=3,
        ball_dim=2,
        aggregate=aggregate,
        label_bias=label_bias,
        head_pool=head_pool,
        logit_offset=-0.7,
        label_init_scale=0.5,
        word_init_scale=0.5,
    )
    model = HyperIMModel(cfg).to(torch.float64)
    if label_bias:
        with torch.no_grad():
            model.head.label_bias.copy_(0.05 * torch.randn(N_LABELS, dtype=torch.float64))
    return model.eval()


def batch(b: int = 6, t: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(2, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t)[None] < lengths[:, None]
    tokens = torch.randint(2, VOCAB, (b, t), generator=g) * mask
    return tokens, mask


METHODS = [
    ("midpoint", "lifted", "head"),
    ("midpoint", "distance", "uniform"),
    ("last", "lifted", "uniform"),
    ("lifted-mean", "lifted", "head"),
]


@pytest.mark.parametrize(("method", "metric", "weighting"), METHODS)
@pytest.mark.parametrize(("label_bias", "head_pool"), [(True, False), (False, False), (True, True)])
def test_all_candidates_equals_exact_topk(method, metric, weighting, label_bias, head_pool):
    aggregate = "sum" if label_bias else "riemannian"
    model = random_model(label_bias, aggregate=aggregate, head_pool=head_pool)
    tokens, mask = batch()
    want_v, want_i = topk_labels(model, tokens, mask, 5)
    got_v, got_i = shortlist_topk(
        model,
        tokens,
        mask,
        5,
        candidates=N_LABELS + 3,
        method=method,
        metric=metric,
        weighting=weighting,
        label_chunk=7,
    )
    assert torch.equal(got_i, want_i)
    torch.testing.assert_close(got_v, want_v, rtol=1e-12, atol=1e-12)


def test_beam_with_every_label_reachable_is_exact():
    model = random_model()
    tokens, mask = batch()
    parents = [-1] * 4 + [i % 4 for i in range(4, 16)] + [4 + i % 12 for i in range(16, 40)]
    tree = LabelTree.from_parents(parents)
    want_v, want_i = topk_labels(model, tokens, mask, 5)
    got_v, got_i = shortlist_topk(
        model, tokens, mask, 5, candidates=N_LABELS, method="beam", hierarchy=tree, beam=N_LABELS
    )
    assert torch.equal(got_i, want_i)
    torch.testing.assert_close(got_v, want_v, rtol=1e-12, atol=1e-12)
    # a narrow beam still returns M distinct-enough ids from the tree, in range
    cand = candidate_labels(
        model, model.encode(tokens, mask), mask, 10, "beam", hierarchy=tree, beam=2
    )
    assert cand.shape == (6, 10) and int(cand.min()) >= 0 and int(cand.max()) < N_LABELS


def test_label_tree_from_hierarchy():
    h = Hierarchy(["a", "a1", "a2", "b"], [("a", "a1"), ("a", "a2")], ["a", "b"])
    tree = label_tree(h, ["a1", "a", "b", "a2", "zzz"])
    assert tree.roots.tolist() == [1, 2, 4]
    assert tree.children[tree.offsets[1] : tree.offsets[2]].tolist() == [0, 3]


@pytest.mark.parametrize("method", ["midpoint", "last", "lifted-mean"])
@pytest.mark.parametrize("m", [1, 5, 17])
def test_candidates_never_exceed_m_and_are_distinct(method, m):
    model = random_model()
    tokens, mask = batch()
    theta_w = model.encode(tokens, mask)
    cand = candidate_labels(model, theta_w, mask, m, method, label_chunk=6)
    assert cand.shape == (6, m)
    assert all(len(set(row)) == m for row in cand.tolist())
    _, idx = shortlist_topk(model, tokens, mask, 8, candidates=m, method=method)
    assert idx.shape == (6, min(8, m))
    assert all(set(row) <= set(c) for row, c in zip(idx.tolist(), cand.tolist(), strict=True))


@pytest.mark.parametrize("weighting", ["head", "uniform"])
def test_padding_does_not_move_the_summary_point(weighting):
    model = random_model()
    tokens, mask = batch(b=3, t=8)
    theta_w = model.encode(tokens, mask)
    w = token_weights(model, mask, weighting, theta_w.dtype)
    m = gyromidpoint(theta_w, w)
    garbage = theta_w.clone()
    garbage[~mask] = 0.9 * torch.rand_like(garbage[~mask]) - 0.45  # anything inside the ball
    torch.testing.assert_close(gyromidpoint(garbage, w), m, rtol=0, atol=1e-14)
    # and a document alone (unpadded) gives the same point as inside the padded batch
    n = int(mask[1].sum())
    alone = model.encode(tokens[1:2, :n], mask[1:2, :n])
    w1 = token_weights(model, mask[1:2, :n], weighting, theta_w.dtype)
    torch.testing.assert_close(gyromidpoint(alone, w1)[0], m[1], rtol=1e-12, atol=1e-14)


def test_midpoint_of_one_point_is_that_point_and_stays_in_ball():
    x = 0.6 * torch.rand(2, 1, 3, 2, dtype=torch.float64) - 0.3
    torch.testing.assert_close(gyromidpoint(x, torch.ones(2, 1)), x[:, 0])
    near_edge = torch.full((1, 4, 1, 2), 0.7, dtype=torch.float64)
    near_edge[0, :2] *= -1
    assert float(gyromidpoint(near_edge, torch.ones(1, 4)).norm(dim=-1).max()) < 1


@pytest.mark.parametrize(("method", "metric"), [("midpoint", "lifted"), ("midpoint", "distance")])
def test_chunk_size_does_not_change_candidates(method, metric):
    model = random_model()
    tokens, mask = batch()
    theta_w = model.encode(tokens, mask)
    ref = candidate_labels(model, theta_w, mask, 9, method, metric=metric, label_chunk=N_LABELS)
    for chunk in (1, 4, 13):
        got = candidate_labels(model, theta_w, mask, 9, method, metric=metric, label_chunk=chunk)
        assert torch.equal(got.sort(1).values, ref.sort(1).values)


def test_recall():
    model = random_model()
    tokens, mask = batch()
    assert shortlist_recall(model, tokens, mask, 5, candidates=N_LABELS) == 1.0
    r = shortlist_recall(model, tokens, mask, 5, candidates=8)
    assert 0.0 <= r <= 1.0
    cand = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert candidate_recall(cand, torch.tensor([[1, 9], [9, 9]])) == 0.25


@pytest.mark.parametrize("activation", ["relu", "identity", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("head_pool", [False, True])
def test_head_profile_is_the_head_on_a_constant_score(activation, bias, head_pool):
    torch.manual_seed(3)
    cfg = HyperIMConfig(
        vocab_size=VOCAB,
        n_labels=N_LABELS,
        max_len=12,
        n_balls=3,
        head_activation=activation,
        head_pool=head_pool,
    )
    cfg.head_bias = bias
    model = HyperIMModel(cfg).to(torch.float64).eval()
    with torch.no_grad():
        model.head.w_f.weight.normal_()  # kinks spread over the range of D below
        if bias:
            model.head.w_f.bias.normal_()
    _, mask = batch()
    prof = HeadProfile.build(model, mask, torch.float64)
    d = torch.linspace(0, 6, 301, dtype=torch.float64).expand(mask.shape[0], -1)
    s = -d[:, :, None] * mask[:, None, :].to(torch.float64)  # (B, L, T): -D at real positions
    with torch.no_grad():
        want = model.head.shared(s, mask)
    torch.testing.assert_close(prof(d), want, rtol=1e-10, atol=1e-10)
