r"""Poincaré GloVe (Tifrea, Bécigneul & Ganea 2019): the word embeddings of paper Eq. (3).

Target vectors :math:`\theta^e_i` and context vectors :math:`\tilde\theta^e_j`, each a point of
a product of Poincaré balls of shape ``(n_balls, ball_dim)`` (the model's 75×2D), and Euclidean
biases :math:`b_i, \tilde b_j` minimise, over the nonzero co-occurrence counts :math:`X_{ij}`,

.. math::
    L = \sum_{X_{ij} > 0} f(X_{ij})\left(-h\big(d(\theta^e_i, \tilde\theta^e_j)\big)
        + b_i + \tilde b_j - \log X_{ij}\right)^2,
    \qquad f(x) = \min\!\left(1, (x / x_{\max})^{\alpha}\right),\quad h(x) = \cosh^2(x),

with :math:`x_{\max} = 100`, :math:`\alpha = 3/4`, and :math:`d` the per-ball distance Eq. (1)
combined over the balls by :func:`hyperim.geometry.product.combine_ball_distances` (``"sum"``
or ``"riemannian"``).

Numerics
--------
* The per-ball distance is computed as :math:`\operatorname{arccosh}(1 + u) =
  \log\!\big(1 + u + \sqrt{u (u + 2)}\big)` with
  :math:`u = 2\lVert x - y\rVert^2 / ((1 - \lVert x\rVert^2)(1 - \lVert y\rVert^2))`, which equals
  :func:`hyperim.geometry.poincare.dist` (to 2e-7 in float32, 3e-16 in float64, tested), keeps
  full relative precision near 0 (``log1p``), and is about 2x faster forward + backward than the
  Möbius form (measured on 1 CPU thread: 22 s vs 51 s per 4.2M entries at 75×2D, float32).
  ``u`` is clamped at ``1e-30`` so the gradient at ``x = y`` is 0, not NaN.
* :math:`\cosh^2` of a product distance overflows quickly (float32 ``cosh`` overflows at 89, and
  the squared residual and the adaptive optimisers' squared gradients much sooner), so ``h`` is
  :math:`\cosh^2` up to ``max_dist`` (default 8) and continues linearly beyond it with slope
  :math:`h'(\text{max\_dist}) = \sinh(2\,\text{max\_dist})`: finite in float32 and float64, and
  the gradient still points back towards smaller distances. The clamp never binds at a
  sensible fit: :math:`h(8) \approx 2.2\times 10^6`, far above any :math:`b_i + \tilde b_j - \log
  X_{ij}` (at most tens).
* Points stay inside the ball of radius ``1 - 1e-5`` (the paper's projection): every update is
  retracted with :class:`hyperim.geometry.manifold.PoincareBall`.

Optimisation
------------
Minibatches of nonzero entries, reshuffled every epoch with a seeded generator; no Python loop
runs per entry. Each step only touches the rows that occur in the batch:
:class:`RowwiseRiemannianOptimizer` is a lazy, row-wise Riemannian Adagrad (what Poincaré
GloVe used; Bécigneul & Ganea 2019, one accumulator per ball) or Riemannian Adam (geoopt's
``SparseRiemannianAdam`` step; equal to ``geoopt.optim.RiemannianAdam`` on
:class:`~hyperim.geometry.manifold.PoincareBall`, tested), so a step costs in proportion to the
batch, not the vocabulary. Training works on coordinate-major copies of the tables,
``(ball_dim, V, n_balls)``, with the gradient of Eq. (3) written out by hand
(:func:`glove_terms`, tested against autograd): elementwise math on the strided last axis of
size 2 is ~10x slower on CPU. Together these took an epoch on debtags from ~80 s (autograd,
Möbius distance, last-axis layout) to ~25 s on one shared CPU thread.

Defaults (measured)
-------------------
On the debtags training split (29,082 words, 4.17M nonzeros, 75×2D, float32, 1 CPU thread,
4 epochs; Eq. 3 per nonzero in the 4th epoch): Riemannian Adagrad lr 0.2 → 0.0267; lr 0.1 →
0.0318; lr 0.3 → 0.0596 (its first steps overshoot: 7.2 in epoch 1); lr 0.5 diverges (58).
Riemannian Adam lr 0.005 → 0.0409; lr 0.02 diverges (5.3 by epoch 4: a lazy Adam's first
step on a rarely seen row is ~3× lr). Adagrad at lr 0.2 is the default, and also gives the
sensible neighbours (*game*: console, strategy, puzzle, arcade; *font*: fonts, truetype,
opentype). ``init_radius`` 0.1 beats 1e-3 (0.0267 vs 0.0324, and better neighbours):
:math:`h'(0) = 0`, so points started at the origin barely feel the distance term. One epoch
takes about 25 s (4.17M nonzeros, batch 8192) on a shared CPU thread.

Final vectors
-------------
``output="midpoint"`` (default) returns, per ball, the geodesic midpoint of the target and
context vectors (for two points this is the gyromidpoint / Einstein midpoint that Poincaré GloVe
uses in place of GloVe's :math:`w + \tilde w`); ``"target"`` and ``"context"`` return one table.
On the two-topic toy corpus of the tests, same-topic over cross-topic distance is 0.29 with the
midpoint and 0.46 with the target vectors alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import geoopt
import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from hyperim.errors import check_all
from hyperim.geometry.manifold import PoincareBall
from hyperim.geometry.numerics import MAX_NORM, MIN_NORM, artanh, safe_norm
from hyperim.geometry.poincare import mobius_add, project
from hyperim.geometry.product import combine_ball_distances

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class GloveConfig:
    """Options of :func:`train_glove`; defaults were measured on debtags (``benchmarks/glove_debtags.py``).

    Attributes
    ----------
    n_balls, ball_dim : int
        Shape of a point: the model's 75×2D.
    epochs : int
        Passes over the nonzero entries.
    lr : float
        Learning rate (the same for points and biases).
    batch_size : int
        Nonzero entries per step.
    window : int
        Context window the counts were built with (recorded; see
        :func:`hyperim.pretrain.cooccurrence.cooccurrence_matrix`).
    x_max, alpha : float
        The weight :math:`f(x) = \\min(1, (x / x_{\\max})^\\alpha)`.
    aggregate : str
        How per-ball distances combine: ``"riemannian"`` (the model's default) or ``"sum"``.
    optimizer : str
        ``"adagrad"`` (Riemannian Adagrad) or ``"adam"`` (Riemannian Adam).
    seed : int
        Seeds the initialisation and the shuffling.
    dtype : str
        ``"float32"`` or ``"float64"``.
    init_radius : float
        Coordinates start uniform in ``[-init_radius, init_radius]``.
    max_dist : float
        ``h`` is :math:`\\cosh^2` up to here and linear beyond (overflow guard, see module doc).
    output : str
        ``"midpoint"``, ``"target"`` or ``"context"``: what :func:`train_glove` returns.
    init_bias : bool
        Start every bias at :math:`(1 + \\bar{\\ell})/2`, :math:`\\bar\\ell` the f-weighted mean
        of :math:`\\log X_{ij}`: the best constant fit at the initial near-zero distances
        (otherwise biases start at 0).
    """

    n_balls: int = 75
    ball_dim: int = 2
    epochs: int = 8
    lr: float = 0.2
    batch_size: int = 8192
    window: int = 10
    x_max: float = 100.0
    alpha: float = 0.75
    aggregate: str = "riemannian"
    optimizer: str = "adagrad"
    seed: int = 0
    dtype: str = "float32"
    init_radius: float = 0.1
    max_dist: float = 8.0
    output: str = "midpoint"
    init_bias: bool = True

    def validate(self) -> GloveConfig:
        checks = [
            (self.n_balls >= 1 and self.ball_dim >= 1, "n_balls and ball_dim must be >= 1"),
            (self.epochs >= 0, "epochs must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.x_max > 0 and self.alpha > 0, "x_max and alpha must be > 0"),
            (self.aggregate in ("sum", "riemannian"), "aggregate must be sum or riemannian"),
            (self.optimizer in ("adagrad", "adam"), "optimizer must be adagrad or adam"),
            (self.dtype in _DTYPES, "dtype must be float32 or float64"),
            (0 < self.init_radius < 0.5, "init_radius must be in (0, 0.5)"),
            (self.max_dist > 0, "max_dist must be > 0"),
            (self.output in ("midpoint", "target", "context"), "bad output"),
        ]
        check_all(checks, "invalid GloVe option: ", ValueError)
        return self


@dataclass
class GloveStats:
    """What :func:`fit_glove` measured.

    ``loss[e]`` is Eq. (3) summed over every nonzero entry during epoch ``e`` (each term taken at
    the parameters of its step, as GloVe reports it), ``mean_loss[e]`` the same divided by the
    number of nonzeros, ``seconds[e]`` the epoch's wall time.
    """

    nnz: int
    loss: list[float] = field(default_factory=list)
    mean_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Math


def ball_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Per-ball geodesic distance (Eq. 1) over the last axis, as :math:`\operatorname{arccosh}(1+u)`.

    Equal to :func:`hyperim.geometry.poincare.dist`; see the module notes for why this form.
    """
    x2 = x.pow(2).sum(-1)
    y2 = y.pow(2).sum(-1)
    u = 2 * (x - y).pow(2).sum(-1) / ((1 - x2) * (1 - y2))
    u = u.clamp_min(1e-30)
    return torch.log1p(u + torch.sqrt(u * (u + 2)))


def product_distance(x: torch.Tensor, y: torch.Tensor, aggregate: str) -> torch.Tensor:
    """Distance between points of shape ``(..., n_balls, ball_dim)``."""
    return combine_ball_distances(ball_distance(x, y), aggregate)  # type: ignore[arg-type]


def h_cosh2(d: torch.Tensor, max_dist: float = 8.0) -> torch.Tensor:
    r""":math:`h(d) = \cosh^2 d` up to ``max_dist``, continued linearly (overflow guard)."""
    dc = d.clamp_max(max_dist)
    return torch.cosh(dc).pow(2) + math.sinh(2 * max_dist) * (d - dc)


def glove_weight(x: torch.Tensor, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    r""":math:`f(x) = \min(1, (x / x_{\max})^\alpha)`."""
    return (x / x_max).pow(alpha).clamp_max(1.0)


def geodesic_midpoint(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Per-ball midpoint of the geodesic from ``x`` to ``y``.

    .. math:: m = x \oplus \left(\tanh\!\big(\tfrac12 \operatorname{artanh}\lVert u\rVert\big)
              \frac{u}{\lVert u\rVert}\right), \qquad u = -x \oplus y

    so :math:`d(x, m) = d(m, y) = d(x, y)/2`; for two points it is their gyromidpoint.
    """
    u = mobius_add(-x, y)
    n = safe_norm(u)
    return project(mobius_add(x, torch.tanh(0.5 * artanh(n)) * (u / n)))


@torch.no_grad()
def nearest_neighbours(
    points: torch.Tensor,
    queries: torch.Tensor | Sequence[int],
    k: int = 10,
    aggregate: str = "riemannian",
    candidates: torch.Tensor | Sequence[int] | None = None,
    chunk: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``points`` (by product distance) to each query row.

    ``candidates`` restricts the search to those row ids (default: all); the query itself is
    excluded. Returns ``(ids, distances)``, each ``(len(queries), k)``.
    """
    q = torch.as_tensor(queries, dtype=torch.long)
    cand = (
        torch.arange(points.shape[0])
        if candidates is None
        else torch.as_tensor(candidates, dtype=torch.long)
    )
    all_d = []
    for s in range(0, len(cand), chunk):
        c = cand[s : s + chunk]
        all_d.append(product_distance(points[q][:, None], points[c][None], aggregate))
    d = torch.cat(all_d, dim=1)
    d[q[:, None] == cand[None]] = math.inf
    dist, pos = d.topk(min(k, d.shape[1]), dim=1, largest=False)
    return cand[pos], dist


# ---------------------------------------------------------------------------------------------
# Coordinate-major layout and the optimiser
#
# Elementwise torch ops on the strided last axis of size 2 run ~10x slower than on contiguous
# tensors (1 CPU thread: 0.77 ms vs 0.06 ms for 8192x75 elements), so training works on copies
# of the tables laid out as (ball_dim, V, n_balls): coordinate ``a`` of every point is one
# contiguous (V, n_balls) slab and every per-ball sum is a short loop over ``a``.


def to_coordinate_major(points: torch.Tensor) -> torch.Tensor:
    """``(V, n_balls, ball_dim) -> (ball_dim, V, n_balls)``, contiguous."""
    return points.permute(2, 0, 1).contiguous()


def from_coordinate_major(points: torch.Tensor) -> torch.Tensor:
    """``(ball_dim, V, n_balls) -> (V, n_balls, ball_dim)``, contiguous."""
    return points.permute(1, 2, 0).contiguous()


def _cm_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-ball inner product of coordinate-major points: ``(k, ...) x (k, ...) -> (...)``."""
    out = x[0] * y[0]
    for a in range(1, x.shape[0]):
        out = out + x[a] * y[a]
    return out


def cm_project(x: torch.Tensor) -> torch.Tensor:
    """:func:`hyperim.geometry.poincare.project` for coordinate-major points."""
    n = _cm_dot(x, x).sqrt().clamp_min(MIN_NORM)
    return x * torch.where(n > MAX_NORM, MAX_NORM / n, torch.ones_like(n))


def cm_transport(x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Parallel transport of ``v`` from ``x`` to ``y`` (coordinate-major), as geoopt's:

    .. math:: P_{x \to y}(v) = \frac{\lambda_x}{\lambda_y}\operatorname{gyr}[y, -x]\,v
    """
    u, w = y, -x  # gyr[u, w] v with Ungar's closed form at curvature -1
    u2, w2, uw = _cm_dot(u, u), _cm_dot(w, w), _cm_dot(u, w)
    uv, wv = _cm_dot(u, v), _cm_dot(w, v)
    a = -uv * w2 + wv + 2 * uw * wv
    b = -wv * u2 - uv
    d = (1 + 2 * uw + u2 * w2).clamp_min(1e-15)
    ratio = (1 - u2).clamp_min(1e-15) / (1 - _cm_dot(x, x)).clamp_min(1e-15)  # lambda_x/lambda_y
    return (v + 2 * (a * u + b * w) / d) * ratio


class RowwiseRiemannianOptimizer:
    r"""Lazy row-wise Riemannian Adagrad or Adam for embedding tables.

    Each :meth:`step` receives, per table, the unique rows touched and their Euclidean
    gradients; only those rows and their optimiser state change, so a step costs in proportion
    to the batch, not the vocabulary.

    A *ball* table is coordinate-major, ``(ball_dim, V, n_balls)``, each point on the unit
    Poincaré ball; any other table is Euclidean with rows on axis 0. For a ball point :math:`x`
    with :math:`\alpha = 1 - \lVert x\rVert^2` the Riemannian gradient is
    :math:`\tilde g = (\alpha^2/4)\,g` and its squared norm :math:`\lVert\tilde g\rVert_x^2 =
    (\alpha^2/4)\lVert g\rVert^2` (geoopt's ``egrad2rgrad`` and ``component_inner``: one
    adaptive accumulator per ball, as Bécigneul & Ganea 2019 prescribe for products).

    * ``"adagrad"``: :math:`G \mathrel{+}= \lVert\tilde g\rVert_x^2`,
      :math:`x \leftarrow \pi(x - \eta\,\tilde g / (\sqrt G + \epsilon))`.
    * ``"adam"``: geoopt's (Sparse)RiemannianAdam: moments of :math:`\tilde g` and
      :math:`\lVert\tilde g\rVert_x^2`, bias correction with the global step count,
      retraction :math:`\pi(x + u)`, first moment parallel-transported to the new point.

    :math:`\pi` is the projection onto radius ``1 - 1e-5``, i.e. the retraction of
    :class:`hyperim.geometry.manifold.PoincareBall`; the Adam step equals geoopt's
    ``RiemannianAdam`` on that manifold (tested).
    """

    def __init__(
        self,
        tables: Sequence[torch.Tensor],
        ball: Sequence[bool],
        method: str = "adagrad",
        lr: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if method not in ("adagrad", "adam"):
            raise ValueError(f"unknown method {method!r}; expected 'adagrad' or 'adam'")
        self.tables, self.ball = list(tables), list(ball)
        self.method, self.lr, self.betas, self.eps = method, lr, betas, eps
        self.steps = 0
        self.sq = [
            t[0].new_zeros(t[0].shape) if b else torch.zeros_like(t)
            for t, b in zip(self.tables, self.ball, strict=True)
        ]
        self.avg = [torch.zeros_like(t) if method == "adam" else None for t in self.tables]

    @torch.no_grad()
    def step(self, updates: Sequence[tuple[torch.Tensor, torch.Tensor] | None]) -> None:
        """Apply one step; ``updates[k]`` is ``(rows, grad)`` for table ``k``, or None.

        ``rows`` must be unique; ``grad`` has the table's layout with ``len(rows)`` rows.
        """
        self.steps += 1
        b1, b2 = self.betas
        for k, upd in enumerate(updates):
            if upd is None:
                continue
            rows, grad = upd
            table, ball = self.tables[k], self.ball[k]
            x = table.index_select(1 if ball else 0, rows)
            if ball:
                scale = (1 - _cm_dot(x, x)).pow(2) / 4
                rgrad = grad * scale
                sqn = scale * _cm_dot(grad, grad)
            else:
                rgrad, sqn = grad, grad * grad
            if self.method == "adagrad":
                g2 = self.sq[k].index_select(0, rows) + sqn
                self.sq[k][rows] = g2
                new = x - self.lr * rgrad / (g2.sqrt() + self.eps)
                new = cm_project(new) if ball else new
            else:
                avg = self.avg[k]
                assert avg is not None
                m = avg.index_select(1 if ball else 0, rows).mul_(b1).add_(rgrad, alpha=1 - b1)
                v = self.sq[k].index_select(0, rows).mul_(b2).add_(sqn, alpha=1 - b2)
                self.sq[k][rows] = v
                denom = (v / (1 - b2**self.steps)).sqrt_().add_(self.eps)
                new = x - self.lr * (m / (1 - b1**self.steps)) / denom
                if ball:
                    new = cm_project(new)
                    avg[:, rows] = cm_transport(x, new, m)
                else:
                    avg[rows] = m
            if ball:
                table[:, rows] = new
            else:
                table[rows] = new


# ---------------------------------------------------------------------------------------------
# Model and training


class PoincareGlove(nn.Module):
    """Target and context points (``ManifoldParameter`` on the paper's ball) and biases."""

    def __init__(
        self,
        vocab_size: int,
        n_balls: int = 75,
        ball_dim: int = 2,
        init_radius: float = 0.1,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        ball = PoincareBall()

        def points() -> geoopt.ManifoldParameter:
            t = torch.rand(vocab_size, n_balls, ball_dim, generator=generator, dtype=dtype)
            return geoopt.ManifoldParameter(project((2 * t - 1) * init_radius), manifold=ball)

        self.target = points()
        self.context = points()
        self.target_bias = nn.Parameter(torch.zeros(vocab_size, dtype=dtype))
        self.context_bias = nn.Parameter(torch.zeros(vocab_size, dtype=dtype))

    def entry_loss(
        self,
        i: torch.Tensor,
        j: torch.Tensor,
        log_x: torch.Tensor,
        weight: torch.Tensor,
        aggregate: str = "riemannian",
        max_dist: float = 8.0,
    ) -> torch.Tensor:
        """The terms of Eq. (3) for entries ``(i, j)`` with ``log X_ij`` and ``f(X_ij)`` (autograd)."""
        d = product_distance(self.target[i], self.context[j], aggregate)
        r = -h_cosh2(d, max_dist) + self.target_bias[i] + self.context_bias[j] - log_x
        return weight * r.pow(2)

    @torch.no_grad()
    def word_vectors(self, output: str = "midpoint") -> torch.Tensor:
        """The final embeddings: ``"midpoint"`` of target and context, ``"target"`` or ``"context"``."""
        if output == "target":
            return self.target.data.clone()
        if output == "context":
            return self.context.data.clone()
        if output == "midpoint":
            return geodesic_midpoint(self.target.data, self.context.data)
        raise ValueError(f"unknown output {output!r}")


def glove_terms(
    w: torch.Tensor,
    c: torch.Tensor,
    bw: torch.Tensor,
    bc: torch.Tensor,
    log_x: torch.Tensor,
    weight: torch.Tensor,
    aggregate: str = "riemannian",
    max_dist: float = 8.0,
    grads: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    r"""Eq. (3)'s terms and, by hand, their gradients, for coordinate-major points ``(k, B, n)``.

    ``w`` and ``c`` are the target and context points of ``B`` entries (``k = ball_dim``), ``bw``,
    ``bc``, ``log_x`` and ``weight`` (:math:`f(X_{ij})`) have shape ``(B,)``. Same values as
    :meth:`PoincareGlove.entry_loss` (tested against autograd). With
    :math:`\alpha = 1 - \lVert w\rVert^2`, :math:`\beta = 1 - \lVert c\rVert^2`,
    :math:`\delta = w - c`, :math:`s = \lVert\delta\rVert^2`, :math:`u = 2s / (\alpha\beta)` per
    ball: :math:`\partial u / \partial w = \tfrac{4}{\alpha\beta}(\delta + \tfrac{s}{\alpha} w)`,
    :math:`\partial u / \partial c = \tfrac{4}{\alpha\beta}(\tfrac{s}{\beta} c - \delta)`,
    :math:`\partial d / \partial u = 1 / \sqrt{u (u + 2)}`.

    Returns
    -------
    terms : Tensor (B,)
    grad_w, grad_c : Tensor (k, B, n) or None
    grad_b : Tensor (B,) or None
        The gradient for either bias. The three gradients are None when ``grads`` is False.
    """
    delta = w - c
    s = _cm_dot(delta, delta)
    alpha = 1 - _cm_dot(w, w)
    beta = 1 - _cm_dot(c, c)
    inv = 1 / (alpha * beta)
    u = (2 * s * inv).clamp_min_(1e-30)
    q = torch.sqrt(u * (u + 2))
    dk = torch.log1p(u + q)
    if aggregate == "riemannian":
        dd = dk.pow(2).sum(-1).clamp_min(1e-30).sqrt()
    elif aggregate == "sum":
        dd = dk.sum(-1)
    else:
        raise ValueError(f"unknown aggregate {aggregate!r}; expected 'sum' or 'riemannian'")
    dc = dd.clamp_max(max_dist)
    h = torch.cosh(dc).pow(2) + math.sinh(2 * max_dist) * (dd - dc)
    r = -h + bw + bc - log_x
    terms = weight * r * r
    if not grads:
        return terms, None, None, None
    grad_b = 2 * weight * r
    g_d = -grad_b * torch.sinh(2 * dc)
    g_dk = (g_d / dd)[:, None] * dk if aggregate == "riemannian" else g_d[:, None]
    big_a = 4 * inv * g_dk / q
    sw = s / alpha
    sc = s / beta
    grad_w = torch.empty_like(w)
    grad_c = torch.empty_like(c)
    for a in range(w.shape[0]):
        grad_w[a] = big_a * (delta[a] + sw * w[a])
        grad_c[a] = big_a * (sc * c[a] - delta[a])
    return terms, grad_w, grad_c, grad_b


@dataclass
class _Entries:
    i: torch.Tensor
    j: torch.Tensor
    log_x: torch.Tensor
    weight: torch.Tensor


def _entries(cooc: sp.spmatrix, config: GloveConfig, dtype: torch.dtype) -> _Entries:
    coo = sp.coo_matrix(cooc)
    keep = coo.data > 0
    x = np.asarray(coo.data[keep], dtype=np.float64)
    f = np.minimum(1.0, (x / config.x_max) ** config.alpha)
    return _Entries(
        torch.from_numpy(coo.row[keep].astype(np.int64)),
        torch.from_numpy(coo.col[keep].astype(np.int64)),
        torch.from_numpy(np.log(x)).to(dtype),
        torch.from_numpy(f).to(dtype),
    )


def _check_shape(model: PoincareGlove, cooc: sp.spmatrix) -> None:
    if cooc.shape[0] != cooc.shape[1] or cooc.shape[0] > model.target.shape[0]:
        raise ValueError(
            f"co-occurrence matrix of shape {cooc.shape} does not fit {model.target.shape[0]} words"
        )


@torch.no_grad()
def glove_loss(
    model: PoincareGlove, cooc: sp.spmatrix, config: GloveConfig, batch_size: int = 65536
) -> float:
    """Eq. (3) at the model's current parameters, summed over every nonzero of ``cooc``."""
    _check_shape(model, cooc)
    e = _entries(cooc, config, model.target.dtype)
    wt, ct = to_coordinate_major(model.target.data), to_coordinate_major(model.context.data)
    total = 0.0
    for s in range(0, len(e.i), batch_size):
        i, j = e.i[s : s + batch_size], e.j[s : s + batch_size]
        terms = glove_terms(
            wt[:, i],
            ct[:, j],
            model.target_bias.data[i],
            model.context_bias.data[j],
            e.log_x[s : s + batch_size],
            e.weight[s : s + batch_size],
            config.aggregate,
            config.max_dist,
            grads=False,
        )[0]
        total += float(terms.sum(dtype=torch.float64))
    return total


def fit_glove(
    model: PoincareGlove,
    cooc: sp.spmatrix,
    config: GloveConfig,
    progress: Callable[[int, float], None] | None = None,
) -> GloveStats:
    """Train ``model`` in place on the nonzeros of ``cooc`` (see :func:`train_glove`)."""
    config.validate()
    _check_shape(model, cooc)
    dtype = model.target.dtype
    e = _entries(cooc, config, dtype)
    n = len(e.i)
    stats = GloveStats(nnz=n)
    if n == 0 or config.epochs == 0:
        return stats
    if config.init_bias:
        b = 0.5 * (1.0 + float((e.weight * e.log_x).sum() / e.weight.sum()))
        with torch.no_grad():
            model.target_bias.fill_(b)
            model.context_bias.fill_(b)
    # working copies: coordinate-major points, plain bias vectors
    wt, ct = to_coordinate_major(model.target.data), to_coordinate_major(model.context.data)
    bw, bc = model.target_bias.data.clone(), model.context_bias.data.clone()
    opt = RowwiseRiemannianOptimizer(
        [wt, ct, bw, bc], [True, True, False, False], config.optimizer, config.lr
    )
    gen = torch.Generator().manual_seed(config.seed + 1)
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64)
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, config.batch_size):
            idx = perm[s : s + config.batch_size]
            ui, ii = torch.unique(e.i.index_select(0, idx), return_inverse=True)
            uj, jj = torch.unique(e.j.index_select(0, idx), return_inverse=True)
            w_rows, c_rows = wt.index_select(1, ui), ct.index_select(1, uj)
            terms, gw, gc, gb = glove_terms(
                w_rows.index_select(1, ii),
                c_rows.index_select(1, jj),
                bw.index_select(0, ui).index_select(0, ii),
                bc.index_select(0, uj).index_select(0, jj),
                e.log_x.index_select(0, idx),
                e.weight.index_select(0, idx),
                config.aggregate,
                config.max_dist,
            )
            assert gw is not None and gc is not None and gb is not None
            opt.step(
                [
                    (ui, torch.zeros_like(w_rows).index_add_(1, ii, gw)),
                    (uj, torch.zeros_like(c_rows).index_add_(1, jj, gc)),
                    (ui, bw.new_zeros(len(ui)).index_add_(0, ii, gb)),
                    (uj, bc.new_zeros(len(uj)).index_add_(0, jj, gb)),
                ]
            )
            total += terms.sum(dtype=torch.float64)
        with torch.no_grad():
            model.target.copy_(from_coordinate_major(wt))
            model.context.copy_(from_coordinate_major(ct))
            model.target_bias.copy_(bw)
            model.context_bias.copy_(bc)
        stats.loss.append(float(total))
        stats.mean_loss.append(float(total) / n)
        stats.seconds.append(time.perf_counter() - t0)
        if progress is not None:
            progress(epoch + 1, float(total))
    return stats


def train_glove(
    cooc: sp.spmatrix,
    config: GloveConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[torch.Tensor, GloveStats]:
    """Fit Poincaré GloVe (Eq. 3) to a co-occurrence matrix.

    Parameters
    ----------
    cooc : scipy.sparse matrix
        Square ``V x V`` counts (e.g. from
        :func:`hyperim.pretrain.cooccurrence.cooccurrence_matrix`); row/column ``i`` is word id
        ``i`` of the model's vocabulary. Words without any co-occurrence (``<pad>``, ``<unk>``)
        keep their small random initial point.
    config : GloveConfig
    progress : callable, optional
        Called as ``progress(epoch, loss)`` after each epoch (1-based; Eq. 3 summed over it).

    Returns
    -------
    points : Tensor
        ``(V, n_balls, ball_dim)``, every ball's point of norm at most ``1 - 1e-5``.
    stats : GloveStats
    """
    config = (config or GloveConfig()).validate()
    gen = torch.Generator().manual_seed(config.seed)
    model = PoincareGlove(
        cooc.shape[0],
        config.n_balls,
        config.ball_dim,
        config.init_radius,
        _DTYPES[config.dtype],
        gen,
    )
    stats = fit_glove(model, cooc, config, progress)
    return model.word_vectors(config.output), stats
