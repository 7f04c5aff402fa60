r"""Euclidean pre-training for EuclideanIM, the paper's ablation (E-rand / E-hier).

EuclideanIM takes "the vanilla pre-trained GloVe word embeddings" and, for E-hier, label
embeddings "initialized by the hierarchical label relations". This module trains both in
:math:`\mathbb{R}^k`, as the Euclidean counterparts of :mod:`hyperim.pretrain.glove`
(Poincaré GloVe, Eq. 3) and :mod:`hyperim.pretrain.hierarchy` (Poincaré embeddings, Eq. 2).

Vanilla GloVe (Pennington, Socher & Manning 2014)
-------------------------------------------------
Word vectors :math:`w_i`, context vectors :math:`\tilde w_j` and biases
:math:`b_i, \tilde b_j` minimise, over the nonzero co-occurrence counts :math:`X_{ij}` (from
:func:`hyperim.pretrain.cooccurrence.cooccurrence_matrix`),

.. math::
    J = \sum_{X_{ij} > 0} f(X_{ij})\left(w_i^\top \tilde w_j + b_i + \tilde b_j
        - \log X_{ij}\right)^2,
    \qquad f(x) = \min\!\left(1, (x / x_{\max})^{\alpha}\right),

with GloVe's :math:`x_{\max} = 100`, :math:`\alpha = 3/4`; the returned vectors are
:math:`w_i + \tilde w_i` (GloVe's default output, ``model = 2``).

As in ``glove.c``: coordinates and biases start uniform in :math:`[-0.5, 0.5] / k`; the
gradient is that of :math:`J / 2`, :math:`g = f(X_{ij})\,r_{ij}\,\tilde w_j` for
:math:`w_i` (:math:`r_{ij}` the residual in brackets), and the optimiser is ``glove.c``'s
AdaGrad, one accumulator per coordinate and per bias, started at 1 and fed the squared
*scaled* step :math:`(\eta g)^2`:

.. math::
    G \leftarrow G + (\eta g)^2, \qquad \theta \leftarrow \theta - \eta g / \sqrt{G},

i.e. AdaGrad with step size 1 and initial accumulator :math:`1/\eta^2` (default
:math:`\eta = 0.05`, ``glove.c``'s). Two differences, both forced by minibatches:
``glove.c`` updates one entry at a time (Hogwild threads) and divides by the accumulator
*before* adding the new step; here the nonzeros are reshuffled every epoch (seeded) and taken
``batch_size`` at a time, a row's gradient is the sum over its entries in the batch, and the
accumulator includes the current step, so a step is at most 1 per coordinate however many
entries of a frequent word a batch holds (dividing first, a row's first step would be
:math:`\eta \sum g`, growing with its entries in the batch). Rows are gathered once per
batch with ``torch.unique``, the tables are augmented (``[w, b, 1]`` and ``[w~, 1, b~]``) so
that one gather and one scatter per table move vectors and biases together, the per-row sums
use ``index_add_`` (which adds in index order on CPU) and the updates ``index_copy_`` onto
distinct rows: the result depends on the seed only, not on the thread count (tested).

``stats["loss"][e]`` is :math:`J` summed over the nonzeros during epoch ``e`` (each term at
the parameters of its step), ``stats["mean_loss"][e]`` that over the number of nonzeros
(``glove.c`` prints half of it as its "cost").

Measured on the debtags training split (29,082 words, min count 2; 4,170,553 nonzeros,
window 10), one CPU thread shared with other jobs: an epoch takes 3.0 s at 50 dimensions,
7.2 s at 150 and 13.5 s at 300 (memory-bound gathers and scatters; ``setup`` 0.6 s). At 150
dimensions the mean :math:`J` per nonzero is 0.0679, 0.0453, 0.0389 after epochs 1-3 and
0.0163 after 25. Batch sizes from 1,024 to 65,536 give the same loss within 1% (0.0389-0.0391
after 3 epochs) at the same speed (default 16,384). ``lr`` 0.1 and 0.2 fit faster early
(0.0362 and 0.0343 after 3 epochs), 0.025 slower (0.0467); ``glove.c``'s 0.05 is the default,
as the paper uses the authors' recommended values. Nearest neighbours by cosine after 25
epochs: *game*: role-playing, shooting, arcade, classic, sokoban; *font*: equal-width,
truetype, opentype, calligraphic, monospace.

Euclidean hierarchy embeddings (Eq. 2 with :math:`d(u, v) = \lVert u - v\rVert`)
--------------------------------------------------------------------------------
Every ``(parent, child)`` pair :math:`(l_p, l_q)` of the training relation contributes

.. math::
    -\log \frac{e^{-d(\theta_p, \theta_q)}}
               {e^{-d(\theta_p, \theta_q)} + \sum_{q' \in S_p} e^{-d(\theta_p, \theta_{q'})}},
    \qquad d(u, v) = \lVert u - v\rVert_2,

Nickel & Kiela's loss with the Euclidean distance. Everything but the geometry is taken from
:mod:`hyperim.pretrain.hierarchy`: node indexing (:func:`~hyperim.pretrain.hierarchy.index_nodes`),
the transitive closure, and negative sampling
(:func:`~hyperim.pretrain.hierarchy.sample_negatives`: uniform or by ``count **
sampling_power``, draws in the closure rejected and after a few rounds replaced by
:math:`l_p` itself). The orientation is the Poincaré trainer's: the *child* is corrupted
(negatives :math:`q'` replace :math:`l_q` for a fixed parent :math:`l_p`); pass the pairs
reversed for Nickel & Kiela's ``(hyponym, hypernym)`` convention. Points are unconstrained
(no projection). Optimisers: ``"sgd"`` (default), plain SGD on the loss summed over the batch
with the gradient written out, :math:`\nabla_u d = (u - v)/d` (0 at :math:`u = v`), applied
with ``index_add_`` to the rows a batch touches; ``"adam"``, ``torch.optim.Adam`` on the mean
batch loss by autograd (dense). The first ``burn_in`` epochs run at ``lr × burn_in_factor``
as in the Poincaré trainer. :func:`euclidean_reconstruction` gives the mean rank and MAP of
:func:`~hyperim.pretrain.hierarchy.reconstruction_metrics` (whose scores are Poincaré
distances) under the Euclidean distance.

Measured (dim 10, 50 epochs, batch 128, one thread; MAP of the closure): debtags' label
hierarchy (608 nodes, 641 closure pairs, 0.2 s): SGD lr 0.1 / 0.3 / 1.0 → 0.886 / 0.968 /
0.995, Adam lr 0.1 → 0.993 (the Poincaré trainer's default: 1.0). WordNet's mammal closure
(1,182 nodes, 6,542 pairs, 4.7 s) as ``(parent, child)``: lr 0.1 → 0.524, 0.3 → 0.622
(Poincaré 0.52); as ``(hyponym, hypernym)``: 0.26 / 0.29 against Poincaré's 0.87, Nickel &
Kiela's Euclidean gap. Batch 32 is no better. The default lr is 0.3, the Poincaré trainer's.
On hierarchies with a hub (one root above everything) the hub's summed steps overshoot at
0.3: the loss of the tests' complete tree (dim 5) ends above its start (2.40 → 3.52; 2.17 at
lr 0.1) and mammal's rises after the burn-in (2.14 → 2.27; 1.87 at lr 0.1), while both
rankings are as good as or better than at 0.1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from hyperim.errors import HyperIMError, check_all
from hyperim.pretrain.hierarchy import (
    PairTrainingConfig,
    ProgressFn,
    fit_pairs,
    fit_stats,
    hierarchy_pairs,
)

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

__all__ = [
    "EuclideanGloveConfig",
    "EuclideanHierarchyConfig",
    "euclidean_reconstruction",
    "train_euclidean_glove",
    "train_euclidean_hierarchy",
]


# ---------------------------------------------------------------------------------------------
# Vanilla GloVe


@dataclass
class EuclideanGloveConfig:
    """Options of :func:`train_euclidean_glove` (see the module docstring).

    Attributes
    ----------
    dim : int
        Vector dimension :math:`k`.
    epochs : int
        Passes over the nonzero entries (``glove.c``'s default ``max_iter`` is 25).
    lr : float
        ``glove.c``'s ``eta``.
    batch_size : int
        Nonzero entries per step.
    x_max, alpha : float
        The weight :math:`f(x) = \\min(1, (x / x_{\\max})^\\alpha)`.
    seed : int
        Seeds the initialisation and the shuffling.
    dtype : str
        ``"float32"`` or ``"float64"``.
    output : str
        ``"sum"`` (:math:`w + \\tilde w`, GloVe's default), ``"target"`` or ``"context"``.
    """

    dim: int = 150
    epochs: int = 25
    lr: float = 0.05
    batch_size: int = 16384
    x_max: float = 100.0
    alpha: float = 0.75
    seed: int = 0
    dtype: str = "float32"
    output: str = "sum"

    def validate(self) -> EuclideanGloveConfig:
        checks = [
            (self.dim >= 1, "dim must be >= 1"),
            (self.epochs >= 0, "epochs must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.x_max > 0 and self.alpha > 0, "x_max and alpha must be > 0"),
            (self.dtype in _DTYPES, "dtype must be float32 or float64"),
            (self.output in ("sum", "target", "context"), "output must be sum, target or context"),
        ]
        check_all(checks, "invalid GloVe option: ", ValueError)
        return self


def _glove_entries(
    cooc: sp.spmatrix, x_max: float, alpha: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row ids, column ids, :math:`\\log X_{ij}` and :math:`f(X_{ij})` of the positive entries."""
    if cooc.shape[0] != cooc.shape[1]:
        raise ValueError(f"co-occurrence matrix must be square, got {cooc.shape}")
    coo = sp.coo_matrix(cooc)
    keep = coo.data > 0
    x = np.asarray(coo.data[keep], dtype=np.float64)
    f = np.minimum(1.0, (x / x_max) ** alpha)
    return (
        torch.from_numpy(coo.row[keep].astype(np.int64)),
        torch.from_numpy(coo.col[keep].astype(np.int64)),
        torch.from_numpy(np.log(x)).to(dtype),
        torch.from_numpy(f).to(dtype),
    )


def _det_sum(t: torch.Tensor) -> torch.Tensor:
    """Float64 sum in index order (a plain ``sum`` may split the work by thread count)."""
    return t.to(torch.float64).cumsum(0)[-1] if t.numel() else t.new_zeros((), dtype=torch.float64)


def _adagrad_rows(
    params: torch.Tensor, gradsq: torch.Tensor, grad: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``glove.c``'s AdaGrad on gathered rows (module docstring), in place; returns both."""
    upd = grad.mul_(lr)
    gradsq.addcmul_(upd, upd)
    params.sub_(upd.div_(gradsq.sqrt()))
    return params, gradsq


class _GloveTables:
    r"""Parameters and AdaGrad accumulators of vanilla GloVe.

    The tables are augmented, ``w = [w, b, 1]`` and ``c = [w~, 1, b~]`` (``(V, dim + 2)``),
    so that one dot product gives :math:`w^\top \tilde w + b + \tilde b` and one gather
    and one scatter per table and batch move vectors and biases together; the constant
    columns get no gradient.
    """

    def __init__(self, v: int, dim: int, generator: torch.Generator, dtype: torch.dtype) -> None:
        self.dim = dim
        self.w = (torch.rand(v, dim + 2, generator=generator, dtype=dtype) - 0.5) / dim
        self.c = (torch.rand(v, dim + 2, generator=generator, dtype=dtype) - 0.5) / dim
        self.w[:, dim + 1] = 1.0
        self.c[:, dim] = 1.0
        self.w_sq = torch.ones_like(self.w)
        self.c_sq = torch.ones_like(self.c)

    def step(
        self,
        i: torch.Tensor,
        j: torch.Tensor,
        log_x: torch.Tensor,
        weight: torch.Tensor,
        lr: float,
    ) -> torch.Tensor:
        """One AdaGrad step on the entries ``(i, j)``; returns their :math:`J` (float64)."""
        d = self.dim
        ui, ii = torch.unique(i, return_inverse=True)
        uj, jj = torch.unique(j, return_inverse=True)
        w_rows, c_rows = self.w.index_select(0, ui), self.c.index_select(0, uj)
        wb, cb = w_rows.index_select(0, ii), c_rows.index_select(0, jj)
        r = (wb * cb).sum(1) - log_x
        fr = weight * r
        loss = _det_sum(fr * r)
        fr = fr.unsqueeze(1)  # gradient of J / 2 wrt the dot product, as glove.c
        gw = torch.zeros_like(w_rows).index_add_(0, ii, cb.mul_(fr))
        gc = torch.zeros_like(c_rows).index_add_(0, jj, wb.mul_(fr))
        gw[:, d + 1] = 0  # the constant columns
        gc[:, d] = 0
        for table, sq, rows, g, params in (
            (self.w, self.w_sq, ui, gw, w_rows),
            (self.c, self.c_sq, uj, gc, c_rows),
        ):
            p_new, sq_new = _adagrad_rows(params, sq.index_select(0, rows), g, lr)
            table.index_copy_(0, rows, p_new)  # distinct rows: no order question
            sq.index_copy_(0, rows, sq_new)
        return loss


def train_euclidean_glove(
    cooc: sp.spmatrix,
    dim: int,
    epochs: int = 25,
    lr: float = 0.05,
    x_max: float = 100.0,
    alpha: float = 0.75,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
    *,
    batch_size: int = 16384,
    dtype: str = "float32",
    output: str = "sum",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Fit vanilla GloVe to a co-occurrence matrix (module docstring: loss and optimiser).

    Parameters
    ----------
    cooc : scipy.sparse matrix
        Square ``V x V`` counts; row/column ``i`` is word id ``i``. Words without any
        co-occurrence (``<pad>``, ``<unk>``) keep their small random initial vectors.
    dim, epochs, lr, x_max, alpha, seed, batch_size, dtype, output
        See :class:`EuclideanGloveConfig`.
    progress : callable, optional
        ``progress(epoch, loss)`` after each epoch (1-based; :math:`J` summed over it).

    Returns
    -------
    vectors : torch.Tensor
        ``(V, dim)``: :math:`w + \\tilde w` (or one table, per ``output``).
    stats : dict
        ``vocab_size``, ``nnz``, ``loss`` and ``mean_loss`` (per epoch), ``seconds`` (per epoch),
        ``setup_seconds`` and ``config``.
    """
    cfg = EuclideanGloveConfig(
        dim=dim,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        x_max=x_max,
        alpha=alpha,
        seed=seed,
        dtype=dtype,
        output=output,
    ).validate()
    t_setup = time.perf_counter()
    tdtype = _DTYPES[cfg.dtype]
    ei, ej, log_x, weight = _glove_entries(cooc, cfg.x_max, cfg.alpha, tdtype)
    n, v = len(ei), cooc.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)

    tables = _GloveTables(v, cfg.dim, gen, tdtype)
    stats: dict[str, Any] = {
        "vocab_size": v,
        "nnz": n,
        "loss": [],
        "mean_loss": [],
        "seconds": [],
        "setup_seconds": time.perf_counter() - t_setup,
        "config": asdict(cfg),
    }
    for epoch in range(cfg.epochs if n else 0):
        t0 = time.perf_counter()
        total = torch.zeros((), dtype=torch.float64)
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            total += tables.step(
                ei.index_select(0, idx),
                ej.index_select(0, idx),
                log_x.index_select(0, idx),
                weight.index_select(0, idx),
                cfg.lr,
            )
        loss = float(total)
        if not math.isfinite(loss):
            raise HyperIMError(f"GloVe diverged at epoch {epoch + 1} (loss {loss}); lower lr")
        stats["loss"].append(loss)
        stats["mean_loss"].append(loss / n)
        stats["seconds"].append(time.perf_counter() - t0)
        if progress is not None:
            progress(epoch + 1, loss)
    w, c = tables.w[:, : cfg.dim], tables.c[:, : cfg.dim]
    out = {"sum": w + c, "target": w.clone(), "context": c.clone()}[cfg.output]
    return out, stats


# ---------------------------------------------------------------------------------------------
# Euclidean embeddings of a hierarchy (Eq. 2 with the Euclidean distance)


@dataclass(kw_only=True)
class EuclideanHierarchyConfig(PairTrainingConfig):
    """Options of :func:`train_euclidean_hierarchy`: the shared ones of
    :class:`~hyperim.pretrain.hierarchy.PairTrainingConfig` and these.

    Attributes
    ----------
    dim : int
        Dimension of the points.
    optimizer : {"sgd", "adam"}
        See the module docstring.
    """

    dim: int = 10
    optimizer: Literal["sgd", "adam"] = "sgd"

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("sgd", "adam")

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise HyperIMError(f"dim must be at least 1, got {self.dim}")
        super().__post_init__()


def _euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(‖x - y‖, live)`` over the last axis; ``live`` is False where the points (nearly)
    coincide, and there the distance has gradient 0 instead of NaN."""
    s = (x - y).pow(2).sum(-1)
    tiny = torch.finfo(s.dtype).tiny
    return s.clamp_min(tiny).sqrt(), s > tiny


def _hierarchy_batch_loss(emb: torch.Tensor, reduction: str) -> torch.Tensor:
    """Eq. (2), Euclidean, for ``emb`` of shape ``(B, 2 + K, dim)``: parent, child, negatives."""
    d, _ = _euclidean_dist(emb[:, :1], emb[:, 1:])  # (B, 1 + K)
    target = torch.zeros(d.shape[0], dtype=torch.long)
    return F.cross_entropy(-d, target, reduction=reduction)


def _sgd_step(weight: torch.Tensor, idx: torch.Tensor, lr: float) -> float:
    r"""One SGD step on the summed Euclidean Eq. (2) loss of a batch; returns that loss.

    ``idx`` is ``(B, 2 + K)``: parent, child, negatives. With :math:`p_k` the softmax of
    :math:`-d_k` over the child and the negatives, :math:`\partial L / \partial d_k =
    [k = 0] - p_k`, :math:`\nabla_x d(x, y) = (x - y) / d = -\nabla_y d(x, y)`. A row met
    several times in the batch receives the sum of its updates (``index_add_``, in index
    order: deterministic).
    """
    b, m = idx.shape
    flat = idx.reshape(-1)
    emb = weight.index_select(0, flat).view(b, m, -1)
    diff = emb[:, :1] - emb[:, 1:]  # (B, 1 + K, dim)
    d, live = _euclidean_dist(emb[:, :1], emb[:, 1:])
    logp = torch.log_softmax(-d, dim=-1)
    loss = -logp[:, 0].sum()
    g = -logp.exp()
    g[:, 0] += 1
    coef = torch.where(live, g / d, 0.0).unsqueeze(-1)  # (B, 1 + K, 1)
    gd = coef * diff  # gradient of the children and negatives, negated
    upd = torch.cat([gd.sum(1, keepdim=True), gd.neg_()], dim=1).mul_(-lr)
    weight.index_add_(0, flat, upd.view(b * m, -1))
    return float(loss)


def train_euclidean_hierarchy(
    edges: Iterable[tuple[str, str]],
    dim: int,
    epochs: int = 50,
    negatives: int = 10,
    lr: float = 0.3,
    seed: int = 0,
    closure: bool = True,
    progress: ProgressFn | None = None,
    *,
    batch_size: int = 128,
    burn_in: int = 10,
    burn_in_factor: float = 0.1,
    sampling_power: float = 0.0,
    optimizer: Literal["sgd", "adam"] = "sgd",
    init_range: float = 1e-3,
    dtype: Literal["float32", "float64"] = "float32",
) -> tuple[list[str], torch.Tensor, dict[str, Any]]:
    """Embed the DAG of ``(parent, child)`` ``edges`` in :math:`\\mathbb{R}^{dim}` (Eq. 2,
    Euclidean distance; the child is the corrupted side, as in the Poincaré trainer).

    Parameters
    ----------
    edges : iterable of (str, str)
        ``(parent, child)`` pairs; duplicates are ignored, a cycle raises
        :class:`~hyperim.errors.HyperIMError`.
    dim, epochs, negatives, lr, seed, closure, batch_size, burn_in, burn_in_factor,
    sampling_power, optimizer, init_range, dtype
        See :class:`EuclideanHierarchyConfig`.
    progress : callable, optional
        ``progress(epoch, epochs, mean_loss)`` after every epoch.

    Returns
    -------
    names : list of str
        Node names, sorted; row ``i`` of ``points`` is ``names[i]``.
    points : torch.Tensor
        ``(n_nodes, dim)``.
    stats : dict
        ``n_nodes``, ``n_edges``, ``n_closure_pairs``, ``n_train_pairs``, ``epochs``,
        ``seconds``, ``setup_seconds``, ``losses`` (mean per pair, per epoch), ``config``.
    """
    cfg = EuclideanHierarchyConfig(
        dim=dim,
        epochs=epochs,
        lr=lr,
        negatives=negatives,
        sampling_power=sampling_power,
        batch_size=batch_size,
        burn_in=burn_in,
        burn_in_factor=burn_in_factor,
        closure=closure,
        optimizer=optimizer,
        init_range=init_range,
        seed=seed,
        dtype=dtype,
    )
    t_setup = time.perf_counter()
    pairs = hierarchy_pairs(edges, cfg.closure, cfg.sampling_power)
    gen = torch.Generator().manual_seed(cfg.seed)
    weight = torch.empty(pairs.n, cfg.dim, dtype=cfg.torch_dtype)
    weight.uniform_(-cfg.init_range, cfg.init_range, generator=gen)
    opt = None
    if cfg.optimizer == "adam":
        weight = torch.nn.Parameter(weight)
        opt = torch.optim.Adam([weight], lr=cfg.lr)
    setup_seconds = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    losses = fit_pairs(
        pairs,
        weight,
        cfg,
        gen,
        _sgd_step,
        lambda emb: _hierarchy_batch_loss(emb, "mean"),
        opt,
        progress,
    )
    stats = fit_stats(pairs, cfg, losses, time.perf_counter() - t0, setup_seconds)
    return pairs.names, weight.detach().clone(), stats


def euclidean_reconstruction(
    names: Sequence[str],
    points: torch.Tensor,
    edges_closure: Iterable[tuple[str, str]],
    direction: Literal["forward", "backward", "both"] = "forward",
    chunk_elements: int = 1 << 23,
) -> dict[str, float]:
    """Mean rank and MAP of reconstructing ``edges_closure`` from Euclidean distances.

    The definitions of :func:`hyperim.pretrain.hierarchy.reconstruction_metrics` (which
    ranks by Poincaré distance): for each node ``u`` with neighbours ``N(u)``,
    ``rank(u, v) = 1 + |{w ∉ N(u) ∪ {u} : ‖u - w‖ < ‖u - v‖}|`` for every ``v ∈ N(u)``; the
    mean rank is over all pairs, MAP the mean over ``u`` of the average precision (the
    ``i``-th closest neighbour has precision ``i / (rank_i + i - 1)``). ``direction`` picks
    ``N(u)`` as there. ``points`` is ``(n, dim)``; distances are float64, in blocks of at most
    ``chunk_elements`` query × node entries.

    Returns
    -------
    dict
        ``{"mean_rank": float, "map": float, "n_queries": int, "n_pairs": int}``.
    """
    from hyperim.pretrain.hierarchy import reconstruction_metrics

    flat = points.detach().reshape(points.shape[0], 1, -1)
    return reconstruction_metrics(
        names,
        flat,
        edges_closure,
        direction=direction,
        chunk_elements=chunk_elements,
        geometry="euclidean",
    )
