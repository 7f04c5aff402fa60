"""Pre-trained Euclidean word vectors (GloVe 6B) as points of a product of Poincaré balls.

A word's ``k``-dimensional vector ``g`` (``k = 50`` for GloVe 6B 50-d) becomes a tangent vector
at the origin of the product ``(B^d)^n`` and then a point, ball by ball::

    v = s · A (g − ḡ)        A ∈ R^{nd × k}, orthonormal columns (nd ≥ k) or rows (nd < k)
    θ_b = exp_0(v_b) = tanh(‖v_b‖) v_b / ‖v_b‖       for each ball b = 1..n

``ḡ`` is the mean vector of the vocabulary's words, so the words spread around the origin. For
``nd ≥ k``, ``A`` is a seeded random orthonormal lift: it keeps every inner product and
distance of the centred vectors and spreads each of their directions over all balls (the
leading principal directions, mapped to whole balls, would leave the other balls empty at the
start). For ``nd < k`` it is the top ``nd`` principal directions. ``s`` sets the root mean square
of the per-ball tangent norms ``‖v_b‖`` to ``radius``; small radii keep words in the ball's
nearly Euclidean middle, where ``exp_0`` changes distances little.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hyperim.geometry.poincare import expmap0


def lift_matrix(k: int, dim: int, centred: np.ndarray, seed: int) -> np.ndarray:
    """``A`` (``dim × k``): a seeded random orthonormal lift when ``dim >= k``, else the top
    ``dim`` principal directions of ``centred`` (rows: vectors)."""
    if dim >= k:
        gen = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(dim, k, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))  # a unique Q: Haar-distributed
        return q.numpy()
    _, _, vt = np.linalg.svd(centred - centred.mean(0), full_matrices=True)  # k rows
    return vt[:dim]


def ball_points(
    vectors: np.ndarray, found: np.ndarray, n_balls: int, ball_dim: int, radius: float, seed: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """``(len(vectors), n_balls, ball_dim)`` float64 points for the rows of ``vectors`` (rows
    not ``found`` are returned at the origin; the caller keeps its own start for them)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    known = vectors[found]
    mean = known.mean(0) if len(known) else np.zeros(vectors.shape[1])
    a = lift_matrix(vectors.shape[1], n_balls * ball_dim, known - mean, seed)
    tangent = ((vectors - mean) @ a.T).reshape(len(vectors), n_balls, ball_dim)
    tangent[~found] = 0.0
    per_ball = np.linalg.norm(tangent[found], axis=-1)
    rms = float(np.sqrt((per_ball**2).mean())) if per_ball.size else 0.0
    scale = radius / rms if rms > 0 else 0.0
    points = expmap0(torch.from_numpy(tangent * scale))
    norms = points[torch.from_numpy(found)].norm(dim=-1)
    stats = {
        "radius": radius,
        "scale": scale,
        "mean_ball_norm": float(norms.mean()) if norms.numel() else math.nan,
        "max_ball_norm": float(norms.max()) if norms.numel() else math.nan,
    }
    return points, stats
