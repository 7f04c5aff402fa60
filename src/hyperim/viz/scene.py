"""What a picture of a trained model shows, as plain arrays (no matplotlib): the labels'
coordinates in the disk or the plane, the hierarchy's edges and depths, and for one document
its encoded words, their nearest labels and the predicted labels.

:func:`label_scene` and :func:`document_scene` are what ``hyperim plot`` draws
(:mod:`hyperim.viz.plots`); a web page can draw the same dictionaries as SVG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperim.errors import HyperIMError
from hyperim.viz import disk


def document_families() -> list[str]:
    """The registered families whose words and labels live in one space
    (:attr:`~hyperim.models.base.TextModel.words_in_label_space`), so that a document can be
    drawn with its labels (Figure 4)."""
    from hyperim.models import family_names, get_family

    return [n for n in family_names() if get_family(n).model_class.words_in_label_space]


def label_table(model: Any) -> tuple[str, np.ndarray]:
    """``("poincare", (C, n_balls, d))`` or ``("euclidean", (C, k))``: the family's
    :meth:`~hyperim.models.base.TextModel.label_points` (HyperIM's points in its balls; the
    label vectors of EuclideanIM, EXAM, DXML; HR-DGCNN's per-label weights, the ones its
    hierarchy regularises); one :class:`HyperIMError` line for a family without them."""
    points = model.label_points()
    if points is None:
        raise HyperIMError(
            f"model family {model.model_type!r} has no label embeddings to draw "
            "(plot works for hyperim, euclidean, exam, dxml and hrdgcnn)"
        )
    geometry, table = points
    return geometry, table.detach().cpu().double().numpy()


def find_hierarchy(meta: dict[str, Any], given: Path | None = None):
    """``(Hierarchy or None, where it came from or None)``: ``given`` (a hierarchy file), else
    ``hierarchy.tsv`` of the training data folder the model records (``meta["data"]``), else
    none (the picture then has no edges and names every label as top-level)."""
    from hyperim.data import read_hierarchy

    if given is not None:
        if not Path(given).is_file():
            raise HyperIMError(f"--hierarchy {given}: file not found")
        return read_hierarchy(Path(given)), str(given)
    data = meta.get("data")
    if isinstance(data, str) and (Path(data) / "hierarchy.tsv").is_file():
        path = Path(data) / "hierarchy.tsv"
        return read_hierarchy(path), str(path)
    return None, None


def _check_ball(ball: int | None, n_balls: int) -> None:
    if ball is not None and not 0 <= ball < n_balls:
        raise HyperIMError(f"--ball {ball}: the model has balls 0 to {n_balls - 1}")


def label_scene(model: Any, label_names: list[str], hierarchy=None, ball: int | None = None):
    """The labels of ``model`` (a :class:`~hyperim.models.base.TextModel`) as a dict:

    ``geometry`` ("poincare": coordinates in the unit disk; "euclidean": in the plane),
    ``xy`` (C, 2), ``labels``, ``depth`` (C,), ``top_level`` (C,), ``edges`` (E, 2),
    ``ball`` (the ball drawn, or None), ``spreads`` (each ball's
    :func:`~hyperim.viz.disk.hierarchy_spread`), ``projection`` (how ``xy`` was made, in
    words) and ``basis`` (the tangent axes of a ball above 2-D, for the document's words).
    """
    geometry, table = label_table(model)
    edges, depth, top = disk.hierarchy_arrays(label_names, hierarchy)
    scene: dict[str, Any] = {
        "geometry": geometry,
        "labels": list(label_names),
        "depth": depth,
        "top_level": top,
        "edges": edges,
        "ball": None,
        "spreads": None,
        "basis": None,
    }
    if geometry == "euclidean":
        xy, explained = disk.pca_plane(table)
        scene["xy"], scene["explained"] = xy, explained
        scene["projection"] = (
            f"PCA of the {table.shape[1]}-D label vectors "
            f"({100 * explained.sum():.0f}% of the variance)"
        )
        return scene
    n_balls, ball_dim = table.shape[1], table.shape[2]
    _check_ball(ball, n_balls)
    spreads = [disk.hierarchy_spread(table[:, b], edges) for b in range(n_balls)]
    chosen = int(np.argmax(spreads)) if ball is None else ball
    points = table[:, chosen]
    scene["ball"], scene["spreads"] = chosen, spreads
    how = "given" if ball is not None else "most spread"
    if ball_dim == 2:
        scene["xy"] = disk.clip_to_ball(points)
        scene["projection"] = f"ball {chosen} of {n_balls} ({how})"
    else:
        basis = disk.tangent_basis(points) if ball_dim > 2 else None
        scene["xy"], scene["basis"] = disk.project_to_disk(points, basis), basis
        scene["projection"] = (
            f"ball {chosen} of {n_balls} ({how}), {ball_dim}-D: log map at 0, "
            "principal tangent axes, exp map"
        )
    return scene


@torch.no_grad()
def document_scene(
    m: Any, text: str, hierarchy=None, ball: int | None = None, k: int = 5
) -> dict[str, Any]:
    """:func:`label_scene` of ``m`` (a :class:`~hyperim.api.HyperIM`) plus one document:
    ``words`` (its tokens), ``word_xy`` (T, 2) (their encoded positions Θ^w, by the same
    projection as the labels), ``nearest`` (T,) (each word's nearest label in the model's
    own distance over all its balls, the one Eq. 1 and 6 read) and ``predicted`` / ``probs``
    (the top-``k`` labels and their probabilities)."""
    if not m.model.words_in_label_space:
        raise HyperIMError(
            f"plot document needs words and labels in one space (a "
            f"{' or '.join(document_families())} model); this one is {m.model_type}"
        )
    if k < 1:
        raise HyperIMError("-k must be >= 1")
    ids = m._encode([text])[0]
    if len(ids) == 0:
        raise HyperIMError("the text has no words")
    scene = label_scene(m.model, m.labels.labels, hierarchy, ball)
    tokens = torch.as_tensor(ids, device=m.device)[None]
    mask = torch.ones_like(tokens, dtype=torch.bool)
    theta_w, _ = m.model.encode_batch(tokens, mask)
    words = theta_w[0].detach().cpu().double().numpy()  # (T, n, d) or (T, k)
    geometry, table = label_table(m.model)
    aggregate = getattr(m.model.config, "aggregate", "riemannian")
    scene["nearest"] = disk.nearest_labels(words, table, geometry, aggregate)
    if geometry == "poincare":
        scene["word_xy"] = disk.project_to_disk(words[:, scene["ball"]], scene["basis"])
    else:
        scene["word_xy"] = disk.pca_plane(table, extra=words)[2]
    scene["words"] = [m.vocab.tokens[i] for i in ids.tolist()]
    preds = m.predict([text], k=k, evidence=0)[0]
    scene["predicted"] = np.array([m.labels.index(p.label) for p in preds], np.int64)
    scene["probs"] = np.array([p.probability for p in preds])
    return scene
