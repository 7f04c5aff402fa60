"""Riemannian Adam that updates large embedding tables a block of rows at a time.

geoopt's :class:`~geoopt.optim.RiemannianAdam` updates a whole parameter at once, and its
update (Riemannian gradient, moments, direction, retraction, transport) makes about a dozen
temporaries the size of the parameter. For the word table Θ^E (30,000 words × 75 × 2 at the
RCV1 shape) that is about 300 MiB of transient memory per step, more than the rest of a
training step needs. Every operation of the update acts on each point (row) separately, so
doing it on blocks of rows gives the same numbers, bit for bit (tested), with temporaries
bounded by the block.

A group marked ``"rows": "touched"`` is updated lazily, row by row where the gradient is not
zero (the words of the batch), as :class:`torch.optim.SparseAdam` and TensorFlow's LazyAdam do
for embedding tables: a word absent from the batch keeps its point and its moments, instead of
drifting on its momentum. Its bias corrections count the group's steps. A batch of debtags
holds about 2,000 of the table's 30,000-80,000 words, and the dense update of the whole table
was a quarter to a half of a training step (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from typing import Any

import geoopt
import torch
from geoopt.tensor import ManifoldParameter, ManifoldTensor

#: Rows per block: blocks of ``ROWS × n_balls × ball_dim`` (2.4 MiB at 4096 × 75 × 2 float32).
ROWS = 4096


class RiemannianAdam(geoopt.optim.RiemannianAdam):
    """geoopt's Riemannian Adam (same arguments, state and results), applied in row blocks of
    at most ``rows`` for parameters with more rows than that."""

    def __init__(self, params, *args, rows: int = ROWS, **kwargs) -> None:
        super().__init__(params, *args, **kwargs)
        self.rows = rows
        for group in self.param_groups:
            group.setdefault("rows", "all")
            if group["rows"] not in ("all", "touched"):
                raise ValueError(f"rows must be 'all' or 'touched', got {group['rows']!r}")

    def load_state_dict(self, state_dict) -> None:
        """As torch's, but each ``step`` stays the Python int the update counts with.

        ``torch.optim.Adam.__setstate__`` (geoopt's Riemannian Adam is an Adam) turns every
        ``step`` into a float32 tensor, which makes the bias corrections ``1 - β**step`` float32
        tensors instead of Python floats: the first update after a resume then differed from
        an uninterrupted run's in the last bit, and the runs drifted apart."""
        super().load_state_dict(state_dict)
        for state in self.state.values():
            if torch.is_tensor(state.get("step")):
                state["step"] = int(state["step"].item())

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            stabilize = False
            for point in group["params"]:
                grad = point.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise RuntimeError("RiemannianAdam does not support sparse gradients")
                if isinstance(point, (ManifoldParameter, ManifoldTensor)):
                    manifold = point.manifold
                else:
                    manifold = self._default_manifold
                state = self.state[point]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(point)
                    state["exp_avg_sq"] = torch.zeros_like(point)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(point)
                state["step"] += 1
                keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
                if group["rows"] == "touched" and point.dim() >= 2:
                    self._update_touched(group, manifold, state, keys, point, grad)
                    continue
                blocks = [slice(None)]
                if point.dim() >= 2 and point.shape[0] > self.rows:
                    blocks = [slice(i, i + self.rows) for i in range(0, point.shape[0], self.rows)]
                for rows in blocks:
                    self._update(
                        group, manifold, state["step"], point[rows], grad[rows],
                        *(state[k][rows] for k in keys),
                    )  # fmt: skip
                if group["stabilize"] is not None and state["step"] % group["stabilize"] == 0:
                    stabilize = True
            if stabilize:
                self.stabilize_group(group)
        return loss

    def _update_touched(self, group, manifold, state, keys, point, grad) -> None:
        """The update of the rows whose gradient is not zero, gathered, updated as
        :meth:`_update` does (a row's numbers are those of the dense update of that row), and
        written back; the other rows and their moments stay as they are."""
        touched = grad.reshape(grad.shape[0], -1).ne(0).any(dim=1).nonzero().squeeze(1)
        for lo in range(0, len(touched), self.rows):
            rows = touched[lo : lo + self.rows]
            parts = [point[rows], grad[rows], *(state[k][rows] for k in keys)]
            self._update(group, manifold, state["step"], *parts)
            point.index_copy_(0, rows, parts[0])
            for k, part in zip(keys, parts[2:], strict=True):
                state[k].index_copy_(0, rows, part)

    @staticmethod
    def _update(group, manifold, step: int, point, grad, exp_avg, exp_avg_sq, max_sq=None):
        """geoopt's update, in place on views of one block of rows (same operations, same
        order, so the same rounding)."""
        beta1, beta2 = group["betas"]
        grad = grad.add(point, alpha=group["weight_decay"])
        grad = manifold.egrad2rgrad(point, grad)
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).add_(manifold.component_inner(point, grad), alpha=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        if max_sq is not None:
            torch.max(max_sq, exp_avg_sq, out=max_sq)
            denom = max_sq.div(bias_correction2).sqrt_()
        else:
            denom = exp_avg_sq.div(bias_correction2).sqrt_()
        direction = exp_avg.div(bias_correction1) / denom.add_(group["eps"])
        new_point, exp_avg_new = manifold.retr_transp(point, -group["lr"] * direction, exp_avg)
        point.copy_(new_point)
        exp_avg.copy_(exp_avg_new)


def make_optimizers(
    model: torch.nn.Module,
    lr: float,
    hyper_lr: float | None = None,
    word_lr: float | None = None,
    head_lr: float | None = None,
    *,
    words: torch.nn.Parameter | None = None,
    head: torch.nn.Module | None = None,
    lazy_words: bool = False,
    weight_decay: float = 0.0,
) -> list[torch.optim.Optimizer]:
    """Riemannian Adam for ``ManifoldParameter``s, Adam for the Euclidean rest at ``lr``; the
    groups a family's ``configure_optimizers`` builds from its word table and head.

    Riemannian Adam is :class:`RiemannianAdam`: geoopt's, applied to blocks of rows, so the
    word table's update needs little transient memory. A model without manifold parameters
    gets Adam alone.

    The word table ``words`` forms its own group at ``word_lr`` (default ``hyper_lr`` when it
    is hyperbolic, ``lr`` when it is Euclidean). Each word only gets a gradient in the batches
    that contain it, so at the paper's lr 1e-3 most word vectors barely leave their initial
    position; a larger ``word_lr`` lets them learn. The other hyperbolic parameters (Θ^L, the
    GRU biases) use ``hyper_lr`` (default ``lr``). With ``lazy_words`` a hyperbolic word table
    is updated only where the batch's words are (``rows = "touched"``, above).

    Within Adam the prediction layers of Eq. (6) (``head``, less its per-label bias) form their
    own group at ``head_lr`` (default ``lr``): their inputs, the scores ``s_i``, are all about
    equally negative, so one Adam step moves every weight of ``W^f`` the same way and shifts
    every logit by about ``lr · |s| · T``.

    ``weight_decay`` > 0 decays the Euclidean weight matrices (``ndim >= 2``: the GRU's and
    Eq. (6)'s) decoupled from the gradient, as AdamW: ``θ <- θ (1 - lr · weight_decay)`` each
    step; biases, the label bias and embedding tables are not decayed (each such group is
    split in two). At 0 the groups are those of earlier versions, so their checkpoints resume.
    """
    hyper_lr = hyper_lr or lr
    params = list(model.parameters())
    riemannian = words is not None and isinstance(words, ManifoldParameter)
    hyper = [p for p in params if isinstance(p, ManifoldParameter) and p is not words]
    eucl = [p for p in params if not isinstance(p, ManifoldParameter)]
    head_ids: set[int] = set()
    if head is not None:
        skip = {id(getattr(head, "label_bias", None))}
        head_ids = {id(p) for p in head.parameters() if id(p) not in skip}
    eucl_words = words is not None and not riemannian
    rest = [p for p in eucl if id(p) not in head_ids and not (eucl_words and p is words)]
    bias = getattr(head, "label_bias", None)
    if bias is not None:  # first, as when it was the model's own: older checkpoints resume
        rest = [bias, *(p for p in rest if p is not bias)]
    eucl_groups = [{"params": rest, "lr": lr}]
    if eucl_words:
        eucl_groups.insert(0, {"params": [words], "lr": word_lr or lr})
    if head_ids:
        eucl_groups.append({"params": [p for p in eucl if id(p) in head_ids], "lr": head_lr or lr})
    if weight_decay > 0:
        eucl_groups = [part for g in eucl_groups for part in _split_decayed(g, weight_decay, words)]
    adam = torch.optim.Adam(eucl_groups, lr=lr, decoupled_weight_decay=weight_decay > 0)
    if not (hyper or riemannian):
        return [adam]
    groups = [{"params": hyper, "lr": hyper_lr}]
    if riemannian:
        rows = "touched" if lazy_words else "all"
        groups.insert(0, {"params": [words], "lr": word_lr or hyper_lr, "rows": rows})
    return [RiemannianAdam(groups, lr=hyper_lr), adam]


def euclidean_optimizers(
    model: torch.nn.Module,
    train_config: Any,
    words: torch.nn.Parameter,
    head: torch.nn.Module | None = None,
) -> list[torch.optim.Optimizer]:
    """:func:`make_optimizers` of a family without hyperbolic parameters, from the training
    options (a :class:`~hyperim.config.TrainConfig`): Adam with the word table at ``word_lr``,
    ``head`` (if any) at ``head_lr``, the rest at ``lr``, and ``weight_decay``
    (``hyper_lr`` and ``lazy_word_updates`` have nothing to act on)."""
    t = train_config
    return make_optimizers(
        model, t.lr, None, t.word_lr, t.head_lr, words=words, head=head,
        weight_decay=t.weight_decay,
    )  # fmt: skip


def _split_decayed(
    group: dict, weight_decay: float, words: torch.nn.Parameter | None
) -> list[dict]:
    """``group`` as its decayed weight matrices (not ``words``) and the rest (empty parts
    dropped)."""
    decay, keep = [], []
    for p in group["params"]:
        (decay if p.ndim >= 2 and p is not words else keep).append(p)
    parts = [
        {**group, "params": decay, "weight_decay": weight_decay},
        {**group, "params": keep, "weight_decay": 0.0},
    ]
    return [g for g in parts if g["params"]]


#: Learning-rate schedules over a run's training steps (:func:`lr_factor`).
SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(step: int, total: int, warmup: int = 0, schedule: str = "constant") -> float:
    """The factor on every group's learning rate at training step ``step`` (0-based) of
    ``total``: a linear warm-up ``(step + 1) / warmup`` over the first ``warmup`` steps, then

    - ``constant``: 1 (the paper's Adam at a fixed rate);
    - ``cosine``: ``(1 + cos(π t)) / 2``, ``t = (step - warmup) / (total - warmup)``;
    - ``linear``: ``1 - t``.

    A pure function of the step, so a resumed run continues the same schedule.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    t = min(1.0, (step - warmup) / (total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * t)) if schedule == "cosine" else 1.0 - t


def scale_learning_rates(optimizers: list[torch.optim.Optimizer], factor: float) -> None:
    """Set each group's ``lr`` to ``factor`` times its ``initial_lr`` (recorded the first
    time: the rate the group was built with)."""
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
