"""Euclidean pre-training for EuclideanIM: vanilla GloVe and Euclidean hierarchy embeddings."""

from __future__ import annotations

import contextlib
import itertools
import math
import random

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hyperim.data.vocab import Vocabulary
from hyperim.errors import HyperIMError
from hyperim.pretrain.cooccurrence import cooccurrence_matrix, encode_corpus
from hyperim.pretrain.euclidean import (
    _adagrad_rows,
    _GloveTables,
    _hierarchy_batch_loss,
    _sgd_step,
    euclidean_reconstruction,
    train_euclidean_glove,
    train_euclidean_hierarchy,
)
from hyperim.pretrain.hierarchy import index_nodes, transitive_closure

TOPICS = [
    ["cat", "dog", "kitten", "puppy", "pet", "fur"],
    ["saw", "drill", "hammer", "nail", "bolt", "wrench"],
    ["python", "compiler", "kernel", "library", "debugger", "script"],
]
FILLER = ["the", "a", "of", "and", "with", "is"]


def topic_corpus(n_docs: int = 300, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        topic = rng.choice(TOPICS)
        words = [rng.choice(topic) for _ in range(8)] + [rng.choice(FILLER) for _ in range(4)]
        rng.shuffle(words)
        docs.append(words)
    return docs


@pytest.fixture(scope="module")
def corpus() -> tuple[Vocabulary, sp.csr_matrix]:
    docs = topic_corpus()
    vocab = Vocabulary.build(docs)
    return vocab, cooccurrence_matrix(encode_corpus(docs, vocab), len(vocab), window=3)


@contextlib.contextmanager
def num_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def random_cooc(v: int = 3000, nnz: int = 60_000, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = rng.integers(2, v, nnz)
    cols = rng.zipf(1.5, nnz) % (v - 2) + 2  # a few very frequent context words
    x = sp.coo_matrix((rng.gamma(1.0, 3.0, nnz), (rows, cols)), shape=(v, v)).tocsr()
    return (x + x.T).tocsr()


# ---------------------------------------------------------------------------------------------
# Vanilla GloVe


def test_glove_loss_decreases_and_topics_cluster(corpus) -> None:
    vocab, cooc = corpus
    vectors, stats = train_euclidean_glove(cooc, dim=10, epochs=40, batch_size=256)
    assert vectors.shape == (len(vocab), 10) and vectors.dtype == torch.float32
    losses = stats["loss"]
    assert len(losses) == 40 and stats["nnz"] == cooc.nnz
    assert all(b < a for a, b in itertools.pairwise(losses[:10]))  # early epochs: monotone
    assert losses[-1] < 0.1 * losses[0]
    assert stats["mean_loss"][-1] == pytest.approx(losses[-1] / cooc.nnz)
    ids = [[vocab.token_to_id(w) for w in topic] for topic in TOPICS]
    d = torch.cdist(vectors, vectors)
    same = torch.stack([d[a, b] for t in ids for a, b in itertools.combinations(t, 2)])
    cross = torch.stack([d[a, b] for t, u in itertools.combinations(ids, 2) for a in t for b in u])
    # measured: same-topic 3.4 / cross-topic 6.3 on average
    assert same.mean() < 0.7 * cross.mean()
    # most words' nearest neighbour is in their own topic
    topic_of = {i: k for k, t in enumerate(ids) for i in t}
    words = list(topic_of)
    sub = d[words][:, words].fill_diagonal_(math.inf)
    nearest = [words[int(j)] for j in sub.argmin(1)]
    hits = sum(topic_of[a] == topic_of[b] for a, b in zip(words, nearest, strict=True))
    assert hits >= 0.9 * len(words)


def test_glove_step_matches_autograd_reference() -> None:
    """One minibatch step: gradient of J/2 (autograd) and glove.c's AdaGrad, rows summed."""
    gen = torch.Generator().manual_seed(3)
    v, dim = 12, 5
    tables = _GloveTables(v, dim, gen, torch.float64)
    tables.w_sq.uniform_(1, 2, generator=gen)  # a state after some steps
    w0, c0, wsq0, csq0 = (t.clone() for t in (tables.w, tables.c, tables.w_sq, tables.c_sq))
    i = torch.tensor([0, 3, 3, 5, 7, 3, 0])  # repeated rows
    j = torch.tensor([1, 1, 4, 4, 2, 6, 11])
    log_x = torch.rand(7, generator=gen, dtype=torch.float64) * 3
    weight = torch.rand(7, generator=gen, dtype=torch.float64)
    lr = 0.3
    loss = tables.step(i, j, log_x, weight, lr)

    wv = w0[:, :dim].clone().requires_grad_()
    cv = c0[:, :dim].clone().requires_grad_()
    bw = w0[:, dim].clone().requires_grad_()
    bc = c0[:, dim + 1].clone().requires_grad_()
    r = (wv[i] * cv[j]).sum(1) + bw[i] + bc[j] - log_x
    j_ref = (weight * r * r).sum()
    (0.5 * j_ref).backward()
    assert float(loss) == pytest.approx(float(j_ref.detach()), rel=1e-12)

    def adagrad(param, sq, grad):
        upd = lr * grad
        sq_new = sq + upd * upd
        return param - upd / sq_new.sqrt(), sq_new

    for table, sq, sq0, p0, cols in (
        (tables.w, tables.w_sq, wsq0, w0, [(wv, slice(0, dim)), (bw, dim)]),
        (tables.c, tables.c_sq, csq0, c0, [(cv, slice(0, dim)), (bc, dim + 1)]),
    ):
        for param, col in cols:
            want, want_sq = adagrad(p0[:, col], sq0[:, col], param.grad)
            torch.testing.assert_close(table[:, col], want, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(sq[:, col], want_sq, rtol=1e-12, atol=1e-14)
    # the constant columns stay 1 and untouched rows stay as they were
    assert torch.all(tables.w[:, dim + 1] == 1) and torch.all(tables.c[:, dim] == 1)
    assert torch.equal(tables.w[[1, 2, 4]], w0[[1, 2, 4]])


def test_adagrad_step_is_bounded() -> None:
    """The accumulator includes the current step: at most 1 per coordinate (module doc)."""
    params, sq = torch.zeros(3, 2), torch.ones(3, 2)
    p, _ = _adagrad_rows(params, sq, torch.full((3, 2), 1e6), 0.05)
    assert torch.all(p.abs() <= 1)  # exactly 1 in float32 rounding


def test_glove_deterministic_and_thread_independent() -> None:
    cooc = random_cooc()
    kw = {"dim": 48, "epochs": 2, "batch_size": 8192, "seed": 5}
    with num_threads(1):
        a, sa = train_euclidean_glove(cooc, **kw)
        b, _ = train_euclidean_glove(cooc, **kw)
    with num_threads(2):
        c, sc = train_euclidean_glove(cooc, **kw)
    assert torch.equal(a, b)
    assert torch.equal(a, c)
    assert sa["loss"] == sc["loss"]
    d, _ = train_euclidean_glove(cooc, **{**kw, "seed": 6})
    assert not torch.equal(a, d)


def test_glove_options_and_edge_cases(corpus) -> None:
    _, cooc = corpus
    w, _ = train_euclidean_glove(cooc, dim=4, epochs=2, output="target", dtype="float64")
    c, _ = train_euclidean_glove(cooc, dim=4, epochs=2, output="context", dtype="float64")
    s, _ = train_euclidean_glove(cooc, dim=4, epochs=2, dtype="float64")
    assert w.dtype == torch.float64
    torch.testing.assert_close(s, w + c)
    seen = []
    train_euclidean_glove(cooc, dim=4, epochs=3, progress=lambda e, loss: seen.append(e))
    assert seen == [1, 2, 3]
    empty, stats = train_euclidean_glove(sp.csr_matrix((5, 5)), dim=3, epochs=2)
    assert empty.shape == (5, 3) and stats["loss"] == []
    with pytest.raises(ValueError, match="square"):
        train_euclidean_glove(sp.csr_matrix((4, 5)), dim=3)
    with pytest.raises(ValueError, match="output"):
        train_euclidean_glove(cooc, dim=3, output="midpoint")
    with pytest.raises(ValueError, match="lr"):
        train_euclidean_glove(cooc, dim=3, lr=0)


# ---------------------------------------------------------------------------------------------
# Hierarchy


def tree(depth: int = 3, branching: int = 3) -> list[tuple[str, str]]:
    """``(parent, child)`` edges of a complete tree: 40 nodes for depth 3, branching 3."""
    edges, level = [], ["r"]
    for _ in range(depth):
        nxt = []
        for parent in level:
            for i in range(branching):
                edges.append((parent, f"{parent}.{i}"))
                nxt.append(f"{parent}.{i}")
        level = nxt
    return edges


def forest() -> list[tuple[str, str]]:
    """Two trees of depth 2 (branching 4) and a chain: 47 nodes with no common root."""
    edges = [(f"{r}", f"{r}.{i}") for r in "ab" for i in range(4)]
    edges += [(f"{r}.{i}", f"{r}.{i}.{j}") for r in "ab" for i in range(4) for j in range(4)]
    edges += [(f"c{k}", f"c{k + 1}") for k in range(4)]
    return edges


def closure_of(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names, index = index_nodes(edges)
    pairs = transitive_closure(len(names), [(index[p], index[c]) for p, c in edges])
    return [(names[a], names[d]) for a, d in pairs]


def test_sgd_step_matches_autograd() -> None:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    idx = torch.randint(0, 9, (6, 7), generator=gen)
    idx[0, 4] = idx[0, 0]  # a negative equal to the parent: distance 0, no gradient
    idx[1, 1] = idx[2, 0]
    ref = weight.clone().requires_grad_()
    loss = _hierarchy_batch_loss(ref.index_select(0, idx.flatten()).view(6, 7, 4), "sum")
    loss.backward()
    lr = 0.7
    new = weight.clone()
    got = _sgd_step(new, idx, lr)
    assert got == pytest.approx(float(loss.detach()), rel=1e-12)
    torch.testing.assert_close(new, weight - lr * ref.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("edges", [tree(), forest()], ids=["tree", "forest"])
def test_hierarchy_reconstructs(edges) -> None:
    names, points, stats = train_euclidean_hierarchy(edges, dim=5, epochs=50)
    assert points.shape == (len(names), 5) and names == sorted(names)
    assert stats["n_nodes"] == len(names) and stats["n_edges"] == len(edges)
    clo = closure_of(edges)
    m = euclidean_reconstruction(names, points, clo)
    # measured (seeds 0, 1, 2): tree MAP 1.0, 1.0, 0.994; forest 0.917, 0.935, 0.926
    assert m["map"] > 0.85 and m["mean_rank"] < 1.2
    index = {n: i for i, n in enumerate(names)}
    d = torch.cdist(points.double(), points.double())
    related = {(index[a], index[b]) for a, b in clo} | {(index[b], index[a]) for a, b in clo}
    edge_d = torch.stack([d[index[p], index[c]] for p, c in edges])
    unrelated = torch.stack(
        [d[a, b] for a in range(len(names)) for b in range(a) if (a, b) not in related]
    )
    assert edge_d.mean() < 0.7 * unrelated.mean()


@pytest.mark.parametrize("edges", [tree(), forest()], ids=["tree", "forest"])
def test_hierarchy_loss_decreases(edges) -> None:
    # At the default lr 0.3 the tree's loss ends *above* its start (the root's summed steps
    # overshoot; its ranking is still perfect); at 0.1 it decreases: tree 2.40 -> 2.17,
    # forest 2.40 -> 0.55.
    _, _, stats = train_euclidean_hierarchy(edges, dim=5, epochs=50, lr=0.1)
    losses = stats["losses"]
    assert losses[-1] < losses[0] - 0.15
    assert losses[0] == pytest.approx(math.log(11), abs=0.05)  # near-equal start: log(1 + K)


def test_hierarchy_adam_and_direct_edges() -> None:
    edges = forest()
    names, points, _ = train_euclidean_hierarchy(edges, dim=5, epochs=50, lr=0.1, optimizer="adam")
    assert euclidean_reconstruction(names, points, closure_of(edges))["map"] > 0.8
    names, points, stats = train_euclidean_hierarchy(edges, dim=5, epochs=30, closure=False)
    assert stats["n_train_pairs"] == len(edges) < stats["n_closure_pairs"]
    assert euclidean_reconstruction(names, points, edges)["map"] > 0.8


def test_hierarchy_deterministic_and_thread_independent() -> None:
    edges = tree(3, 4)  # 85 nodes
    kw = {"dim": 16, "epochs": 5, "batch_size": 512, "seed": 2}
    with num_threads(1):
        _, a, sa = train_euclidean_hierarchy(edges, **kw)
        _, b, _ = train_euclidean_hierarchy(edges, **kw)
    with num_threads(2):
        _, c, sc = train_euclidean_hierarchy(edges, **kw)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert sa["losses"] == sc["losses"]
    _, d, _ = train_euclidean_hierarchy(edges, **{**kw, "seed": 3})
    assert not torch.equal(a, d)


def test_hierarchy_progress_and_errors() -> None:
    seen = []
    train_euclidean_hierarchy(tree(1), dim=2, epochs=3, progress=lambda *a: seen.append(a[:2]))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(HyperIMError, match="no edges"):
        train_euclidean_hierarchy([], dim=2)
    with pytest.raises(HyperIMError, match="cycle"):
        train_euclidean_hierarchy([("a", "b"), ("b", "a")], dim=2)
    with pytest.raises(HyperIMError, match="optimizer"):
        train_euclidean_hierarchy(tree(1), dim=2, optimizer="rsgd")  # type: ignore[arg-type]
    with pytest.raises(HyperIMError, match="dim"):
        train_euclidean_hierarchy(tree(1), dim=0)


def brute_force(names, points, pairs):
    index = {n: i for i, n in enumerate(names)}
    nbrs: dict[int, set[int]] = {}
    for a, b in pairs:
        nbrs.setdefault(index[a], set()).add(index[b])
    x = points.double()
    ranks, aps = [], []
    for u, nb in nbrs.items():
        d = (x - x[u]).norm(dim=1)
        negs = [w for w in range(len(names)) if w not in nb and w != u]
        rs = sorted(1 + sum(bool(d[w] < d[v]) for w in negs) for v in nb)
        ranks += rs
        aps.append(sum((i + 1) / (r + i) for i, r in enumerate(rs)) / len(rs))
    return sum(ranks) / len(ranks), sum(aps) / len(aps)


@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
def test_reconstruction_matches_definition(direction) -> None:
    edges = forest()
    clo = closure_of(edges)
    names, _ = index_nodes(edges)
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(len(names), 3, generator=gen)
    points[5] = points[7]  # a tie
    pairs = {
        "forward": clo,
        "backward": [(b, a) for a, b in clo],
        "both": clo + [(b, a) for a, b in clo],
    }[direction]
    m = euclidean_reconstruction(names, points, clo, direction=direction, chunk_elements=200)
    mean_rank, mean_ap = brute_force(names, points, pairs)
    assert m["mean_rank"] == pytest.approx(mean_rank, rel=1e-12)
    assert m["map"] == pytest.approx(mean_ap, rel=1e-12)
    assert m["n_pairs"] == len(set(pairs))


def test_reconstruction_errors() -> None:
    names = ["a", "b"]
    with pytest.raises(HyperIMError, match="names"):
        euclidean_reconstruction(names, torch.zeros(3, 2), [("a", "b")])
    with pytest.raises(HyperIMError, match="no embedding"):
        euclidean_reconstruction(names, torch.zeros(2, 2), [("a", "z")])
    with pytest.raises(HyperIMError, match="no relation"):
        euclidean_reconstruction(names, torch.zeros(2, 2), [("a", "a")])
