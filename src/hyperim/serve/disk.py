"""The Poincaré disk of the web page, as JSON: what :mod:`hyperim.viz.scene` computes for
``hyperim plot``, in SVG coordinates (the disk's ``y`` axis flipped, so that the page draws
the same picture), rounded and small.

- :func:`label_payload` (``GET /v1/disk/labels``, built once at startup): the label points
  ``{"x", "y", "label", "depth", "top"}``, the hierarchy's edges as SVG path strings (each a
  geodesic: one circular arc orthogonal to the boundary, or a straight segment), the view box
  and how the picture was made;
- :func:`document_payload` (``POST /v1/disk``): one document's encoded words
  ``{"x", "y", "word", "nearest"}`` (each word's nearest label in the model's own distance)
  and its predicted labels ``{"label", "index", "score"}``.

A family whose labels are vectors of the plane (EuclideanIM, EXAM, DXML, HR-DGCNN) is drawn
by its PCA plane, scaled into the unit square (``geometry: "euclidean"``, straight edges, no
boundary); a family without label embeddings, or whose words are not points of the labels'
space, raises :class:`~hyperim.errors.HyperIMError` (the server answers 409 with it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hyperim.viz import disk, scene

#: Decimals kept of a coordinate in the unit disk (1e-4 of the radius: below a pixel).
DECIMALS = 4
#: The view around the whole disk (SVG units), with room for the boundary's stroke.
FULL_VIEW = (-1.04, -1.04, 2.08, 2.08)
#: Room around the labels in a zoomed view, a share of its side on each side.
ZOOM_MARGIN = 0.12


def _r(v: float) -> float:
    return round(float(v), DECIMALS)


def _svg(xy: np.ndarray) -> np.ndarray:
    """Disk coordinates (y up) to SVG coordinates (y down)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    return np.stack([xy[:, 0], -xy[:, 1]], axis=1)


def arc_path(p: np.ndarray, q: np.ndarray, geometry: str = "poincare") -> str:
    """An SVG path from ``p`` to ``q`` (SVG coordinates): in the Poincaré disk the geodesic,
    an arc of the circle orthogonal to the boundary through both (the shorter arc of that
    circle: the one inside the disk), or a segment when they lie on a diameter; in the plane,
    a segment."""
    start = f"M{_r(p[0])} {_r(p[1])}"
    end = f"{_r(q[0])} {_r(q[1])}"
    if geometry != "poincare":
        return f"{start}L{end}"
    circle = disk.geodesic_circle(p, q)  # flipping y maps orthogonal circles to themselves
    if circle is None or circle[1] > 1e3:  # a diameter, or too near one to tell
        return f"{start}L{end}"
    centre, radius = circle
    cross = (p[0] - centre[0]) * (q[1] - centre[1]) - (p[1] - centre[1]) * (q[0] - centre[0])
    sweep = 1 if cross > 0 else 0  # SVG's positive-angle direction, from p to q about centre
    return f"{start}A{_r(radius)} {_r(radius)} 0 0 {sweep} {end}"


def _view(xy: np.ndarray, geometry: str) -> tuple[list[float], bool]:
    """``([x, y, width, height], zoomed)``: the whole disk, or the square around the labels
    when they all lie near the centre (:func:`hyperim.viz.disk.zoom_window`)."""
    if geometry == "poincare":
        window = disk.zoom_window(xy, margin=ZOOM_MARGIN)
        if window is None:
            return list(FULL_VIEW), False
        (cx, cy), half = window
        return [_r(cx - half), _r(cy - half), _r(2 * half), _r(2 * half)], True
    return [-1.1, -1.1, 2.2, 2.2], False


def label_payload(model: Any, label_names: list[str], hierarchy=None) -> dict[str, Any]:
    """The labels of ``model`` (a :class:`~hyperim.models.base.TextModel`) for the page; see
    the module's docstring. ``scale`` maps the scene's plane coordinates into the payload's
    (1 in the disk; the PCA plane is scaled so that its farthest label lies at 0.95)."""
    s = scene.label_scene(model, label_names, hierarchy)
    xy = np.asarray(s["xy"], np.float64)
    scale = 1.0
    if s["geometry"] != "poincare":
        scale = 0.95 / max(float(np.linalg.norm(xy, axis=1).max(initial=0.0)), 1e-12)
    pts = _svg(xy * scale)
    view, zoomed = _view(pts, s["geometry"])
    return {
        "geometry": s["geometry"],
        "projection": s["projection"],
        "ball": s["ball"],
        "scale": scale,
        "view": view,
        "zoomed": zoomed,
        "points": [
            {"x": _r(x), "y": _r(y), "label": name, "depth": int(d), "top": bool(t)}
            for (x, y), name, d, t in zip(pts, s["labels"], s["depth"], s["top_level"], strict=True)
        ],
        "edges": [arc_path(pts[a], pts[b], s["geometry"]) for a, b in s["edges"]],
        "max_depth": int(max(s["depth"], default=0)),
    }


def document_payload(m: Any, text: str, hierarchy=None, k: int = 5, scale: float = 1.0) -> dict:
    """One document of ``text`` for ``m`` (a :class:`~hyperim.api.HyperIM`): its encoded
    words (one point per token the model reads) and its top-``k`` labels; see the module's
    docstring. ``scale`` is :func:`label_payload`'s."""
    s = scene.document_scene(m, text, hierarchy, k=k)
    words = _svg(np.asarray(s["word_xy"], np.float64) * scale)
    labels = s["labels"]
    return {
        "ball": s["ball"],
        "words": [
            {"x": _r(x), "y": _r(y), "word": w, "nearest": labels[int(n)]}
            for (x, y), w, n in zip(words, s["words"], s["nearest"], strict=True)
        ],
        "predicted": [
            {"label": labels[int(i)], "index": int(i), "score": float(p)}
            for i, p in zip(s["predicted"], s["probs"], strict=True)
        ],
    }
