"""Word pre-training: co-occurrence counts, Poincaré GloVe (Eq. 3), WordNet refinement (Eq. 4)."""

from __future__ import annotations

from typing import ClassVar

import geoopt
import numpy as np
import pytest
import torch

from hyperim.data.vocab import Vocabulary
from hyperim.geometry.manifold import PoincareBall
from hyperim.geometry.numerics import MAX_NORM
from hyperim.geometry.poincare import dist
from hyperim.pretrain.cooccurrence import cooccurrence_matrix, encode_corpus
from hyperim.pretrain.glove import (
    GloveConfig,
    PoincareGlove,
    RowwiseRiemannianOptimizer,
    ball_distance,
    fit_glove,
    from_coordinate_major,
    geodesic_midpoint,
    glove_loss,
    glove_terms,
    glove_weight,
    h_cosh2,
    nearest_neighbours,
    product_distance,
    to_coordinate_major,
    train_glove,
)
from hyperim.pretrain.wordnet_refine import (
    RefineConfig,
    hypernym_loss,
    hypernym_pairs,
    pair_ids,
    refine_embeddings,
)

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------ co-occurrence


def brute_force(seqs, n, window, weighting=True, symmetric=True):
    x = np.zeros((n, n))
    for s in seqs:
        for a in range(len(s)):
            for b in range(a + 1, min(len(s), a + window + 1)):
                w = 1.0 / (b - a) if weighting else 1.0
                x[s[a], s[b]] += w
                if symmetric:
                    x[s[b], s[a]] += w
    return x


def test_cooccurrence_hand_example() -> None:
    # "a b a c" with window 2: (a,b)@1, (a,a)@2, (b,a)@1, (b,c)@2, (a,c)@1
    x = cooccurrence_matrix([[0, 1, 0, 2]], 3, window=2).toarray()
    expected = np.array(
        [
            [2 * 0.5, 1 + 1, 1],  # a-a: one pair at distance 2, counted both ways
            [2, 0, 0.5],
            [1, 0.5, 0],
        ]
    )
    np.testing.assert_allclose(x, expected)
    assert (x == x.T).all()


@pytest.mark.parametrize("weighting", [True, False])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cooccurrence_matches_brute_force_and_chunking(weighting: bool, symmetric: bool) -> None:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 9, rng.integers(0, 25)).tolist() for _ in range(40)]
    kw = dict(window=4, distance_weighting=weighting, symmetric=symmetric)
    one = cooccurrence_matrix(iter(seqs), 9, **kw)
    # tiny buffers: many flushes, documents split across windowing passes
    chunked = cooccurrence_matrix(iter(seqs), 9, buffer_size=7, token_buffer=5, **kw)
    np.testing.assert_allclose(one.toarray(), brute_force(seqs, 9, 4, weighting, symmetric))
    np.testing.assert_allclose(chunked.toarray(), one.toarray(), rtol=1e-12)
    assert one.nnz == np.count_nonzero(one.toarray())


def test_cooccurrence_drops_unknown_before_windowing() -> None:
    vocab = Vocabulary(["<pad>", "<unk>", "a", "b"])
    ids = list(encode_corpus([["a", "zzz", "<unk>", "b"], ["b"]], vocab))
    assert [i.tolist() for i in ids] == [[2, 3], [3]]
    x = cooccurrence_matrix(ids, len(vocab), window=1).toarray()
    assert x[2, 3] == x[3, 2] == 1.0  # adjacent once the unknown tokens are gone
    with pytest.raises(ValueError):
        cooccurrence_matrix([[0, 5]], 3)


# ------------------------------------------------------------------ GloVe math


@pytest.mark.parametrize("dtype", DTYPES)
def test_ball_distance_equals_eq1(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 3, 2, generator=g, dtype=dtype) - 0.5) * 1.3
    y = (torch.rand(50, 3, 2, generator=g, dtype=dtype) - 0.5) * 1.3
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ball_distance(x, y), dist(x, y), atol=tol, rtol=tol)
    torch.testing.assert_close(
        from_coordinate_major(to_coordinate_major(x)), x, atol=0, rtol=0
    )  # layout round trip


@pytest.mark.parametrize("aggregate", ["riemannian", "sum"])
def test_hand_gradients_match_autograd(aggregate: str) -> None:
    g = torch.Generator().manual_seed(1)
    model = PoincareGlove(6, 3, 2, init_radius=0.3, dtype=torch.float64, generator=g)
    with torch.no_grad():
        model.target_bias.normal_(generator=g)
        model.context_bias.normal_(generator=g)
    i, j = torch.tensor([0, 1, 2, 3, 5]), torch.tensor([1, 1, 4, 0, 2])
    log_x = torch.randn(5, generator=g, dtype=torch.float64)
    f = torch.rand(5, generator=g, dtype=torch.float64)
    terms = model.entry_loss(i, j, log_x, f, aggregate)
    gw, gc, gbw, gbc = torch.autograd.grad(
        terms.sum(), [model.target, model.context, model.target_bias, model.context_bias]
    )
    w, c = to_coordinate_major(model.target.data), to_coordinate_major(model.context.data)
    t2, hw, hc, hb = glove_terms(
        w[:, i], c[:, j], model.target_bias.data[i], model.context_bias.data[j], log_x, f, aggregate
    )
    torch.testing.assert_close(t2, terms.detach())
    zero = torch.zeros_like(w)
    torch.testing.assert_close(from_coordinate_major(zero.index_add(1, i, hw)), gw)
    torch.testing.assert_close(from_coordinate_major(zero.index_add(1, j, hc)), gc)
    torch.testing.assert_close(torch.zeros(6, dtype=torch.float64).index_add(0, i, hb), gbw)
    torch.testing.assert_close(torch.zeros(6, dtype=torch.float64).index_add(0, j, hb), gbc)


@pytest.mark.parametrize("dtype", DTYPES)
def test_h_is_finite_far_away(dtype: torch.dtype) -> None:
    d = torch.tensor([0.0, 1.0, 8.0, 50.0, 1e4], dtype=dtype, requires_grad=True)
    h = h_cosh2(d, 8.0)
    (grad,) = torch.autograd.grad(h.sum(), d)
    assert torch.isfinite(h).all() and torch.isfinite(grad).all()
    assert (grad[2:] > 0).all()  # still pulls far points back
    torch.testing.assert_close(h[:3], torch.cosh(d[:3].detach()) ** 2)
    f = glove_weight(torch.tensor([1.0, 100.0, 1000.0]))
    torch.testing.assert_close(f, torch.tensor([0.01**0.75, 1.0, 1.0]))


def test_adam_step_equals_geoopt_and_rows_are_lazy() -> None:
    g = torch.Generator().manual_seed(2)
    x0 = (torch.rand(8, 3, 2, generator=g, dtype=torch.float64) - 0.5) * 1.2
    b0 = torch.randn(8, generator=g, dtype=torch.float64)
    p = geoopt.ManifoldParameter(x0.clone(), manifold=PoincareBall())
    pb = torch.nn.Parameter(b0.clone())
    ref = geoopt.optim.RiemannianAdam([p, pb], lr=0.05)
    table, bias = to_coordinate_major(x0), b0.clone()
    mine = RowwiseRiemannianOptimizer([table, bias], [True, False], "adam", lr=0.05)
    rows = torch.arange(8)
    for _ in range(3):
        grad, bgrad = torch.randn(8, 3, 2, generator=g, dtype=torch.float64), torch.randn(8)
        p.grad, pb.grad = grad.clone(), bgrad.to(torch.float64)
        ref.step()
        mine.step([(rows, to_coordinate_major(grad)), (rows, bgrad.to(torch.float64))])
    torch.testing.assert_close(from_coordinate_major(table), p.data)
    torch.testing.assert_close(bias, pb.data)
    # Adagrad moves only the rows it is given
    table = to_coordinate_major(x0)
    ada = RowwiseRiemannianOptimizer([table], [True], "adagrad", lr=0.1)
    ada.step([(torch.tensor([1, 4]), torch.ones(2, 2, 3, dtype=torch.float64))])
    moved = (from_coordinate_major(table) != x0).any(-1).any(-1)
    assert moved.tolist() == [i in (1, 4) for i in range(8)]


def test_midpoint_halves_the_distance() -> None:
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(20, 4, 2, generator=g, dtype=torch.float64) - 0.5) * 1.3
    y = (torch.rand(20, 4, 2, generator=g, dtype=torch.float64) - 0.5) * 1.3
    m = geodesic_midpoint(x, y)
    torch.testing.assert_close(dist(x, m), dist(x, y) / 2)
    torch.testing.assert_close(dist(m, y), dist(x, y) / 2)


# ------------------------------------------------------------------ GloVe training


def topic_corpus(n_docs: int = 200, seed: int = 0) -> tuple[list[list[int]], int]:
    """Words 0-5 and words 6-11 are two topics: a document has 8 words of its topic, 1 of the
    other and 2 of the ubiquitous words 12-13. GloVe only sees nonzero counts, so the rare
    cross-topic pairs are what tells it that the topics are apart."""
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(n_docs):
        topic, other = (np.arange(6), np.arange(6, 12))[:: 1 if d % 2 == 0 else -1]
        words = np.concatenate(
            [rng.choice(topic, 8), rng.choice(other, 1), rng.choice([12, 13], 2)]
        )
        docs.append(rng.permutation(words).tolist())
    return docs, 14


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_glove_lowers_loss_and_groups_cooccurring_words(dtype: str) -> None:
    docs, n = topic_corpus()
    cooc = cooccurrence_matrix(docs, n, window=4)
    cfg = GloveConfig(n_balls=4, ball_dim=2, epochs=60, lr=0.1, batch_size=32, dtype=dtype, seed=0)
    model = PoincareGlove(n, 4, 2, cfg.init_radius, getattr(torch, dtype))
    before = glove_loss(model, cooc, cfg)
    stats = fit_glove(model, cooc, cfg)
    after = glove_loss(model, cooc, cfg)
    assert np.isfinite(stats.loss).all() and np.isfinite(after)
    assert after < 0.1 * before
    assert stats.loss[-1] < stats.loss[0]
    for table in (model.target, model.context):
        assert table.dtype == getattr(torch, dtype)
        assert (table.data.norm(dim=-1) <= MAX_NORM + 1e-6).all()
    pts = model.word_vectors("midpoint")
    d = product_distance(pts[:, None], pts[None], "riemannian")
    off = ~torch.eye(6, dtype=torch.bool)
    same = torch.cat([d[:6, :6][off], d[6:12, 6:12][off]])
    assert same.mean() < 0.5 * d[:6, 6:12].mean()  # measured: 0.29 (float32), 0.25 (float64)
    ids, _ = nearest_neighbours(pts, [0, 6], k=4, candidates=torch.arange(12))
    assert set(ids[0].tolist()) <= set(range(6)) and set(ids[1].tolist()) <= set(range(6, 12))


def test_train_glove_shapes_and_unseen_rows() -> None:
    docs, n = topic_corpus(40)
    cooc = cooccurrence_matrix(docs, n + 2, window=3)  # two words that never occur
    pts, stats = train_glove(cooc, GloveConfig(n_balls=3, ball_dim=2, epochs=2, batch_size=64))
    assert pts.shape == (n + 2, 3, 2) and len(stats.loss) == 2 and stats.nnz == cooc.nnz
    assert torch.isfinite(pts).all() and (pts.norm(dim=-1) <= MAX_NORM + 1e-6).all()
    with pytest.raises(ValueError):
        GloveConfig(optimizer="sgd").validate()


# ------------------------------------------------------------------ WordNet refinement


class FakeWordNet:
    """dog.n.01 < canine.n.01 < animal.n.01; dog.n.02 < person.n.01; cat.n.01 < feline < animal;
    python.n.01 < python.n.02 (whose lemmas include "python": a self-pair to exclude)."""

    SYNSETS: ClassVar[dict[str, list[str]]] = {
        "dog": ["dog.n.01", "dog.n.02"],
        "canine": ["canine.n.01"],
        "animal": ["animal.n.01"],
        "cat": ["cat.n.01"],
        "python": ["python.n.01"],
    }
    LEMMAS: ClassVar[dict[str, list[str]]] = {
        "dog.n.01": ["dog", "domestic_dog"],
        "dog.n.02": ["dog", "frump"],
        "canine.n.01": ["canine", "canid"],
        "animal.n.01": ["animal", "beast"],
        "person.n.01": ["person", "individual"],
        "cat.n.01": ["cat"],
        "feline.n.01": ["feline"],
        "python.n.01": ["python"],
        "python.n.02": ["python", "snake"],
    }
    CLOSURE: ClassVar[dict[str, set[str]]] = {
        "dog.n.01": {"canine.n.01", "animal.n.01"},
        "dog.n.02": {"person.n.01"},
        "canine.n.01": {"animal.n.01"},
        "animal.n.01": set(),
        "cat.n.01": {"feline.n.01", "animal.n.01"},
        "python.n.01": {"python.n.02"},
    }

    def synsets(self, lemma: str) -> list[str]:
        return list(self.SYNSETS.get(lemma, []))

    def lemmas(self, synset: str) -> list[str]:
        return list(self.LEMMAS[synset])

    def hypernym_closure(self, synset: str) -> set[str]:
        return set(self.CLOSURE[synset])


def test_hypernym_pairs_on_a_fake_wordnet() -> None:
    vocab = ["<pad>", "<unk>", "dog", "canine", "animal", "cat", "person", "python", "snake"]
    wn = FakeWordNet()
    first = [("animal", "canine"), ("animal", "cat"), ("animal", "dog"), ("canine", "dog")]
    assert hypernym_pairs(vocab, wn, senses="first") == sorted([*first, ("snake", "python")])
    assert hypernym_pairs(vocab, wn) == sorted([*first, ("person", "dog"), ("snake", "python")])
    v = Vocabulary(vocab[:6])  # no person/python/snake
    assert pair_ids([("animal", "dog"), ("person", "dog")], v) == [(4, 2)]


def test_hypernym_pairs_on_real_wordnet() -> None:
    from hyperim.data.wordnet import WordNet
    from hyperim.errors import HyperIMError

    try:
        wn = WordNet.load()
    except HyperIMError:
        pytest.skip("WordNet is not installed")
    vocab = ["<pad>", "<unk>", "dog", "canine", "carnivore", "animal", "server", "computer"]
    first = hypernym_pairs(vocab, wn, senses="first")
    assert {("canine", "dog"), ("carnivore", "dog"), ("animal", "dog")} <= set(first)
    assert ("computer", "server") not in first  # first sense of "server": a person
    assert ("computer", "server") in hypernym_pairs(vocab, wn)  # another sense: a computer
    assert all(p != q for p, q in first)


def refine_setup():
    """Twelve words in two little trees, plus words 12-19 outside every pair."""
    pairs = [(0, q) for q in range(1, 6)] + [(6, q) for q in range(7, 12)]
    pairs += [(1, 2), (7, 8)]
    g = torch.Generator().manual_seed(4)
    points = project_rand(20, g)
    return points, pairs


def project_rand(n: int, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, 3, 2, generator=g, dtype=torch.float64) - 0.5) * 0.6


def test_refinement_lowers_eq4_and_pulls_pairs_together() -> None:
    points, pairs = refine_setup()
    cfg = RefineConfig(epochs=60, lr=0.02, negatives=4, batch_size=4)
    new, stats = refine_embeddings(points, pairs, cfg)
    assert stats.n_pairs == len(pairs) and stats.n_words == 12
    assert stats.loss_after < 0.7 * stats.loss_before
    assert stats.loss[-1] < stats.loss[0]
    assert hypernym_loss(new, pairs, 4) == pytest.approx(stats.loss_after)
    assert torch.equal(new[12:], points[12:])  # outside the pairs: untouched
    assert not torch.equal(new[:12], points[:12])
    assert (new.norm(dim=-1) <= MAX_NORM + 1e-9).all()
    p = torch.tensor(pairs)
    true_d = product_distance(new[p[:, 0]], new[p[:, 1]], "riemannian").mean()
    cross = torch.tensor([(0, q) for q in range(7, 12)] + [(6, q) for q in range(1, 6)])
    cross_d = product_distance(new[cross[:, 0]], new[cross[:, 1]], "riemannian").mean()
    assert true_d < 0.7 * cross_d


def test_refinement_without_pairs_is_a_copy() -> None:
    points, _ = refine_setup()
    new, stats = refine_embeddings(points, [], RefineConfig())
    assert torch.equal(new, points) and new is not points and stats.n_pairs == 0
