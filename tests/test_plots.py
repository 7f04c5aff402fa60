"""Pictures: the disk's coordinates (pure functions, no matplotlib) and ``hyperim plot``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperim.api import HyperIM
from hyperim.config import TrainConfig
from hyperim.data import Hierarchy
from hyperim.errors import HyperIMError
from hyperim.geometry import dist
from hyperim.train import train
from hyperim.viz import disk
from hyperim.viz.plots import draw_document, draw_labels
from hyperim.viz.scene import document_scene, find_hierarchy, label_scene, label_table

COMMON = dict(max_len=24, min_count=1, batch_size=16, lr=1e-2, negatives=3, epochs=1)
SMALL = {
    "hyperim": dict(n_balls=3, ball_dim=2, label_init="random", word_init="random"),
    "euclidean": dict(dim=6, label_init="random", word_init="random"),
    "sleec": dict(dim=8, learners=2, cluster_size=80, k=5),
}


@pytest.fixture(scope="module")
def trained(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """``trained(family)``: the run folder of a one-epoch model on the tiny dataset."""
    runs: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in runs:
            run = tmp_path_factory.mktemp(family)
            cfg = TrainConfig.of(**{"model": family, **COMMON, **SMALL[family]})
            train(tiny_dataset, run, cfg, progress=False)
            runs[family] = run
        return runs[family]

    return get


# ----------------------------------------------------------------------- pure coordinates
def test_geodesic_is_orthogonal_to_the_boundary_and_passes_through_both_points() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = disk.clip_to_ball(rng.uniform(-0.7, 0.7, (2, 2)))
        arc = disk.geodesic_arc(p, q, 50)
        np.testing.assert_allclose(arc[0], p)
        np.testing.assert_allclose(arc[-1], q)
        assert np.all(np.linalg.norm(arc, axis=1) < 1)
        found = disk.geodesic_circle(p, q)
        assert found is not None
        centre, radius = found
        np.testing.assert_allclose(np.linalg.norm(arc - centre, axis=1), radius, rtol=1e-6)
        assert centre @ centre == pytest.approx(radius**2 + 1)  # meets |z| = 1 at right angles
        # evenly spaced in hyperbolic length, adding up to the distance
        steps = disk.poincare_dist(arc[:-1], arc[1:])
        np.testing.assert_allclose(steps, steps.mean(), rtol=1e-5)
        assert steps.sum() == pytest.approx(float(disk.poincare_dist(p, q)), rel=1e-6)


def test_geodesic_through_the_origin_is_a_straight_line() -> None:
    p, q = np.array([0.3, 0.4]), np.array([-0.45, -0.6])
    arc = disk.geodesic_arc(p, q, 20)
    cross = arc[:, 0] * p[1] - arc[:, 1] * p[0]
    np.testing.assert_allclose(cross, 0, atol=1e-12)
    assert disk.geodesic_circle(p, q) is None


def test_numpy_distance_matches_the_model_geometry() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-0.6, 0.6, (2, 10, 2))
    expected = dist(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(disk.poincare_dist(x, y), expected, rtol=1e-6)


def test_projection_keeps_points_inside_the_disk() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(size=(200, 5))
    points = disk.expmap0(v * 4)  # many very near the boundary
    xy = disk.project_to_disk(points)
    assert xy.shape == (200, 2)
    assert np.all(np.linalg.norm(xy, axis=1) < 1)
    # no point moves away from the origin (an orthogonal projection of the tangent vectors)
    assert np.all(
        disk.poincare_dist(xy, np.zeros_like(xy))
        <= disk.poincare_dist(points, np.zeros_like(points)) + 1e-9
    )
    # points in the plane of the first two axes keep their distance to the origin
    flat = np.zeros((50, 5))
    flat[:, :2] = rng.uniform(-0.6, 0.6, (50, 2))
    out = disk.project_to_disk(flat)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(flat, axis=1))
    # a 2-D ball is drawn as it is
    two = rng.uniform(-0.5, 0.5, (10, 2))
    np.testing.assert_allclose(disk.project_to_disk(two), two)


def test_default_ball_is_the_one_with_the_largest_spread() -> None:
    # labels 0 -> 1, 0 -> 2; ball 1 places the children far from their parent
    points = np.zeros((3, 3, 2))
    points[:, 0] = [[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]]
    points[:, 1] = [[0.0, 0.0], [0.8, 0.0], [-0.8, 0.0]]
    points[:, 2] = [[0.5, 0.5], [0.55, 0.5], [0.5, 0.55]]  # far from the origin, edges short
    edges = np.array([[0, 1], [0, 2]])
    assert disk.select_ball(points, edges) == 1
    spreads = [disk.hierarchy_spread(points[:, b], edges) for b in range(3)]
    assert spreads[1] > spreads[2] > 0
    # without a hierarchy: the ball whose labels lie farthest apart (not ball 2's far pile)
    assert disk.select_ball(points, np.zeros((0, 2), np.int64)) == 1


def test_hierarchy_arrays_and_thinned_names() -> None:
    tree = Hierarchy(["a", "a::x", "a::y", "b"], [("a", "a::x"), ("a", "a::y")], ["a", "b"])
    labels = ["a::x", "a", "b", "a::y", "unknown"]
    edges, depth, top = disk.hierarchy_arrays(labels, tree)
    assert sorted(map(tuple, edges.tolist())) == [(1, 0), (1, 3)]
    assert depth.tolist() == [1, 0, 0, 1, 0]
    assert top.tolist() == [False, True, True, False, True]
    xy = np.array([[0, 0], [0.01, 0], [0.5, 0], [0.52, 0], [0.9, 0]])
    kept = disk.thin_names(xy, [1, 5, 1, 1, 1], 0.1)
    assert kept == [1, 2, 4]  # the higher priority wins a pile; 0.02 apart is too close
    kept_xy = xy[kept]
    gaps = np.linalg.norm(kept_xy[:, None] - kept_xy[None], axis=-1)
    assert gaps[np.triu_indices(len(kept), 1)].min() >= 0.1


def test_nearest_labels_in_the_product_of_balls() -> None:
    words = np.array([[[0.1, 0.0], [0.0, 0.0]], [[-0.5, 0.0], [0.0, 0.5]]])  # (T=2, n=2, d=2)
    labels = np.array([[[0.1, 0.0], [0.0, 0.1]], [[-0.5, 0.0], [0.0, 0.4]]])  # (C=2, ...)
    assert disk.nearest_labels(words, labels).tolist() == [0, 1]
    assert disk.nearest_labels(words, labels, aggregate="sum").tolist() == [0, 1]
    e = disk.nearest_labels(np.array([[0.0, 1.0]]), np.array([[5.0, 5.0], [0.0, 2.0]]), "euclidean")
    assert e.tolist() == [1]


def test_zoom_window_only_for_a_pile_near_the_centre() -> None:
    pile = np.array([[0.1, 0.1], [0.2, 0.0], [0.15, -0.1]])
    centre, half = disk.zoom_window(pile)
    assert np.all(np.abs(pile - centre) < half)  # every point in view, with a margin
    assert half < 0.5
    assert disk.zoom_window(np.array([[0.1, 0.1], [0.0, -0.7]])) is None  # the whole disk


def test_pca_plane_explains_at_most_all_variance() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(30, 6)) * [5, 3, 1, 0.1, 0.1, 0.1]
    xy, explained, words = disk.pca_plane(vectors, extra=vectors[:4])
    assert xy.shape == (30, 2) and words.shape == (4, 2)
    np.testing.assert_allclose(words, xy[:4])
    assert 0.9 < explained.sum() <= 1.0


def test_a_higher_dimensional_ball_is_projected_into_the_disk(tmp_path: Path) -> None:
    from types import SimpleNamespace

    rng = np.random.default_rng(4)
    points = disk.expmap0(rng.normal(size=(12, 2, 5)) * 2)  # 12 labels in 2 balls of 5-D
    points[:, 1] *= 0.1  # ball 1: a pile near the origin
    fake = SimpleNamespace(
        model_type="hyperim",
        n_labels=12,
        label_points=lambda: ("poincare", torch.from_numpy(points)),
    )
    names = [f"l{i}" for i in range(12)]
    scene = label_scene(fake, names)
    assert scene["ball"] == 0 and "5-D: log map at 0" in scene["projection"]
    assert scene["xy"].shape == (12, 2) and np.all(np.linalg.norm(scene["xy"], axis=1) < 1)
    np.testing.assert_allclose(scene["xy"], disk.project_to_disk(points[:, 0]))
    named = draw_labels(scene, tmp_path / "five.png")
    assert named and set(named) <= set(names)  # no hierarchy: every label is top-level
    with pytest.raises(HyperIMError, match="no label embeddings"):
        label_table(SimpleNamespace(model_type="hmcnf", n_labels=12, label_points=lambda: None))


def test_coordinates_need_no_matplotlib() -> None:
    code = (
        "import sys, hyperim.viz.disk, hyperim.viz.scene; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------- scenes and files
def test_label_scene_and_picture_of_a_hyperim_model(trained, tmp_path: Path) -> None:
    m = HyperIM.from_pretrained(trained("hyperim") / "model")
    tree, source = find_hierarchy(m.meta)
    assert source is not None and source.endswith("hierarchy.tsv")
    scene = label_scene(m.model, m.labels.labels, tree)
    table = m.model.labels.weight.detach().double().numpy()
    assert scene["ball"] == disk.select_ball(table, scene["edges"])
    np.testing.assert_allclose(scene["xy"], table[:, scene["ball"]], atol=1e-7)
    assert len(scene["edges"]) == 4  # the tiny hierarchy's four edges
    for ball in range(3):
        assert label_scene(m.model, m.labels.labels, tree, ball)["ball"] == ball
    with pytest.raises(HyperIMError, match="--ball 3: the model has balls 0 to 2"):
        label_scene(m.model, m.labels.labels, tree, 3)
    named = draw_labels(scene, tmp_path / "labels.png")
    top = {m.labels.labels[i] for i in np.flatnonzero(scene["top_level"])}
    assert named and set(named) <= top == {"animal", "tool"}
    assert (tmp_path / "labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_document_scene_links_each_word_to_the_model_nearest_label(trained, tmp_path) -> None:
    m = HyperIM.from_pretrained(trained("hyperim") / "model")
    tree, _ = find_hierarchy(m.meta)
    text = "the kitten and the puppy with a drill"
    scene = document_scene(m, text, tree, k=3)
    assert scene["words"] == text.split()
    assert scene["word_xy"].shape == (len(scene["words"]), 2)
    assert np.all(np.linalg.norm(scene["word_xy"], axis=1) < 1)
    # the model's own interaction scores (-distance over all balls) agree on the nearest label
    ids = torch.as_tensor(m._encode([text])[0])[None]
    mask = torch.ones_like(ids, dtype=torch.bool)
    encoded = m.model.encode_batch(ids, mask)
    all_labels = torch.arange(m.model.n_labels)[None]
    with torch.no_grad():
        s = m.model.word_label_scores(encoded, all_labels)[0]  # (C, T)
    assert scene["nearest"].tolist() == s.argmax(dim=0).tolist()
    expected = [p.label for p in m.predict([text], k=3)[0]]
    assert [m.labels.labels[j] for j in scene["predicted"]] == expected
    drawn = draw_document(scene, tmp_path / "doc.svg")
    assert drawn["predicted"] == expected[: len(drawn["predicted"])]
    assert len(drawn["predicted"]) >= 1 and set(drawn["words"]) <= set(scene["words"])
    assert (tmp_path / "doc.svg").read_text().lstrip().startswith("<?xml")


def test_euclidean_model_in_the_plane(trained, tmp_path: Path) -> None:
    m = HyperIM.from_pretrained(trained("euclidean") / "model")
    geometry, table = label_table(m.model)
    assert geometry == "euclidean" and table.shape == (m.model.n_labels, 6)
    scene = document_scene(m, "a cat and a saw", find_hierarchy(m.meta)[0])
    assert scene["geometry"] == "euclidean" and scene["ball"] is None
    assert "PCA" in scene["projection"]
    draw_labels(scene, tmp_path / "e.png")
    draw_document(scene, tmp_path / "d.png")
    assert (tmp_path / "e.png").stat().st_size > 1000


# ----------------------------------------------------------------------- the command line
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hyperim", *args], capture_output=True, text=True, timeout=120
    )


def test_plot_commands(trained, tmp_path: Path) -> None:
    model = str(trained("hyperim"))
    r = cli("plot", "labels", "--model", model, "--out", str(tmp_path / "l.svg"), "--ball", "1")
    assert r.returncode == 0, r.stderr
    assert "ball 1 of 3 (given)" in r.stdout
    assert "<svg" in (tmp_path / "l.svg").read_text()
    out = tmp_path / "new" / "folder" / "d.png"  # folders made as needed
    r = cli("plot", "document", "--model", model, "a kitten with a saw", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["labels", "--out", "{tmp}/x.pdf"], "--out {tmp}/x.pdf: give a .png or .svg file name"),
        (["labels", "--out", "{tmp}/x.png", "--ball", "7"], "--ball 7: the model has balls 0"),
        (["labels", "--out", "{tmp}/x.png", "--hierarchy", "{tmp}/no"], "file not found"),
        (["document", "--out", "{tmp}/x.png", "zzzz", "-k", "0"], "-k must be >= 1"),
    ],
)
def test_plot_errors_are_one_line(trained, tmp_path: Path, args, message) -> None:
    model = str(trained("hyperim"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = cli("plot", args[0], "--model", model, *args[1:])
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert message.replace("{tmp}", str(tmp_path)) in line


def test_family_without_label_embeddings_gets_one_line(trained, tmp_path: Path) -> None:
    r = cli("plot", "labels", "--model", str(trained("sleec")), "--out", str(tmp_path / "s.png"))
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "hyperim: error: model family 'sleec' has no label embeddings to draw "
        "(plot works for hyperim, euclidean, exam, dxml and hrdgcnn)"
    )
    assert not (tmp_path / "s.png").exists()
