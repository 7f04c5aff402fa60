"""Hyperbolic math: pure functions on tensors (Möbius operations, maps, distances)."""

from hyperim.geometry.manifold import PoincareBall
from hyperim.geometry.numerics import MAX_NORM, MIN_NORM
from hyperim.geometry.pairwise import pairwise_dist, pairwise_dist_naive
from hyperim.geometry.poincare import (
    dist,
    dist_acosh,
    expmap,
    expmap0,
    lambda_x,
    logmap,
    logmap0,
    mobius_add,
    mobius_fn,
    mobius_matvec,
    mobius_pointwise,
    project,
)
from hyperim.geometry.product import combine_ball_distances, product_dist, product_matvec

__all__ = [
    "MAX_NORM",
    "MIN_NORM",
    "PoincareBall",
    "combine_ball_distances",
    "dist",
    "dist_acosh",
    "expmap",
    "expmap0",
    "lambda_x",
    "logmap",
    "logmap0",
    "mobius_add",
    "mobius_fn",
    "mobius_matvec",
    "mobius_pointwise",
    "pairwise_dist",
    "pairwise_dist_naive",
    "product_dist",
    "product_matvec",
    "project",
]
