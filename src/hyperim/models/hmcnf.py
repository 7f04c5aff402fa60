"""HMCN-F (Wehrmann, Cerri and Barros 2018, "Hierarchical Multi-Label Classification
Networks", ICML), the feed-forward variant, on XML-CNN text features: one of the paper's
baselines (§"Baselines").

Our paper: "The original HMCN-F can't take in the raw text data. To make HMCN-F more
competitive, CNN-based architecture similar to XML-CNN (Liu et al. 2017) is adopted to extract
the primary features. HMCN-F then fits its neural network layers to the label hierarchy, each
layer focuses on predicting the labels in the corresponding hierarchical level."

Features: words ``Θ^E ∈ R^{V×k}`` → :class:`hyperim.nn.xmlcnn.XMLCNNEncoder` (filter widths
2, 4, 8, dynamic max pooling, a 512-unit bottleneck) → ``x``. Then HMCN-F's equations, for
levels ``h = 1 … |H|`` (φ = ReLU, each hidden layer followed by dropout):

.. math::
    A_G^1 = φ(W_G^1 x), \\quad A_G^h = φ(W_G^h (A_G^{h−1} ⊕ x)), \\quad
    P_G = σ(W_G^{|H|+1} A_G^{|H|}) \\;\\text{over all labels}

    A_L^h = φ(W_T^h A_G^h), \\quad P_L^h = σ(W_L^h A_L^h) \\;\\text{over the labels of level } h

    P_F = β (P_L^1 ⊕ … ⊕ P_L^{|H|}) + (1 − β) P_G

    \\mathcal{L} = \\mathcal{L}_G + \\textstyle\\sum_h \\mathcal{L}_L^h + λ \\mathcal{L}_H, \\quad
    \\mathcal{L}_H = \\textstyle\\sum_i \\sum_o \\max(0, P_{F,io} − P_{F,i\\,par(o)})^2

(``⊕`` concatenation; the local outputs are concatenated in level order and put back in label
order). ``L_G`` and ``L_L^h`` are binary cross-entropies summed over labels and averaged over
documents, like Eq. (7) (:func:`hyperim.models.base.bce_loss`); ``L_H``, the hierarchical
violation penalty on the final predictions, is likewise averaged over documents. Inference
scores are the calibrated logits ``logit(P_F)``, computed in log space
(:func:`mixed_logits`), finite wherever the two flows' logits are.

Levels of a real hierarchy. HMCN-F assumes every path from a root passes through the same
levels; ours have paths of unequal length and may be DAGs. A label's level is the length of
its **longest** path from a root (:func:`hierarchy_levels`): then every parent sits at an
earlier layer of the global flow than each of its children, so a child's local output always
reads a layer that has already seen its parents' levels, in a DAG for each of its parents
(the shortest path would put a child with parents at depths 0 and 2 at level 1, before one of
its parents). A leaf of a short path is simply predicted at its own level; deeper levels hold
fewer labels. Labels absent from the hierarchy are level 1, as its roots. The penalty ``L_H``
applies per edge, so a child with several parents is held below each of them. With no
hierarchy (or no edges) every label is level 1: HMCN-F degenerates into one local output and
the global one over the same layer ``A_G^1``, mixed by β, and ``L_H = 0``. The levels' sizes
and the number of edges are fixed through :meth:`HMCNFModel.config_for_data` (saved in
``config.json``); the label levels and the edges are buffers of the model (saved with it).

Hyperparameters. HMCN-F's paper: 384 ReLU units per layer, dropout 0.6, β = 0.5, λ = 0.1.
Our paper (§"Hyperparameters"): word embedding dimension 300 (RCV1, WikiLSHTC), the default
here, affordable on this machine: the words start from vanilla GloVe trained on the training
split (``glove``; at 300-d on debtags 10.5 s an epoch of GloVe's 25 on one CPU thread, about
4½ minutes once per run, cached in ``run/pretrained``; training then takes 0.31 s a step of 64
documents), from Stanford's GloVe 6B 50-d (``glove6b``, with ``--word-dim 50``), a vectors
file, or at random. XML-CNN's paper: filter widths 2, 4, 8 and a 512-unit bottleneck. Scaled
for this machine (the issue's choice): 128 filters per width and ``p = 2`` chunks of dynamic
max pooling; the bottleneck's dropout 0.5 is the usual value, named by neither paper summary.
Not from either paper: the output biases start at each label's prior logit (``prior_bias``,
as every family of this library starts at the prior). The optimiser is the trainer's Adam
(lr 1e-3 by default). Training is bit-for-bit reproducible on the CPU; on CUDA, cuDNN may
choose a nondeterministic convolution backward unless ``torch.backends.cudnn.deterministic``
is set.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hyperim.errors import HyperIMError, check_all
from hyperim.models.base import ModelConfig, TextModel, TrainingData, bce_loss, prior_logits
from hyperim.models.starts import WORD_INITS, copy_rows, euclidean_word_table, word_init_ok
from hyperim.nn.xmlcnn import XMLCNNEncoder


@dataclass
class HMCNFConfig(ModelConfig):
    """Architecture of HMCN-F on XML-CNN features (its ``[model]`` table)."""

    word_dim: int = 300  # k: our paper's word embedding dimension for HMCN-F (RCV1)
    word_init: str = "glove"  # random | glove (training split) | glove6b | a vectors file
    word_init_scale: float = 0.1  # random start: uniform in ±scale per coordinate
    pretrained_words: int = 50_000  # glove6b: GloVe's most frequent words join the vocabulary
    filter_widths: str = "2,4,8"  # XML-CNN's convolution widths
    filters: int = 128  # per width
    pool_chunks: int = 2  # p of XML-CNN's dynamic max pooling
    bottleneck: int = 512  # XML-CNN's hidden layer: the x of HMCN-F
    encoder_dropout: float = 0.5  # XML-CNN's, on the bottleneck
    hidden: int = 384  # HMCN-F's units per global and local layer
    dropout: float = 0.6  # HMCN-F's, after each of its hidden layers
    beta: float = 0.5  # β: weight of the local outputs in P_F
    violation_weight: float = 0.1  # λ of the hierarchical violation penalty L_H
    prior_bias: bool = True  # output biases start at each label's prior logit
    # sizes the training data fixes (config_for_data), saved in config.json
    n_levels: int = 1  # |H|
    level_sizes: list[int] = field(default_factory=list)  # labels per level; [] = one level
    n_edges: int = 0  # parent-child pairs of L_H

    DATA_FIELDS: ClassVar[tuple[str, ...]] = (
        *ModelConfig.DATA_FIELDS,
        "n_levels",
        "level_sizes",
        "n_edges",
    )

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(w) for w in self.filter_widths.split(","))

    @property
    def sizes(self) -> list[int]:
        """Labels per level (one level of every label when the data fixed none)."""
        return list(self.level_sizes) or [self.n_labels]

    def validate(self) -> HMCNFConfig:
        try:
            widths_ok = len(self.widths) >= 1 and min(self.widths) >= 1
        except ValueError:
            widths_ok = False
        sizes = self.level_sizes
        checks = [
            (self.word_dim >= 1, "word_dim must be >= 1"),
            (self.word_init_scale > 0, "word_init_scale must be > 0"),
            (self.pretrained_words >= 0, "pretrained_words must be >= 0"),
            (
                word_init_ok(self.word_init),
                f"word_init must be one of {', '.join(WORD_INITS)} or a GloVe/word2vec file",
            ),
            (widths_ok, "filter_widths must be comma-separated integers >= 1, e.g. 2,4,8"),
            (self.filters >= 1, "filters must be >= 1"),
            (self.pool_chunks >= 1, "pool_chunks must be >= 1"),
            (self.bottleneck >= 1, "bottleneck must be >= 1"),
            (0 <= self.encoder_dropout < 1, "encoder_dropout must be in [0, 1)"),
            (self.hidden >= 1, "hidden must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.beta <= 1, "beta must be in [0, 1]"),
            (self.violation_weight >= 0, "violation_weight must be >= 0"),
            (self.n_levels >= 1, "n_levels must be >= 1"),
            (
                not sizes
                or (
                    len(sizes) == self.n_levels
                    and all(isinstance(s, int) and s >= 1 for s in sizes)
                    and sum(sizes) == self.n_labels
                ),
                "level_sizes must give n_levels counts >= 1 that sum to n_labels",
            ),
            (bool(sizes) or self.n_levels == 1, "n_levels > 1 needs level_sizes"),
            (self.n_edges >= 0, "n_edges must be >= 0"),
        ]
        check_all(checks)
        return self


# ---------------------------------------------------------------- the hierarchy's levels
def hierarchy_levels(hierarchy: Any, names: Sequence[str]) -> np.ndarray:
    """``(C,)`` 0-based level of each label ``names[i]``: the length of its longest path from a
    root (labels absent from ``hierarchy``, or no hierarchy: 0), renumbered so the levels the
    labels use are ``0 … |H|−1`` with none empty. Every parent's level is below each of its
    children's."""
    longest: dict[str, int] = {}
    if hierarchy is not None and hierarchy.edges:
        children: dict[str, list[str]] = {}
        waiting: dict[str, int] = {}  # parents whose level is not known yet
        for parent, child in hierarchy.edges:
            children.setdefault(parent, []).append(child)
            waiting[child] = waiting.get(child, 0) + 1
        nodes = sorted({n for edge in hierarchy.edges for n in edge})
        queue = deque(n for n in nodes if n not in waiting)  # Kahn's order: parents first
        longest = dict.fromkeys(queue, 0)
        while queue:
            label = queue.popleft()
            for child in children.get(label, []):
                longest[child] = max(longest.get(child, 0), longest[label] + 1)
                waiting[child] -= 1
                if waiting[child] == 0:
                    queue.append(child)
    raw = np.asarray([longest.get(n, 0) for n in names], dtype=np.int64)
    return np.unique(raw, return_inverse=True)[1].astype(np.int64).reshape(-1)


def hierarchy_edges(hierarchy: Any, names: Sequence[str]) -> np.ndarray:
    """``(E, 2)`` ``(parent id, child id)`` of the hierarchy's edges between labels of
    ``names`` (a DAG's child appears once per parent), sorted; ``(0, 2)`` without any."""
    index = {name: i for i, name in enumerate(names)}
    pairs = sorted(
        (index[p], index[c])
        for p, c in (hierarchy.edges if hierarchy is not None else [])
        if p in index and c in index
    )
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


# ---------------------------------------------------------------- HMCN-F's outputs and loss
def mixed_logits(
    global_logits: torch.Tensor, local_logits: torch.Tensor, beta: float
) -> torch.Tensor:
    """``logit(P_F)`` with ``P_F = β σ(z_L) + (1 − β) σ(z_G)``, from ``log P_F`` and
    ``log(1 − P_F)`` as log-sum-exps of log-sigmoids: exact and finite where ``z_L``, ``z_G``
    are (no clamping of ``P_F`` near 0 or 1)."""
    log_b = math.log(beta) if beta > 0 else -math.inf
    log_1b = math.log1p(-beta) if beta < 1 else -math.inf
    logsig = nn.functional.logsigmoid
    log_p = torch.logaddexp(log_b + logsig(local_logits), log_1b + logsig(global_logits))
    log_q = torch.logaddexp(log_b + logsig(-local_logits), log_1b + logsig(-global_logits))
    return log_p - log_q


def violation_penalty(p_final: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """``L_H = Σ_i Σ_(par, o) max(0, P_io − P_i,par)²`` over the edges ``(E, 2)``, averaged over
    the ``B`` documents of ``p_final`` ``(B, C)``; 0 when every child is at most its parent."""
    if edges.shape[0] == 0:
        return p_final.new_zeros(())
    by_label = p_final.t()  # (C, B): rows by label, for embedding's deterministic backward
    parent = nn.functional.embedding(edges[:, 0], by_label)  # (E, B)
    child = nn.functional.embedding(edges[:, 1], by_label)  # (E, B)
    return torch.relu(child - parent).square().sum() / p_final.shape[0]


class HMCNFLayers(nn.Module):
    """HMCN-F's global flow and its local outputs over ``x`` ``(B, d)``: returns the global and
    local logits ``(B, C)`` in label order (the σ is in the loss and in :func:`mixed_logits`).

    ``label_level`` ``(C,)`` (buffer) places the labels: level ``h``'s local output
    ``W_L^h`` has one row per label of level ``h``, in label-id order."""

    def __init__(
        self, in_dim: int, hidden: int, level_sizes: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        n_labels = sum(level_sizes)
        self.level_sizes = list(level_sizes)
        self.global_layers = nn.ModuleList(  # W_G^1 … W_G^|H|
            nn.Linear(in_dim if h == 0 else hidden + in_dim, hidden)
            for h in range(len(level_sizes))
        )
        self.global_out = nn.Linear(hidden, n_labels)  # W_G^{|H|+1}
        self.transitions = nn.ModuleList(  # W_T^h
            nn.Linear(hidden, hidden) for _ in level_sizes
        )
        self.local_outs = nn.ModuleList(nn.Linear(hidden, n) for n in level_sizes)  # W_L^h
        self.dropout = nn.Dropout(dropout)
        levels = torch.repeat_interleave(torch.tensor(self.level_sizes, dtype=torch.long))
        self.register_buffer("label_level", levels)  # (C,) 0-based; filled from the data

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_global = x.new_zeros(x.shape[0], 0)  # (B, 0): A_G^0 is empty
        local = []
        for layer, transition, out in zip(
            self.global_layers, self.transitions, self.local_outs, strict=True
        ):
            a_global = self.dropout(torch.relu(layer(torch.cat([a_global, x], dim=1))))  # A_G^h
            a_local = self.dropout(torch.relu(transition(a_global)))  # (B, hidden): A_L^h
            local.append(out(a_local))  # (B, C_h): logits of P_L^h
        global_logits = self.global_out(a_global)  # (B, C): logits of P_G
        by_level = torch.cat(local, dim=1)  # (B, C): P_L^1 ⊕ … ⊕ P_L^|H|, in level order
        order = torch.argsort(self.label_level, stable=True)  # (C,) label ids, level order
        local_logits = by_level.new_empty(by_level.shape).index_copy(1, order, by_level)
        return global_logits, local_logits

    @torch.no_grad()
    def start_biases_at(self, prior: torch.Tensor) -> None:
        """Output biases of every label (global and local) at ``prior`` ``(C,)``."""
        self.global_out.bias.copy_(prior.to(self.global_out.bias))
        order = torch.argsort(self.label_level, stable=True)
        for out, ids in zip(self.local_outs, order.split(self.level_sizes), strict=True):
            out.bias.copy_(prior[ids].to(out.bias))


class HMCNFModel(TextModel):
    """``forward(tokens, mask, None, targets (B, C)) -> (logit(P_F), L_G + Σ_h L_L^h + λ L_H)``."""

    model_type = "hmcnf"
    config_class = HMCNFConfig
    scores_every_label = True  # L_G and L_H need every label's output

    @classmethod
    def extra_vocabulary(cls, config: HMCNFConfig) -> list[str]:  # type: ignore[override]
        from hyperim.pretrain.vectors import glove6b_vocabulary

        return glove6b_vocabulary(config.word_init, config.pretrained_words)

    @classmethod
    def config_for_data(cls, config: ModelConfig, data: TrainingData) -> ModelConfig:
        """Levels (:func:`hierarchy_levels`) and edges of the data's hierarchy."""
        names = data.labels.labels
        sizes = np.bincount(hierarchy_levels(data.hierarchy, names)).tolist()
        return replace(
            config,
            n_levels=len(sizes),
            level_sizes=sizes,
            n_edges=len(hierarchy_edges(data.hierarchy, names)),
        )

    def __init__(self, config: HMCNFConfig) -> None:
        super().__init__()
        c = self.config = config
        self.words = nn.Parameter(torch.empty(c.vocab_size, c.word_dim))  # Θ^E
        self.encoder = XMLCNNEncoder(
            c.word_dim, c.widths, c.filters, c.pool_chunks, c.bottleneck, c.encoder_dropout
        )
        self.hmcn = HMCNFLayers(self.encoder.out_dim, c.hidden, c.sizes, c.dropout)
        self.register_buffer("edges", torch.zeros(c.n_edges, 2, dtype=torch.long))  # (E, 2)
        with torch.no_grad():
            self.words.uniform_(-c.word_init_scale, c.word_init_scale)

    def outputs(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Global and local logits ``(B, C)`` of a batch of documents."""
        words = nn.functional.embedding(tokens, self.words)  # (B, T, k); deterministic backward
        return self.hmcn(self.encoder(words, mask))  # x: (B, bottleneck)

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` calibrated logits ``logit(P_F)``: HMCN-F's last layers are over every
        label, so its one pass per batch gives them all."""
        return mixed_logits(*self.outputs(tokens, mask), self.config.beta)

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if labels is not None and targets is not None:
            raise ValueError("HMCN-F's loss needs every label: labels=None, targets (B, C)")
        global_logits, local_logits = self.outputs(tokens, mask)  # (B, C) each
        logits = mixed_logits(global_logits, local_logits, self.config.beta)  # (B, C)
        if labels is not None:
            logits = logits.gather(1, labels)  # (B, L)
        if targets is None:
            return logits, None
        beta = self.config.beta
        p_final = beta * torch.sigmoid(local_logits) + (1 - beta) * torch.sigmoid(global_logits)
        loss = bce_loss(global_logits, targets, None) + bce_loss(local_logits, targets, None)
        if self.config.violation_weight > 0:
            loss = loss + self.config.violation_weight * violation_penalty(p_final, self.edges)
        return logits, loss

    def score_chunk(self, encoded: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return encoded[:, lo:hi]

    def score_subset(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return encoded.gather(1, labels)

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        """Adam for everything: Θ^E at ``word_lr`` (default ``lr``), HMCN-F's layers at
        ``head_lr`` (default ``lr``), XML-CNN at ``lr`` (``hyper_lr`` has nothing to act on)."""
        from hyperim.optim import euclidean_optimizers

        return euclidean_optimizers(self, train_config, self.words, self.hmcn)

    # ---------------------------------------------------------------- starts
    def init_from_data(self, data: TrainingData) -> None:
        c = self.config
        names = data.labels.labels
        levels = hierarchy_levels(data.hierarchy, names)
        edges = hierarchy_edges(data.hierarchy, names)
        if np.bincount(levels).tolist() != c.sizes or len(edges) != c.n_edges:
            raise HyperIMError(
                "hmcnf: the config's levels do not match the data's hierarchy "
                "(build the model from HMCNFModel.config_for_data)"
            )
        with torch.no_grad():
            self.hmcn.label_level.copy_(torch.from_numpy(levels))
            self.edges.copy_(torch.from_numpy(edges))
        if c.prior_bias:
            self.hmcn.start_biases_at(prior_logits(data.label_lists, c.n_labels, c.logit_offset))
        table = euclidean_word_table(c.word_init, c.word_dim, data, dim_option="word_dim")
        if table is not None:
            copy_rows(self.words, *table)
