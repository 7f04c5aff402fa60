r"""Poincaré embeddings of a label hierarchy (paper Eq. 2; Nickel & Kiela 2017).

Every ``(parent, child)`` pair :math:`(l_p, l_q)` of the training relation :math:`T` contributes

.. math::
    -\log \frac{\exp(-d(\theta_p, \theta_q))}
               {\exp(-d(\theta_p, \theta_q)) + \sum_{q' \in S_p} \exp(-d(\theta_p, \theta_{q'}))}

i.e. the cross entropy of the softmax of negated distances, the true child at index 0, against
``K`` sampled negatives :math:`S_p \subset N(l_p) = \{l_{q'} : (l_p, l_{q'}) \notin T\} \cup
\{l_p\}`. Negatives are drawn from all nodes (uniformly by default, or in proportion to a power
of each node's pair count, ``sampling_power``) and a draw that is a true descendant of ``l_p``
(in the *transitive closure*, whatever ``closure`` trains on) is redrawn; after a few rounds a
still-rejected draw becomes ``l_p`` itself, which the definition of :math:`N(l_p)` allows (and
which a draw may also pick). A parent with no non-descendant but itself (a single root of
everything) therefore only sees ``l_p`` as negative, and its pairs' loss cannot go below
:math:`\log(1 + K)`.

Only the corrupted side differs between conventions: here the child is replaced. Nickel &
Kiela (and gensim) list pairs as ``(hyponym, hypernym)`` and replace the hypernym; pass the
pairs reversed to train their way. The distance, hence the rest of the loss, is symmetric.

Points have shape ``(n_nodes, n_balls, ball_dim)``; the distance over a product of balls is
:func:`hyperim.geometry.product.combine_ball_distances` of the per-ball
:func:`hyperim.geometry.poincare.dist`. The parameter is a ``geoopt.ManifoldParameter`` on
:class:`hyperim.geometry.manifold.PoincareBall` (projection radius ``1 - 1e-5``).

Two optimisers (``HierarchyEmbeddingConfig.optimizer``):

``"rsgd"`` (default)
    Nickel & Kiela's Riemannian SGD, :math:`\theta \leftarrow \pi\big(\theta - \eta
    \tfrac{(1 - \lVert\theta\rVert^2)^2}{4} \nabla_E\big)` ball by ball: the step of
    ``geoopt.optim.RiemannianSGD`` on :class:`~hyperim.geometry.manifold.PoincareBall` (the
    tests check the two agree), but with the gradient written out instead of autograd and
    applied only to the rows a batch touches, so an epoch costs ``O(pairs)``, not
    ``O(pairs / batch × nodes)``. The loss is *summed* over the batch, so ``lr`` is a
    per-pair step as in gensim. The first ``burn_in`` epochs use ``lr × burn_in_factor``.
``"radam"``
    ``geoopt.optim.RiemannianAdam`` on the whole parameter (dense update every step), the
    loss through :func:`~hyperim.geometry.poincare.dist` by autograd, mean loss over the
    batch; burn-in scales its learning rate the same way.

Defaults (measured on WordNet's mammal closure, 1,182 nodes, dim 5, 50 epochs, one thread):
RSGD at lr 0.3 and batch 128 reached MAP 0.85 in about 2 s where RiemannianAdam (lr 0.05, its
best of 0.003-0.2) reached 0.78 three times slower; lr 1.0 or batch 512 diverge towards the
boundary (hub nodes receive the sum of many pair gradients per step), batch 64 gains little
for twice the time; the 10-epoch burn-in at lr / 10 is essential (0.57 without). Drawing
negatives by frequency ** 0.75 helps when pairs are ``(hyponym, hypernym)`` (0.91) but hurts
in the ``(parent, child)`` orientation of Eq. 2 (mammal 0.46 against 0.50 uniform; the
synthetic tree of the tests 0.83 against 0.95), so uniform is the default.

Everything is batched: a batch of pairs is one ``index_select``, one distance evaluation and
one softmax; no Python loop runs per pair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import geoopt
import torch
import torch.nn.functional as F

from hyperim.errors import HyperIMError
from hyperim.geometry.manifold import PoincareBall
from hyperim.geometry.numerics import MIN_NORM, acosh_min_gap
from hyperim.geometry.pairwise import lift_labels, lift_words
from hyperim.geometry.poincare import dist, project
from hyperim.geometry.product import Aggregate, combine_ball_distances

#: ``progress(epoch, epochs, mean_loss)`` is called after every epoch (``epoch`` from 1).
ProgressFn = Callable[[int, int, float], None]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_RESAMPLE_ROUNDS = 8


@dataclass(kw_only=True)
class PairTrainingConfig:
    """The training options of Eq. (2) that every geometry shares (used by :func:`fit_pairs`).

    Attributes
    ----------
    epochs : int
        Passes over the training pairs, burn-in included.
    lr : float
        Learning rate (per pair for the plain SGD step, whose loss is summed over the batch;
        Adam's step size for the Adam variants).
    negatives : int
        ``K``, negatives sampled per pair.
    sampling_power : float
        Negatives are drawn with probability proportional to ``count ** sampling_power``,
        ``count`` being how many training pairs a node takes part in: 0 is uniform (Nickel &
        Kiela's paper), 1 is gensim's choice, 0.75 the "dampening" of their later code.
    batch_size : int
        Pairs per step.
    burn_in : int
        Epochs at the start that run with ``lr × burn_in_factor`` (Nickel & Kiela: 10, 1/10).
    burn_in_factor : float
        Learning-rate multiplier during burn-in.
    closure : bool
        Train on the transitive closure of the edges (default, as Nickel & Kiela) or on the
        direct edges only. Negatives are rejected against the closure either way.
    init_range : float
        Coordinates start uniform in ``(-init_range, init_range)`` (Nickel & Kiela: 1e-3).
    seed : int
        Seeds initialisation, shuffling and negative sampling.
    dtype : {"float32", "float64"}
        Floating type of the parameter and of all training arithmetic.
    """

    epochs: int = 50
    lr: float = 0.3
    negatives: int = 10
    sampling_power: float = 0.0
    batch_size: int = 128
    burn_in: int = 10
    burn_in_factor: float = 0.1
    closure: bool = True
    init_range: float = 1e-3
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"

    #: The optimisers a subclass accepts in its ``optimizer`` field.
    OPTIMIZERS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in ("epochs", "negatives", "batch_size", "burn_in"):
            value = getattr(self, name)
            if value < (0 if name in ("epochs", "burn_in") else 1):
                raise HyperIMError(f"{name} must be positive, got {value}")
        if not self.lr > 0:
            raise HyperIMError(f"lr must be positive, got {self.lr}")
        if not self.init_range > 0:
            raise HyperIMError(f"init_range must be positive, got {self.init_range}")
        optimizer = getattr(self, "optimizer", None)
        if self.OPTIMIZERS and optimizer not in self.OPTIMIZERS:
            allowed = " or ".join(repr(o) for o in self.OPTIMIZERS)
            raise HyperIMError(f"optimizer must be {allowed}, got {optimizer!r}")
        if self.dtype not in _DTYPES:
            raise HyperIMError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


@dataclass(kw_only=True)
class HierarchyEmbeddingConfig(PairTrainingConfig):
    """Options of :func:`train_hierarchy_embedding`: the shared ones of
    :class:`PairTrainingConfig` and the shape of the product of balls.

    The shape is ``n_balls`` balls of ``ball_dim`` dimensions; ``dim`` is their total. Give
    either ``dim`` (split evenly over ``n_balls``) or ``ball_dim``; with neither, ``dim = 10``.

    Attributes
    ----------
    dim, n_balls, ball_dim : int
        Total dimension, number of balls, dimension of one ball.
    aggregate : {"sum", "riemannian"}
        How per-ball distances combine (see :mod:`hyperim.geometry.product`).
    optimizer : {"rsgd", "radam"}
        See the module docstring.
    """

    dim: int | None = None
    n_balls: int = 1
    ball_dim: int | None = None
    aggregate: Aggregate = "sum"
    optimizer: Literal["rsgd", "radam"] = "rsgd"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("rsgd", "radam")

    def __post_init__(self) -> None:
        if self.n_balls < 1:
            raise HyperIMError(f"n_balls must be at least 1, got {self.n_balls}")
        if self.dim is None and self.ball_dim is None:
            self.dim = 10
        if self.ball_dim is None:
            assert self.dim is not None
            if self.dim < 1 or self.dim % self.n_balls:
                raise HyperIMError(
                    f"dim {self.dim} is not a positive multiple of n_balls {self.n_balls}"
                )
            self.ball_dim = self.dim // self.n_balls
        elif self.dim is None:
            self.dim = self.n_balls * self.ball_dim
        if self.ball_dim < 1 or self.dim != self.n_balls * self.ball_dim:
            raise HyperIMError(
                f"dim {self.dim} != n_balls {self.n_balls} × ball_dim {self.ball_dim}"
            )
        if self.aggregate not in ("sum", "riemannian"):
            raise HyperIMError(f"aggregate must be 'sum' or 'riemannian', got {self.aggregate!r}")
        super().__post_init__()


# --------------------------------------------------------------------------- graph helpers


def index_nodes(edges: Iterable[tuple[str, str]]) -> tuple[list[str], dict[str, int]]:
    """Sorted node names of ``edges`` and the name → index map."""
    names = sorted({x for edge in edges for x in edge})
    return names, {name: i for i, name in enumerate(names)}


def transitive_closure(n: int, edges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """All ``(ancestor, descendant)`` index pairs reachable along ``(parent, child)`` edges.

    Raises :class:`~hyperim.errors.HyperIMError` if the edges contain a cycle.
    """
    parents: list[list[int]] = [[] for _ in range(n)]
    children: list[list[int]] = [[] for _ in range(n)]
    for p, c in set(edges):
        parents[c].append(p)
        children[p].append(c)
    # Kahn's algorithm from the roots: a node's ancestors are its parents' ancestors + parents.
    indegree = [len(ps) for ps in parents]
    order = [i for i in range(n) if indegree[i] == 0]
    ancestors: list[frozenset[int]] = [frozenset()] * n
    head = 0
    while head < len(order):
        node = order[head]
        head += 1
        acc: set[int] = set()
        # Largest ancestor sets first: a parent already in ``acc`` brought its ancestors with
        # it, so on closed (or nearly closed) input almost every union is skipped.
        for p in sorted(parents[node], key=lambda i: -len(ancestors[i])):
            if p not in acc:
                acc.add(p)
                acc |= ancestors[p]
        ancestors[node] = frozenset(acc)
        for c in children[node]:
            indegree[c] -= 1
            if indegree[c] == 0:
                order.append(c)
    if len(order) < n:
        raise HyperIMError("the hierarchy has a cycle; its edges must form a DAG")
    return [(a, d) for d in range(n) for a in ancestors[d]]


def _pair_keys(pairs: torch.Tensor, n: int) -> torch.Tensor:
    return pairs[:, 0] * n + pairs[:, 1]


def _is_member(keys: torch.Tensor, sorted_keys: torch.Tensor) -> torch.Tensor:
    """Elementwise ``keys ∈ sorted_keys`` (``sorted_keys`` sorted, non-empty)."""
    pos = torch.searchsorted(sorted_keys, keys).clamp_max(sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


def sample_negatives(
    parents: torch.Tensor,
    n: int,
    k: int,
    closure_keys: torch.Tensor,
    generator: torch.Generator,
    cdf: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, k)`` draws from :math:`N(l_p)` for each parent index in ``parents``.

    Draws are uniform over the ``n`` nodes, or follow ``cdf`` (a cumulative distribution over
    the nodes, last value 1) when given. A draw ``q'`` with ``(p, q')`` in the closure
    (``closure_keys``: sorted ``p * n + q``) is redrawn, up to a few rounds; one still rejected
    after that becomes ``p`` itself.
    """

    def draw(size: tuple[int, ...]) -> torch.Tensor:
        if cdf is None:
            return torch.randint(0, n, size, generator=generator)
        u = torch.rand(size, generator=generator, dtype=cdf.dtype)
        return torch.searchsorted(cdf, u, right=True).clamp_max(n - 1)

    negs = draw((parents.numel(), k))
    base = (parents * n).unsqueeze(1).expand_as(negs)
    bad = _is_member(base + negs, closure_keys).view(-1).nonzero().squeeze(1)
    flat_negs, flat_base = negs.view(-1), base.reshape(-1)
    for _ in range(_RESAMPLE_ROUNDS):
        if bad.numel() == 0:
            return negs
        new = draw((bad.numel(),))
        flat_negs[bad] = new
        bad = bad[_is_member(flat_base[bad] + new, closure_keys)]
    flat_negs[bad] = flat_base[bad] // n
    return negs


# --------------------------------------------------------------------------- training


def _batch_loss(emb: torch.Tensor, aggregate: Aggregate, reduction: str) -> torch.Tensor:
    """Eq. (2) for ``emb`` of shape ``(B, 2 + K, n_balls, ball_dim)``: parent, child, negatives."""
    d = combine_ball_distances(dist(emb[:, :1], emb[:, 1:]), aggregate)  # (B, 1 + K)
    target = torch.zeros(d.shape[0], dtype=torch.long)
    return F.cross_entropy(-d, target, reduction=reduction)


@dataclass
class HierarchyPairs:
    """What both hierarchy trainers (Poincaré here, Euclidean in :mod:`~hyperim.pretrain.
    euclidean`) train on: sorted node names, direct edges, the transitive closure (and its
    sorted keys, for rejecting negatives), the training pairs and the negatives' sampling CDF."""

    names: list[str]
    direct: list[tuple[int, int]]
    closure: torch.Tensor  # (P, 2)
    closure_keys: torch.Tensor  # sorted p * n + q
    train_pairs: torch.Tensor  # (N, 2) (parent, child)
    cdf: torch.Tensor | None

    @property
    def n(self) -> int:
        return len(self.names)


def hierarchy_pairs(
    edges: Iterable[tuple[str, str]], closure: bool = True, sampling_power: float = 0.0
) -> HierarchyPairs:
    """Index ``(parent, child)`` edges; a cycle, no edge or a single node raise
    :class:`~hyperim.errors.HyperIMError`."""
    edge_list = list(dict.fromkeys((str(p), str(c)) for p, c in edges))
    if not edge_list:
        raise HyperIMError("no edges to embed")
    names, index = index_nodes(edge_list)
    n = len(names)
    if n < 2:
        raise HyperIMError("a hierarchy needs at least two distinct nodes")
    direct = [(index[p], index[c]) for p, c in edge_list]
    full = torch.tensor(transitive_closure(n, direct), dtype=torch.long).view(-1, 2)
    keys = torch.sort(_pair_keys(full, n)).values
    train_pairs = full if closure else torch.tensor(sorted(set(direct))).view(-1, 2)
    cdf = None
    if sampling_power != 0:
        counts = torch.bincount(train_pairs.flatten(), minlength=n).to(torch.float64)
        weights = counts.clamp_min(1).pow(sampling_power)
        cdf = torch.cumsum(weights, 0) / weights.sum()
    return HierarchyPairs(names, direct, full, keys, train_pairs, cdf)


def fit_pairs(
    pairs: HierarchyPairs,
    weight: torch.Tensor,
    cfg: PairTrainingConfig,
    gen: torch.Generator,
    sgd_step: Callable[[torch.Tensor, torch.Tensor, float], float],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    opt: torch.optim.Optimizer | None = None,
    progress: ProgressFn | None = None,
) -> list[float]:
    """The training loop of Eq. (2), whatever the geometry: ``cfg.epochs`` passes over the
    shuffled training pairs in batches of ``cfg.batch_size``, ``cfg.negatives`` negatives per
    pair, the burn-in learning rate for the first ``cfg.burn_in`` epochs. Each batch
    ``idx`` ``(B, 2 + K)`` (parent, child, negatives) is one ``sgd_step(weight, idx, lr)``
    (returning the batch's summed loss) or, with ``opt``, a step of ``opt`` on the mean of
    ``batch_loss(embedded idx)``. Returns the mean loss per pair of each epoch."""
    n_pairs = pairs.train_pairs.shape[0]
    bs, k = cfg.batch_size, cfg.negatives
    losses: list[float] = []
    for epoch in range(cfg.epochs):
        lr = cfg.lr * (cfg.burn_in_factor if epoch < cfg.burn_in else 1.0)
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = lr
        order = torch.randperm(n_pairs, generator=gen)
        total = 0.0
        for start in range(0, n_pairs, bs):
            batch = pairs.train_pairs.index_select(0, order[start : start + bs])
            negs = sample_negatives(batch[:, 0], pairs.n, k, pairs.closure_keys, gen, pairs.cdf)
            idx = torch.cat([batch, negs], dim=1)  # (B, 2 + K)
            if opt is None:
                total += sgd_step(weight, idx, lr)
            else:
                emb = weight.index_select(0, idx.flatten()).view(*idx.shape, *weight.shape[1:])
                loss = batch_loss(emb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.shape[0]
        losses.append(total / n_pairs)
        if not math.isfinite(losses[-1]):
            raise HyperIMError(f"training diverged at epoch {epoch + 1} (loss {losses[-1]})")
        if progress is not None:
            progress(epoch + 1, cfg.epochs, losses[-1])
    return losses


def fit_stats(
    pairs: HierarchyPairs,
    cfg: PairTrainingConfig,
    losses: list[float],
    seconds: float,
    setup_seconds: float,
) -> dict[str, Any]:
    """The statistics both hierarchy trainers return."""
    return {
        "n_nodes": pairs.n,
        "n_edges": len(pairs.direct),
        "n_closure_pairs": int(pairs.closure.shape[0]),
        "n_train_pairs": int(pairs.train_pairs.shape[0]),
        "epochs": cfg.epochs,
        "seconds": seconds,
        "setup_seconds": setup_seconds,
        "losses": losses,
        "config": asdict(cfg),
    }


def train_hierarchy_embedding(
    edges: Iterable[tuple[str, str]],
    config: HierarchyEmbeddingConfig | None = None,
    progress: ProgressFn | None = None,
) -> tuple[list[str], torch.Tensor, dict[str, Any]]:
    """Embed the DAG of ``(parent, child)`` ``edges`` in a (product of) Poincaré ball(s).

    Parameters
    ----------
    edges : iterable of (str, str)
        ``(parent, child)`` pairs; duplicates are ignored, a cycle raises
        :class:`~hyperim.errors.HyperIMError`. Transitive-closure pairs may be given too.
    config : HierarchyEmbeddingConfig, optional
        Defaults to ``HierarchyEmbeddingConfig()``.
    progress : callable, optional
        ``progress(epoch, epochs, mean_loss)`` after every epoch.

    Returns
    -------
    names : list of str
        Node names, sorted; row ``i`` of ``points`` is ``names[i]``.
    points : torch.Tensor
        ``(n_nodes, n_balls, ball_dim)``, every ball point of norm ``<= 1 - 1e-5``.
    stats : dict
        ``n_nodes``, ``n_edges``, ``n_closure_pairs``, ``n_train_pairs``, ``epochs``,
        ``seconds`` (training loop only), ``setup_seconds``, ``losses`` (mean loss per epoch)
        and ``config`` (as a dict).
    """
    cfg = config or HierarchyEmbeddingConfig()
    t_setup = time.perf_counter()
    pairs = hierarchy_pairs(edges, cfg.closure, cfg.sampling_power)
    gen = torch.Generator().manual_seed(cfg.seed)
    assert cfg.ball_dim is not None
    init = torch.empty(pairs.n, cfg.n_balls, cfg.ball_dim, dtype=cfg.torch_dtype)
    init.uniform_(-cfg.init_range, cfg.init_range, generator=gen)
    weight = geoopt.ManifoldParameter(init, manifold=PoincareBall())
    opt = geoopt.optim.RiemannianAdam([weight], lr=cfg.lr) if cfg.optimizer == "radam" else None
    setup_seconds = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    losses = fit_pairs(
        pairs,
        weight,
        cfg,
        gen,
        lambda w, idx, lr: _rsgd_step(w, idx, lr, cfg.aggregate),
        lambda emb: _batch_loss(emb, cfg.aggregate, "mean"),
        opt,
        progress,
    )
    stats = fit_stats(pairs, cfg, losses, time.perf_counter() - t0, setup_seconds)
    return pairs.names, weight.detach().clone(), stats


def _rsgd_step(weight: torch.Tensor, idx: torch.Tensor, lr: float, aggregate: Aggregate) -> float:
    r"""One Riemannian SGD step on the summed Eq. (2) loss of a batch; returns that loss.

    ``idx`` is ``(B, 2 + K)``: parent, child, negatives. Forward and backward are written out
    (no autograd graph): with :math:`\alpha = 1 - \lVert x\rVert^2`,
    :math:`\beta = 1 - \lVert y\rVert^2` and
    :math:`u = 2\lVert x - y\rVert^2 / (\alpha\beta)`, :math:`d = \cosh^{-1}(1 + u)` (the
    same function as :func:`hyperim.geometry.poincare.dist`) and the Riemannian gradient
    :math:`\tfrac{\alpha^2}{4}\nabla_x d = \frac{(1 - 2\langle x, y\rangle
    + \lVert y\rVert^2)\,x - \alpha y}{\beta\sqrt{u(u + 2)}}` (Nickel & Kiela, Eq. 4,
    times the inverse metric), ball by ball. A row met several times in the batch receives the
    sum of its updates, then every touched row is projected back into the ball. This equals
    ``geoopt.optim.RiemannianSGD`` (no momentum) on the ``PoincareBall`` manifold.
    """
    b, m = idx.shape
    flat = idx.reshape(-1)
    data = weight.detach()
    emb = data.index_select(0, flat).view(b, m, *weight.shape[1:])
    x, y = emb[:, :1], emb[:, 1:]  # (B, 1, nb, bd), (B, 1 + K, nb, bd)
    x2 = x.pow(2).sum(-1, keepdim=True)
    y2 = y.pow(2).sum(-1, keepdim=True)
    xy = (x * y).sum(-1, keepdim=True)
    alpha, beta = 1 - x2, 1 - y2
    u = 2 * (x - y).pow(2).sum(-1, keepdim=True) / (alpha * beta)
    gap = acosh_min_gap(u.dtype)
    live = u > gap  # d(x, x) = 0: no gradient, as the clamp in ``dist`` gives
    u = u.clamp_min(gap)
    s = torch.sqrt(u * (u + 2))
    d = torch.where(live, torch.log1p(u + s), 0.0)  # acosh(1 + u), (B, 1 + K, nb, 1)
    dist_ = combine_ball_distances(d.squeeze(-1), aggregate)  # (B, 1 + K)
    logp = torch.log_softmax(-dist_, dim=-1)
    loss = -logp[:, 0].sum()
    g = -logp.exp()  # dL/d dist
    g[:, 0] += 1
    if aggregate == "riemannian":
        g = g.unsqueeze(-1) * d.squeeze(-1) / dist_.unsqueeze(-1)
    else:
        g = g.unsqueeze(-1).expand(-1, -1, d.shape[2])
    common = torch.where(live, g.unsqueeze(-1) / s, 0.0)  # (B, 1 + K, nb, 1)
    rx = (common / beta) * ((1 - 2 * xy + y2) * x - alpha * y)
    ry = (common / alpha) * ((1 - 2 * xy + x2) * y - beta * x)
    upd = torch.cat([rx.sum(1, keepdim=True), ry], dim=1).mul_(-lr).view(b * m, -1)
    rows = data.view(data.shape[0], -1)
    # index_add_ adds repeated rows in index order; an accumulating index_put_ adds them in
    # an order that depends on thread timing, so two identical runs would differ.
    rows.index_add_(0, flat, upd)
    # Duplicate indices copy identical values, so the result does not depend on their order.
    rows.index_copy_(0, flat, project(data.index_select(0, flat)).view(b * m, -1))
    return float(loss)


# --------------------------------------------------------------------------- evaluation


def _ranking_scores(x: torch.Tensor, y: torch.Tensor, aggregate: Aggregate) -> torch.Tensor:
    """``(M, n_balls, d) × (L, n_balls, d) -> (M, L)`` scores increasing with the distance.

    For one ball the score is :math:`u` of :math:`d = \\cosh^{-1}(1 + u)` (one matrix
    product, no transcendental function); for a product of balls it is the product distance.
    """
    xl = lift_words(x).transpose(0, 1)  # (n_balls, M, d + 2)
    yl = lift_labels(y).permute(1, 2, 0)  # (n_balls, d + 2, L)
    u = torch.matmul(xl, yl)  # u / 2, (n_balls, M, L)
    if x.shape[1] == 1:
        return u[0]
    u = (2 * u).clamp_min(MIN_NORM)
    d = torch.log1p(u + torch.sqrt(u * (u + 2)))  # acosh(1 + u)
    return combine_ball_distances(d, aggregate, dim=0)


def reconstruction_metrics(
    names: Sequence[str],
    points: torch.Tensor,
    edges_closure: Iterable[tuple[str, str]],
    aggregate: Aggregate = "sum",
    direction: Literal["forward", "backward", "both"] = "forward",
    chunk_elements: int = 1 << 23,
    max_queries: int | None = None,
    seed: int = 0,
    geometry: Literal["poincare", "euclidean"] = "poincare",
) -> dict[str, float]:
    """Mean rank and MAP of reconstructing ``edges_closure`` from distances (Nickel & Kiela).

    For every node ``u`` with a non-empty neighbour set ``N(u)``, each true neighbour ``v`` is
    ranked by distance among the nodes that are *not* neighbours of ``u`` (``u`` excluded):
    ``rank(u, v) = 1 + |{w ∉ N(u) ∪ {u} : d(u, w) < d(u, v)}|``. The mean rank is over all
    ``(u, v)``; MAP is the mean over ``u`` of the average precision of ranking ``N(u)``
    (the ``i``-th closest neighbour, ``i`` from 1, has precision ``i / (rank_i + i - 1)``).
    These are gensim's ``ReconstructionEvaluation`` numbers except that gensim does not
    exclude ``u`` itself (so its ranks are one higher).

    Parameters
    ----------
    names : sequence of str
        Row names of ``points``.
    points : torch.Tensor
        ``(n, n_balls, ball_dim)`` (or ``(n, dim)`` for one ball).
    edges_closure : iterable of (str, str)
        The relation to reconstruct, normally a transitive closure.
    aggregate : {"sum", "riemannian"}
        Product distance.
    direction : {"forward", "backward", "both"}
        ``N(u)`` is ``{v : (u, v) in edges}`` (forward: the relation file's first column ranks
        its second, as gensim and Nickel & Kiela evaluate), ``{v : (v, u)}`` (backward) or
        their union (both).
    chunk_elements : int
        Bound on the ``rows × n`` distance block held at once (memory ``O(chunk_elements)``).
    max_queries : int, optional
        Evaluate a random subset of this many query nodes ``u`` (seeded by ``seed``) instead
        of all: an estimate for quick checks on large graphs. ``None`` (default): all.
    geometry : {"poincare", "euclidean"}
        Rank by the (product) Poincaré distance, or by the Euclidean distance of the
        flattened points (EuclideanIM's label embeddings, E-hier).

    Returns
    -------
    dict
        ``{"mean_rank": float, "map": float, "n_queries": int, "n_pairs": int}``.
    """
    x = points.detach().to(torch.float64)
    if x.dim() == 2:
        x = x.unsqueeze(1)
    n = x.shape[0]
    if len(names) != n:
        raise HyperIMError(f"{len(names)} names for {n} points")
    index = {name: i for i, name in enumerate(names)}
    pairs: set[tuple[int, int]] = set()
    for a, b in edges_closure:
        if a not in index or b not in index:
            missing = a if a not in index else b
            raise HyperIMError(f"edge ({a}, {b}) names {missing!r}, which has no embedding")
        ia, ib = index[a], index[b]
        if ia == ib:
            continue
        if direction in ("forward", "both"):
            pairs.add((ia, ib))
        if direction in ("backward", "both"):
            pairs.add((ib, ia))
    if not pairs:
        raise HyperIMError("no relation pairs to evaluate")
    rel = torch.tensor(sorted(pairs), dtype=torch.long)  # sorted by query, then neighbour
    queries, counts = torch.unique_consecutive(rel[:, 0], return_counts=True)
    if max_queries is not None and max_queries < queries.numel():
        gen = torch.Generator().manual_seed(seed)
        keep = torch.zeros(queries.numel(), dtype=torch.bool)
        keep[torch.randperm(queries.numel(), generator=gen)[:max_queries]] = True
        rel = rel[keep.repeat_interleave(counts)]
        queries, counts = queries[keep], counts[keep]
    starts = torch.cumsum(counts, 0) - counts

    rank_sum = 0.0
    ap_sum = 0.0
    rows = max(1, chunk_elements // n)
    for c0 in range(0, queries.numel(), rows):
        q = queries[c0 : c0 + rows]
        cnt = counts[c0 : c0 + rows]
        r = q.numel()
        lo = int(starts[c0])
        hi = lo + int(cnt.sum())
        row_of_pair = torch.repeat_interleave(torch.arange(r), cnt)
        col_of_pair = torch.arange(hi - lo) - (starts[c0 : c0 + rows] - lo).repeat_interleave(cnt)
        nbr = rel[lo:hi, 1]
        if geometry == "euclidean":  # exact differences, not the |x|² + |y|² - 2xy shortcut
            flat = x.flatten(1)
            d = torch.cdist(
                flat.index_select(0, q), flat, compute_mode="donot_use_mm_for_euclid_dist"
            )
        else:
            d = _ranking_scores(x.index_select(0, q), x, aggregate)  # (r, n)
        # Each row's neighbour scores, sorted, padded with +inf: (r, m).
        m = int(cnt.max())
        pos = torch.full((r, m), math.inf, dtype=d.dtype)
        pos[row_of_pair, col_of_pair] = d[row_of_pair, nbr]
        pos = torch.sort(pos, dim=1).values
        # Negatives only: neighbours and u itself become +inf.
        d[row_of_pair, nbr] = math.inf
        d[torch.arange(r), q] = math.inf
        # A negative w is closer than the j-th neighbour iff j >= b(w) = #{neighbours <= w}:
        # histogram b per row, then a cumulative sum gives each neighbour's count. Negatives
        # beyond a row's farthest neighbour never count; when they are most of the block (a
        # good embedding), only the others are bucketed.
        thresh = pos.gather(1, (cnt - 1).unsqueeze(1)).squeeze(1)
        near = d < thresh.unsqueeze(1)
        n_near = int(near.sum())
        if n_near * m <= d.numel():
            ri, ci = near.nonzero(as_tuple=True)
            bucket = torch.searchsorted(pos[ri], d[ri, ci].unsqueeze(1), right=True).squeeze(1)
        else:
            ri = torch.arange(r).repeat_interleave(n)
            bucket = torch.searchsorted(pos, d, right=True).view(-1)
        hist = torch.bincount(ri * (m + 1) + bucket, minlength=r * (m + 1)).view(r, m + 1)
        closer = torch.cumsum(hist, dim=1)[:, :-1]  # (r, m): negatives closer than pos[:, j]
        ranks = (closer + 1).to(torch.float64)
        real = torch.arange(m).unsqueeze(0) < cnt.unsqueeze(1)
        rank_sum += float(ranks[real].sum())
        # Average precision: the j-th closest neighbour (j from 1) sits at rank_j + j - 1.
        j = torch.arange(1, m + 1, dtype=torch.float64).unsqueeze(0)
        prec = torch.where(real, j / (ranks + j - 1), 0.0)
        ap_sum += float((prec.sum(1) / cnt).sum())
    return {
        "mean_rank": rank_sum / rel.shape[0],
        "map": ap_sum / queries.numel(),
        "n_queries": int(queries.numel()),
        "n_pairs": int(rel.shape[0]),
    }
