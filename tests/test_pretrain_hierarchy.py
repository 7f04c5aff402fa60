"""Poincaré embeddings of a hierarchy (paper Eq. 2): trainer, reconstruction metrics, file I/O."""

from __future__ import annotations

import json
import math

import geoopt
import pytest
import torch

from hyperim.errors import DataError, HyperIMError
from hyperim.geometry import project
from hyperim.geometry.manifold import PoincareBall
from hyperim.geometry.numerics import MAX_NORM
from hyperim.geometry.poincare import dist
from hyperim.geometry.product import combine_ball_distances
from hyperim.pretrain.hierarchy import (
    HierarchyEmbeddingConfig,
    _batch_loss,
    _rsgd_step,
    index_nodes,
    reconstruction_metrics,
    sample_negatives,
    train_hierarchy_embedding,
    transitive_closure,
)
from hyperim.pretrain.io import load_embeddings, save_embeddings, sidecar_path


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


def closure_of(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    names, index = index_nodes(edges)
    pairs = transitive_closure(len(names), [(index[p], index[c]) for p, c in edges])
    return [(names[a], names[d]) for a, d in pairs]


def brute_force_metrics(names, points, pairs, aggregate):
    """Mean rank and MAP straight from the definition, one pair at a time."""
    index = {name: i for i, name in enumerate(names)}
    nbrs: dict[int, set[int]] = {}
    for a, b in pairs:
        nbrs.setdefault(index[a], set()).add(index[b])
    ranks, aps = [], []
    x = points.double()
    for u, nb in nbrs.items():
        d = combine_ball_distances(dist(x[u : u + 1], x), aggregate)
        negs = [w for w in range(len(names)) if w not in nb and w != u]
        rr = sorted(1 + sum(1 for w in negs if d[w] < d[v]) for v in nb)
        ranks += rr
        aps.append(sum((i + 1) / (r + i) for i, r in enumerate(rr)) / len(rr))
    return sum(ranks) / len(ranks), sum(aps) / len(aps)


# --------------------------------------------------------------------------- graph helpers


def test_transitive_closure_of_a_tree_and_a_dag():
    names, index = index_nodes(tree(2, 2))
    pairs = transitive_closure(len(names), [(index[p], index[c]) for p, c in tree(2, 2)])
    got = {(names[a], names[d]) for a, d in pairs}
    assert got == {
        ("r", "r.0"), ("r", "r.1"), ("r.0", "r.0.0"), ("r.0", "r.0.1"), ("r.1", "r.1.0"),
        ("r.1", "r.1.1"), ("r", "r.0.0"), ("r", "r.0.1"), ("r", "r.1.0"), ("r", "r.1.1"),
    }  # fmt: skip
    # A diamond, given partly closed already (closure input must give the same closure).
    dag = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)]
    assert sorted(transitive_closure(4, dag)) == [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)]


def test_cycle_is_refused():
    with pytest.raises(HyperIMError, match="cycle"):
        transitive_closure(3, [(0, 1), (1, 2), (2, 0)])
    with pytest.raises(HyperIMError, match="cycle"):
        train_hierarchy_embedding([("a", "b"), ("b", "a")], HierarchyEmbeddingConfig(epochs=1))


def test_negative_samples_are_never_descendants():
    edges = tree(2, 3)
    names, index = index_nodes(edges)
    n = len(names)
    pairs = torch.tensor(transitive_closure(n, [(index[p], index[c]) for p, c in edges]))
    keys = torch.sort(pairs[:, 0] * n + pairs[:, 1]).values
    descendants = {(int(a), int(d)) for a, d in pairs}
    parents = torch.arange(n).repeat(50)
    negs = sample_negatives(parents, n, 10, keys, torch.Generator().manual_seed(0))
    assert negs.shape == (parents.numel(), 10)
    for p, row in zip(parents.tolist(), negs.tolist(), strict=True):
        assert not any((p, q) in descendants for q in row)
    # The root's only non-descendant is itself: N(root) = {root}.
    root = index["r"]
    assert (negs[parents == root] == root).all()
    # Others draw from everything that is not a descendant, themselves included.
    leaf_negs = negs[parents == index["r.0.0"]]
    assert set(leaf_negs.flatten().tolist()) == set(range(n))


# --------------------------------------------------------------------------- config


def test_config_shapes():
    assert (HierarchyEmbeddingConfig().n_balls, HierarchyEmbeddingConfig().ball_dim) == (1, 10)
    cfg = HierarchyEmbeddingConfig(dim=6, n_balls=3)
    assert (cfg.dim, cfg.n_balls, cfg.ball_dim) == (6, 3, 2)
    assert HierarchyEmbeddingConfig(n_balls=75, ball_dim=2).dim == 150
    with pytest.raises(HyperIMError):
        HierarchyEmbeddingConfig(dim=5, n_balls=2)
    with pytest.raises(HyperIMError):
        HierarchyEmbeddingConfig(dim=4, n_balls=2, ball_dim=3)
    with pytest.raises(HyperIMError):
        HierarchyEmbeddingConfig(aggregate="max")  # type: ignore[arg-type]
    with pytest.raises(HyperIMError):
        HierarchyEmbeddingConfig(optimizer="sgd")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- optimiser


@pytest.mark.parametrize("aggregate", ["sum", "riemannian"])
@pytest.mark.parametrize("shape", [(1, 5), (3, 2)])
def test_rsgd_step_equals_geoopt_riemannian_sgd(aggregate, shape):
    """The hand-written step is geoopt's RiemannianSGD on the autograd loss through ``dist``."""
    gen = torch.Generator().manual_seed(0)
    n = 30
    w0 = torch.randn(n, *shape, dtype=torch.float64, generator=gen)
    w0 = w0 / w0.norm(dim=-1, keepdim=True) * 0.95 * torch.rand(n, shape[0], 1, generator=gen)
    idx = torch.randint(0, n, (16, 7), generator=gen)
    idx[0, 3] = idx[0, 0]  # a parent drawn as its own negative (zero distance)
    ours = geoopt.ManifoldParameter(w0.clone(), manifold=PoincareBall())
    loss_ours = _rsgd_step(ours, idx, 0.05, aggregate)

    ref = geoopt.ManifoldParameter(w0.clone(), manifold=PoincareBall())
    opt = geoopt.optim.RiemannianSGD([ref], lr=0.05)
    loss_ref = _batch_loss(ref.index_select(0, idx.flatten()).view(16, 7, *shape), aggregate, "sum")
    loss_ref.backward()
    opt.step()
    assert loss_ours == pytest.approx(float(loss_ref.detach()), rel=1e-9)
    torch.testing.assert_close(ours.data, ref.data, rtol=0, atol=1e-8)


def test_rsgd_step_does_not_depend_on_threads():
    """Rows met several times in a batch are summed in a fixed order (an accumulating
    ``index_put_`` did not at this size with 2 threads, so identical runs differed)."""
    gen = torch.Generator().manual_seed(0)
    w0 = project(0.3 * torch.randn(608, 75, 2, generator=gen))
    idx = torch.randint(0, 608, (128, 12), generator=gen)  # debtags-sized: 1,536 rows
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 2, 2):
            torch.set_num_threads(threads)
            w = geoopt.ManifoldParameter(w0.clone(), manifold=PoincareBall())
            _rsgd_step(w, idx, 0.1, "riemannian")
            results.append(w.data)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], r) for r in results[1:])


# --------------------------------------------------------------------------- training


def test_small_tree_is_reconstructed():
    edges = tree()
    pairs = closure_of(edges)
    cfg = HierarchyEmbeddingConfig(dim=5, epochs=100, batch_size=32, seed=0)
    names, points, stats = train_hierarchy_embedding(edges, cfg)
    assert len(names) == 40 and points.shape == (40, 1, 5)
    assert stats["n_closure_pairs"] == len(pairs) == 102 and stats["n_train_pairs"] == 102
    assert len(stats["losses"]) == 100
    trained = reconstruction_metrics(names, points, pairs)
    assert trained["map"] > 0.9 and trained["mean_rank"] < 1.5
    # The same check fails for the untrained initialisation.
    init = torch.empty_like(points).uniform_(-1e-3, 1e-3, generator=torch.Generator())
    untrained = reconstruction_metrics(names, init, pairs)
    assert untrained["map"] < 0.5 and untrained["mean_rank"] > 5


def test_product_of_balls_trains_and_is_reproducible():
    edges = tree()
    cfg = HierarchyEmbeddingConfig(n_balls=2, ball_dim=2, epochs=60, batch_size=32)
    names, points, _ = train_hierarchy_embedding(edges, cfg)
    assert points.shape == (40, 2, 2)
    assert reconstruction_metrics(names, points, closure_of(edges))["map"] > 0.85
    _, again, _ = train_hierarchy_embedding(edges, cfg)
    assert torch.equal(points, again)


def test_direct_edges_option_and_progress():
    seen = []
    cfg = HierarchyEmbeddingConfig(dim=2, epochs=3, burn_in=1, closure=False)
    _, _, stats = train_hierarchy_embedding(
        tree(), cfg, progress=lambda e, total, loss: seen.append((e, total, loss))
    )
    assert stats["n_train_pairs"] == 39 and stats["n_closure_pairs"] == 102
    assert [(e, t) for e, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["rsgd", "radam"])
def test_points_stay_inside_the_ball(dtype, optimizer):
    # A large step rate pushes points against the boundary.
    lr = 3.0 if optimizer == "rsgd" else 0.5
    cfg = HierarchyEmbeddingConfig(
        dim=2, epochs=20, burn_in=0, lr=lr, optimizer=optimizer, dtype=dtype, batch_size=16
    )
    _, points, stats = train_hierarchy_embedding(tree(2, 4), cfg)
    assert points.dtype == getattr(torch, dtype)
    assert torch.isfinite(points).all()
    norms = points.double().norm(dim=-1)
    assert norms.max() <= MAX_NORM + 1e-6
    if optimizer == "rsgd":
        assert norms.max() > 0.999  # the projection was exercised
    assert all(math.isfinite(v) for v in stats["losses"])


# --------------------------------------------------------------------------- metrics


def test_reconstruction_metrics_hand_example():
    """Four points on a 1-D ball: 0, 0.1, 0.5, -0.3 with distances 2·artanh|·| from 0."""
    names = ["a", "b", "c", "d"]
    points = torch.tensor([[0.0], [0.1], [0.5], [-0.3]]).view(4, 1, 1)
    # a ranks c behind negatives b (0.20) and d (0.62): rank 3, AP 1/3.
    # b ranks a (0.20) before c (0.90) and d (0.82): rank 1, AP 1.
    # c ranks a (1.10) and d (1.72) both behind negative b (0.90): ranks 2, 2; AP (1/2 + 2/3)/2.
    pairs = [("a", "c"), ("b", "a"), ("c", "a"), ("c", "d")]
    got = reconstruction_metrics(names, points, pairs)
    assert got["mean_rank"] == pytest.approx((3 + 1 + 2 + 2) / 4)
    assert got["map"] == pytest.approx((1 / 3 + 1 + 7 / 12) / 3)
    assert (got["n_queries"], got["n_pairs"]) == (3, 4)
    # Backward, the neighbours are a: {b, c}, c: {a}, d: {c}.
    back = reconstruction_metrics(names, points, pairs, direction="backward")
    # a: neighbours b (0.20), c (1.10); negative d (0.62): ranks 1, 2 → AP (1 + 2/3) / 2.
    # c: neighbour a (1.10); negatives b (0.90), d (1.72): rank 2 → AP 1/2.
    # d: neighbour c (1.72); negatives a (0.62), b (0.82): rank 3 → AP 1/3.
    assert back["mean_rank"] == pytest.approx((1 + 2 + 2 + 3) / 4)
    assert back["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2 + 1 / 3) / 3)


@pytest.mark.parametrize("aggregate", ["sum", "riemannian"])
def test_reconstruction_metrics_match_brute_force(aggregate, monkeypatch):
    # Record which counting path ran: all (r, n) scores bucketed, or only the near ones.
    paths = set()
    searchsorted = torch.searchsorted

    def spy(sorted_seq, values, **kw):
        paths.add("near" if values.shape[-1] == 1 else "all")
        return searchsorted(sorted_seq, values, **kw)

    monkeypatch.setattr(torch, "searchsorted", spy)
    gen = torch.Generator().manual_seed(1)
    pairs = closure_of(tree())
    names = sorted({x for p in pairs for x in p})  # the trainer's row order
    n = len(names)
    for shape in [(1, 2), (3, 2)]:
        # Random points (the dense counting path) and a trained embedding (the sparse path).
        random_pts = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
        random_pts = random_pts / random_pts.norm(dim=-1, keepdim=True)
        random_pts = random_pts * 0.9 * torch.rand(n, shape[0], 1, generator=gen)
        cfg = HierarchyEmbeddingConfig(
            n_balls=shape[0], ball_dim=shape[1], epochs=30, batch_size=32, aggregate=aggregate
        )
        trained = train_hierarchy_embedding(tree(), cfg)[1]
        for pts in (random_pts, trained):
            for direction in ("forward", "both"):
                both = [(b, a) for a, b in pairs] if direction == "both" else []
                want = brute_force_metrics(names, pts, pairs + both, aggregate)
                for chunk in (64, 1 << 20):
                    got = reconstruction_metrics(
                        names, pts, pairs, aggregate, direction=direction, chunk_elements=chunk
                    )
                    assert got["mean_rank"] == pytest.approx(want[0], rel=1e-12)
                    assert got["map"] == pytest.approx(want[1], rel=1e-12)
    assert paths == {"near", "all"}


def test_reconstruction_metrics_sampled_queries_and_errors():
    pairs = closure_of(tree())
    names, points, _ = train_hierarchy_embedding(tree(), HierarchyEmbeddingConfig(epochs=2))
    sub = reconstruction_metrics(names, points, pairs, max_queries=5)
    assert sub["n_queries"] == 5
    with pytest.raises(HyperIMError, match="no embedding"):
        reconstruction_metrics(names, points, [("r", "zzz")])
    with pytest.raises(HyperIMError):
        reconstruction_metrics(names[:-1], points, pairs)


# --------------------------------------------------------------------------- file I/O


def test_io_round_trip_single_ball(tmp_path):
    gen = torch.Generator().manual_seed(0)
    points = (torch.rand(5, 1, 3, dtype=torch.float64, generator=gen) - 0.5) / 2
    points[0] = points[0] / points[0].norm() * MAX_NORM  # on the projection radius
    names = ["a", "b c", "d\te", "f", "g"]
    path = tmp_path / "emb.txt"
    save_embeddings(path, names, points)
    lines = path.read_text().splitlines()
    assert lines[0] == "5 3"
    assert lines[2].split(" ")[0] == "b_c" and lines[3].split(" ")[0] == "d_e"
    meta = json.loads(sidecar_path(path).read_text())
    assert meta == {
        "model": "poincare", "n_balls": 1, "ball_dim": 3, "aggregate": "sum", "dtype": "float64"
    }  # fmt: skip
    got_names, got = load_embeddings(path)
    assert got_names == ["a", "b_c", "d_e", "f", "g"]
    assert got.dtype == torch.float64 and torch.equal(got, points)
    # Without the sidecar: one ball of the header's dimension, float64.
    sidecar_path(path).unlink()
    assert torch.equal(load_embeddings(path)[1], points)


def test_io_round_trip_product_float32(tmp_path):
    gen = torch.Generator().manual_seed(0)
    points = (torch.rand(4, 3, 2, generator=gen) - 0.5) / 1.5
    path = tmp_path / "prod.w2v"
    save_embeddings(path, ["w", "x", "y", "z"], points, aggregate="riemannian")
    assert path.read_text().splitlines()[0] == "4 6"
    meta = json.loads(sidecar_path(path).read_text())
    assert (meta["n_balls"], meta["ball_dim"], meta["aggregate"]) == (3, 2, "riemannian")
    names, got = load_embeddings(path)
    assert names == ["w", "x", "y", "z"]
    assert got.dtype == torch.float32 and torch.equal(got, points)
    assert torch.equal(load_embeddings(path, dtype=torch.float64)[1], points.double())


def test_io_save_refuses_colliding_names(tmp_path):
    with pytest.raises(HyperIMError, match="both written"):
        save_embeddings(tmp_path / "e", ["a b", "a_b"], torch.zeros(2, 1, 2))
    with pytest.raises(HyperIMError):
        save_embeddings(tmp_path / "e", ["a"], torch.zeros(2, 1, 2))


BAD_FILES = [
    ("", 1, "empty file"),
    ("two 2\na 0.1 0.2\n", 1, "header"),
    ("2 2\na 0.1 0.2\n", 1, "header says 2 items"),
    ("1 2\na 0.1 0.2\nb 0.1 0.2\n", 3, "more items"),
    ("2 2\na 0.1 0.2\nb 0.1\n", 3, "expected 3 columns"),
    ("2 2\na 0.1 0.2\nb 0.1 0.2 0.3\n", 3, "expected 3 columns"),
    ("2 2\na 0.1 0.2\nb 0.1 x\n", 3, "non-numeric value 'x'"),
    ("2 2\na nan 0.2\nb 0.1 0.2\n", 2, "non-finite"),
    ("2 2\na 0.1 0.2\nb 0.8 0.6\n", 3, "outside the Poincaré ball"),
    ("2 2\na 0.1 0.2\na 0.1 0.2\n", 3, "repeats line 2"),
]


@pytest.mark.parametrize(("content", "line", "problem"), BAD_FILES)
def test_io_bad_input_names_file_and_line(tmp_path, content, line, problem):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as err:
        load_embeddings(path)
    assert err.value.line == line and err.value.path == str(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and "\n" not in str(err.value)


def test_io_bad_sidecar_and_missing_file(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("1 4\na 0.1 0.2 0.3 0.4\n")
    sidecar_path(path).write_text(json.dumps({"n_balls": 3, "ball_dim": 2}))
    with pytest.raises(DataError, match="does not match the sidecar") as err:
        load_embeddings(path)
    assert err.value.line == 1
    # Outside one ball of a product (ball 1 = (0.8, 0.7)).
    path.write_text("1 4\na 0.1 0.2 0.8 0.7\n")
    sidecar_path(path).write_text(json.dumps({"n_balls": 2, "ball_dim": 2}))
    with pytest.raises(DataError, match="in ball 1") as err:
        load_embeddings(path)
    assert err.value.line == 2
    sidecar_path(path).write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON") as err:
        load_embeddings(path)
    assert err.value.path == str(sidecar_path(path)) and err.value.line == 1
    with pytest.raises(DataError, match="file not found"):
        load_embeddings(tmp_path / "missing.txt")


def test_a_single_root_of_everything_sits_at_the_origin():
    """A label that is an ancestor of every other is not trained (Eq. 2 cannot satisfy its
    pairs and pushed it to the boundary) but placed at the origin; the rest is reconstructed
    at least as well as with it, and a forest has no such label."""
    from hyperim.data.hierarchy import Hierarchy
    from hyperim.pretrain.init import embed_hierarchy

    edges = tree(depth=3, branching=3)
    nodes = sorted({n for e in edges for n in e})
    h = Hierarchy(nodes, edges, ["r"])
    assert h.universal_ancestors() == {"r"}
    forest = Hierarchy(nodes[1:], [e for e in edges if e[0] != "r"], ["r.0", "r.1", "r.2"])
    assert forest.universal_ancestors() == set()
    cfg = HierarchyEmbeddingConfig(dim=5, epochs=60, batch_size=32, seed=0)
    names, points, stats = embed_hierarchy(h, cfg)
    assert names == nodes and stats["fixed_at_origin"] == ["r"]
    assert torch.equal(points[names.index("r")], torch.zeros(1, 5))
    old_names, old_points, _ = train_hierarchy_embedding(edges, cfg)
    old = reconstruction_metrics(old_names, old_points, closure_of(edges))
    assert stats["reconstruction"]["map"] > old["map"]  # measured 0.97 against 0.89
    assert stats["reconstruction"]["map"] > 0.8
