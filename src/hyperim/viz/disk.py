"""Coordinates for pictures of the Poincaré disk: pure numpy functions, no matplotlib.

Everything here takes and returns plain arrays (curvature -1, the unit ball, as in
:mod:`hyperim.geometry`), so that a web page can draw the same disk as ``hyperim plot``:

- :func:`poincare_dist`, :func:`mobius_add`, :func:`expmap0`, :func:`logmap0`: the ball's
  geometry in numpy;
- :func:`hierarchy_spread` and :func:`select_ball`: which ball of a product to draw (the
  one where the hierarchy is spread most: the largest mean hyperbolic distance between a
  parent and its child; without a hierarchy, between two labels);
- :func:`project_to_disk`: a ball of any dimension into the 2-D disk (log map at 0, principal
  axes of the tangent vectors, exp map at 0); :func:`pca_plane` for Euclidean label vectors;
- :func:`geodesic_arc`: points along the geodesic between two points of the disk (an arc of a
  circle orthogonal to the boundary, or a diameter);
- :func:`nearest_labels`: each word's nearest label in the model's own distance;
- :func:`thin_names`: which points to name so that no two names pile up;
  :func:`zoom_window`: the view around points that the whole disk would show as a pile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Points are kept at most this far from the origin (the boundary is at infinity).
MAX_RADIUS = 1.0 - 1e-6
_EPS = 1e-12


def _norm(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=-1, keepdims=True)


def clip_to_ball(x: np.ndarray, max_radius: float = MAX_RADIUS) -> np.ndarray:
    """``x`` with every point of norm above ``max_radius`` scaled back onto that radius."""
    x = np.asarray(x, dtype=np.float64)
    n = _norm(x)
    return np.where(n > max_radius, x * (max_radius / np.maximum(n, _EPS)), x)


def mobius_add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Möbius addition ``x ⊕ y`` in the unit ball (broadcast over leading axes)."""
    xy = np.sum(x * y, axis=-1, keepdims=True)
    x2 = np.sum(x * x, axis=-1, keepdims=True)
    y2 = np.sum(y * y, axis=-1, keepdims=True)
    num = (1 + 2 * xy + y2) * x + (1 - x2) * y
    return num / np.maximum(1 + 2 * xy + x2 * y2, _EPS)


def expmap0(v: np.ndarray) -> np.ndarray:
    """The exponential map at the origin: ``tanh(|v|) v / |v|``."""
    n = np.maximum(_norm(v), _EPS)
    return clip_to_ball(np.tanh(n) * v / n)


def logmap0(x: np.ndarray) -> np.ndarray:
    """The logarithmic map at the origin: ``artanh(|x|) x / |x|``."""
    x = clip_to_ball(x)
    n = np.maximum(_norm(x), _EPS)
    return np.arctanh(n) * x / n


def poincare_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Eq. (1): ``arcosh(1 + 2|x-y|² / ((1-|x|²)(1-|y|²)))``, over the last axis."""
    x, y = clip_to_ball(x), clip_to_ball(y)
    d2 = np.sum((x - y) ** 2, axis=-1)
    den = (1 - np.sum(x * x, axis=-1)) * (1 - np.sum(y * y, axis=-1))
    return np.arccosh(1 + 2 * d2 / np.maximum(den, _EPS))


# ------------------------------------------------------------------------ the hierarchy
def hierarchy_arrays(
    labels: Sequence[str], hierarchy=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(edges (E, 2) parent/child label indices, depth (C,), top_level (C,) bool)`` of the
    model's ``labels`` under ``hierarchy`` (a :class:`~hyperim.data.Hierarchy` or None: no
    edges, every label top-level). Edges naming a label the model lacks are left out."""
    index = {name: i for i, name in enumerate(labels)}
    if hierarchy is None:
        n = len(labels)
        return np.zeros((0, 2), np.int64), np.zeros(n, np.int64), np.ones(n, bool)
    edges = [
        (index[p], index[c]) for p, c in hierarchy.edges if p in index and c in index and p != c
    ]
    depth = np.array([hierarchy.depth(name) for name in labels], np.int64)
    top = np.array([not hierarchy.parents(name) for name in labels], bool)
    return np.array(edges, np.int64).reshape(-1, 2), depth, top


def hierarchy_spread(points: np.ndarray, edges: np.ndarray, max_labels: int = 400) -> float:
    """How spread the hierarchy is in one ball: the mean hyperbolic distance between a parent
    and its child over ``edges`` (E, 2) of ``points`` (C, d). Edges are what the picture
    draws: a ball where they are all short shows the labels in a pile, one where they are
    long shows each subtree apart. Without edges: the mean hyperbolic distance between two
    labels (of at most ``max_labels``, evenly spaced in the table), how far apart the ball
    puts them at all."""
    points = np.asarray(points, dtype=np.float64)
    if len(edges):
        return float(poincare_dist(points[edges[:, 0]], points[edges[:, 1]]).mean())
    if len(points) < 2:
        return 0.0
    sample = points[np.linspace(0, len(points) - 1, min(len(points), max_labels)).astype(int)]
    d = poincare_dist(sample[:, None], sample[None, :])
    return float(d.sum() / (len(sample) * (len(sample) - 1)))


def select_ball(points: np.ndarray, edges: np.ndarray) -> int:
    """The ball of ``points`` (C, n_balls, d) with the largest :func:`hierarchy_spread`
    (the first of equals)."""
    points = np.asarray(points, dtype=np.float64)
    spreads = [hierarchy_spread(points[:, b], edges) for b in range(points.shape[1])]
    return int(np.argmax(spreads))


# ------------------------------------------------------------------------ projections
def project_to_disk(points: np.ndarray, basis: np.ndarray | None = None) -> np.ndarray:
    """Points ``(N, d)`` of a Poincaré ball into the 2-D disk.

    ``d == 2``: unchanged (clipped inside). ``d == 1``: on the horizontal diameter.
    ``d > 2``: the log map at the origin, then the tangent vectors' two principal axes
    through the origin (``basis`` (d, 2), default :func:`tangent_basis` of ``points``), then
    the exp map at the origin. Distances from the origin shrink or stay (an orthogonal
    projection of the tangent vectors), so every point stays inside the disk, and points on
    one geodesic through the origin stay on one diameter.
    """
    points = clip_to_ball(np.asarray(points, dtype=np.float64))
    d = points.shape[-1]
    if d == 2:
        return points
    if d == 1:
        return np.concatenate([points, np.zeros_like(points)], axis=-1)
    if basis is None:
        basis = tangent_basis(points)
    return expmap0(logmap0(points) @ basis)


def tangent_basis(points: np.ndarray) -> np.ndarray:
    """``(d, 2)``: the two leading right singular vectors of the tangent vectors
    ``logmap0(points)`` (uncentred, so the origin stays the disk's centre)."""
    v = logmap0(np.asarray(points, dtype=np.float64))
    _, _, vt = np.linalg.svd(v, full_matrices=False)
    basis = vt[:2].T
    if basis.shape[1] < 2:  # a single point: any second axis
        basis = np.concatenate([basis, np.zeros_like(basis)], axis=1)
    return basis


def pca_plane(vectors: np.ndarray, extra: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Euclidean label vectors ``(C, k)`` into the plane: centred PCA (the two axes of
    largest variance). Returns ``(xy (C, 2), explained (2,) share of variance)``, and the
    projection of ``extra`` (N, k) (encoded words) on the same axes when given."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.shape[1] == 1:
        vectors = np.concatenate([vectors, np.zeros_like(vectors)], axis=1)
        extra = None if extra is None else np.concatenate([extra, np.zeros_like(extra)], axis=1)
    mean = vectors.mean(axis=0)
    _, s, vt = np.linalg.svd(vectors - mean, full_matrices=False)
    axes = vt[:2].T
    total = float((s**2).sum()) or 1.0
    explained = (s[:2] ** 2) / total
    xy = (vectors - mean) @ axes
    if extra is None:
        return xy, explained
    return xy, explained, (np.asarray(extra, dtype=np.float64) - mean) @ axes


# ------------------------------------------------------------------------ geodesics
def geodesic_arc(p: np.ndarray, q: np.ndarray, n: int = 32) -> np.ndarray:
    """``(n, 2)`` points along the geodesic of the Poincaré disk from ``p`` to ``q``, evenly
    spaced in hyperbolic length: ``p ⊕ t ⊗ (−p ⊕ q)`` for ``t`` in [0, 1]. They lie on a
    circle orthogonal to the boundary circle, or on a diameter when ``p``, ``q`` and the
    origin are collinear."""
    p, q = clip_to_ball(np.asarray(p, np.float64)), clip_to_ball(np.asarray(q, np.float64))
    v = mobius_add(-p, q)
    r = float(np.linalg.norm(v))
    t = np.linspace(0.0, 1.0, max(n, 2))[:, None]
    if r < _EPS:
        return np.repeat(p[None], len(t), axis=0)
    step = np.tanh(t * np.arctanh(min(r, MAX_RADIUS))) * (v / r)
    arc = mobius_add(np.broadcast_to(p, step.shape), step)
    arc[0], arc[-1] = p, q
    return arc


def geodesic_circle(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``(centre, radius)`` of the circle carrying the geodesic through ``p`` and ``q``
    (orthogonal to the unit circle: ``|centre|² = radius² + 1``), or None for a diameter.
    Lets an SVG draw the geodesic as one arc."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    a = 2 * np.stack([p, q])
    if abs(np.linalg.det(a)) < 1e-9:
        return None
    centre = np.linalg.solve(a, np.array([1 + p @ p, 1 + q @ q]))
    return centre, float(np.sqrt(max(centre @ centre - 1.0, 0.0)))


# ------------------------------------------------------------------------ documents
def nearest_labels(
    words: np.ndarray,
    labels: np.ndarray,
    geometry: str = "poincare",
    aggregate: str = "riemannian",
) -> np.ndarray:
    """``(T,)`` the index of each word's nearest label.

    ``geometry="poincare"``: ``words`` (T, n, d) and ``labels`` (C, n, d) in a product of
    balls, Eq. (1) per ball combined as the model does (``"riemannian"``: the root of the sum
    of squares; ``"sum"``). ``"euclidean"``: ``(T, k)`` and ``(C, k)``, the L2 distance."""
    words, labels = np.asarray(words, np.float64), np.asarray(labels, np.float64)
    if geometry == "euclidean":
        d = np.linalg.norm(words[:, None, :] - labels[None, :, :], axis=-1)
    elif geometry == "poincare":
        per_ball = poincare_dist(words[:, None], labels[None, :])  # (T, C, n)
        if aggregate == "sum":
            d = per_ball.sum(axis=-1)
        elif aggregate == "riemannian":
            d = np.sqrt((per_ball**2).sum(axis=-1))
        else:
            raise ValueError(f"unknown aggregate {aggregate!r}")
    else:
        raise ValueError(f"unknown geometry {geometry!r}")
    return d.argmin(axis=1)


def zoom_window(
    points: np.ndarray, max_radius: float = 0.6, margin: float = 0.3, min_half: float = 0.05
) -> tuple[np.ndarray, float] | None:
    """``(centre (2,), half side)`` of a square view around ``points`` (N, 2) when they all
    lie within ``max_radius`` of the origin (a picture of the whole disk would show them as
    one pile), with ``margin`` of the side on each side; None when the whole disk is the
    better view."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(points) or np.linalg.norm(points, axis=1).max() >= max_radius:
        return None
    lo, hi = points.min(axis=0), points.max(axis=0)
    half = max(float((hi - lo).max()) / 2 * (1 + 2 * margin), min_half)
    return (lo + hi) / 2, half


def thin_names(xy: np.ndarray, priority: Sequence[float], min_distance: float) -> list[int]:
    """Indices of the points to name: greedily in order of ``priority`` (highest first, the
    earlier of equals), each kept only when at least ``min_distance`` from every name kept
    before (in the units of ``xy``), so that no two names pile up. For a drawing that
    cannot measure its text (an SVG written without a browser); ``hyperim plot`` measures
    each name's box instead."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    order = sorted(range(len(xy)), key=lambda i: (-priority[i], i))
    kept: list[int] = []
    for i in order:
        if not kept or np.min(np.linalg.norm(xy[kept] - xy[i], axis=1)) >= min_distance:
            kept.append(i)
    return kept
