"""DXML: Zhang, Yan, Wang and Zha 2018, "Deep Extreme Multi-label Learning" (ICMR), a baseline.

Our paper (§"Baselines") summarises it: "SLEEC and DXML are two label-embedding methods ...
DXML uses DeepWalk (Perozzi, Al-Rfou, and Skiena 2014) to embed the label co-occurrence graph
into vectors, and uses neural networks to map the features into the embedding space", with
"embedding dimension 100 for RCV1" (§"Hyperparameters").

The two stages of DXML, as built here:

1. **Label embedding** (:mod:`hyperim.pretrain.deepwalk`, in :meth:`DXMLModel.init_from_data`,
   cached in the run's ``pretrained/``): the graph of the labels with an edge between two
   labels that share a training document, weighted by the number of such documents; DeepWalk's
   truncated random walks (``walks_per_label`` 10 of ``walk_length`` 40 nodes, DeepWalk's),
   skip-gram with hierarchical softmax over them (gensim, window 5, DeepWalk's), into
   ``v_j ∈ R^d``, ``d = dim`` = 100 (our paper's). Walks step in proportion to the edge counts
   (``weighted_walks``; DeepWalk's uniform steps with ``--no-weighted-walks``); labels without a
   neighbour get a random direction (:mod:`hyperim.pretrain.deepwalk` says why and how). The
   table is scaled to a root mean square norm of 1: skip-gram's scale depends on how long it
   trained (about 0.2 on a graph of 6 labels, 1.4 on debtags'), not on the graph, and with the
   scale fixed the smooth-L1 bend at 1 and the start of ``α`` (below) mean the same on every
   dataset.
2. **The non-linear mapping** ``f: x ↦ R^d`` of a document into that space. DXML's inputs are
   bag-of-words feature vectors ``x`` (TF-IDF in the extreme-classification repository's
   datasets) and its first layer is linear, ``W_1 x``; with ``W_1``'s columns as word vectors
   that is a TF-IDF-weighted bag of word embeddings. So a document of tokens ``w_1..w_T``
   (``pooling = "tfidf"``; ``"mean"``: all weights 1) is

   .. math::
      h_0 = \\frac{\\sum_t \\mathrm{idf}(w_t)\\, e_{w_t}}{\\sum_t \\mathrm{idf}(w_t)},\\quad
      h_k = \\mathrm{dropout}(\\mathrm{ReLU}(W_k h_{k-1} + c_k)),\\quad
      f(x) = W_o h_K + c_o,

   ``idf(w) = log((1 + N) / (1 + df(w))) + 1`` over the ``N`` training documents (fixed), the
   words ``e_w`` started from ``word_init`` (:mod:`hyperim.models.starts`; default GloVe
   trained on the training split), ``K = hidden_layers`` layers of ``hidden_dim`` units.

DXML trains ``f`` so that a document's point lies on the mean of its labels' vectors, with the
smooth-L1 (Huber) loss, summed over the ``d`` coordinates:

.. math::
   \\bar v_i = \\frac{1}{|Y_i|}\\sum_{j \\in Y_i} v_j,\\qquad
   \\ell_{\\mathrm{DXML}} = \\sum_{k=1}^{d} \\begin{cases} \\tfrac12 r_k^2 & |r_k| < 1 \\\\
   |r_k| - \\tfrac12 & \\text{otherwise} \\end{cases},\\quad r = f(x_i) - \\bar v_i,

and predicts as SLEEC does, from the training documents nearest to ``f(x)`` (within a
cluster). Our protocol asks every family for one calibrated logit per label, so a label is
scored by how close the document's point is to its vector, the inner product, times a learned
scale ``α = exp(γ)``, plus a per-label bias started at the label's prior (``label_bias``):

.. math::
   s_j(x) = \\alpha\\, v_j^\\top f(x) + b_j,\\qquad
   \\mathcal{L} = \\mathcal{L}_{(7)}(s) + \\lambda\\, \\ell_{\\mathrm{DXML}},

the loss of our Eq. (7) (BCE over the document's labels and its sampled negatives,
:func:`hyperim.models.base.bce_loss`) for calibrated scores, plus DXML's own term weighted by
``regression_weight`` λ (1 by default; 0: Eq. 7 alone). The mean ``v̄_i`` needs only the
document's labels, which every training batch holds (the sampled negatives are extra), so
DXML samples negatives like HyperIM (``scores_every_label`` is False). The scale ``α``
(started at ``scale_init`` 5) is what lets both terms hold: DXML's term keeps ``f(x)`` near
``v̄_i``, whose inner products with the unit-RMS label vectors lie within about ±1, so without
it the logits could move from the prior by about 1 only, or leave DXML's target to move more.

The label vectors stay fixed (``label_trainable`` False), as in DXML, where DeepWalk's
embedding is made first and is the target the network regresses on; ``--label-trainable``
fine-tunes them with both terms of the loss. DXML does not use the label hierarchy: the
dataset's, if any, is ignored, and a dataset without one trains alike.

Evidence words (:meth:`DXMLModel.word_label_scores`): the score ``α v_j^T f(e_{w_t})`` that the
word ``w_t`` alone would give the label (a one-word document's pooled vector is its word's
embedding, whatever the pooling), without the bias, which is the same for every word.

Defaults and where they come from: ``dim`` 100 (our paper, DXML on RCV1); the walks, window and
skip-gram epochs (DeepWalk's published implementation); the mean-of-label-vectors target and
the smooth-L1 loss, ``hidden_dim`` 256 and ``dropout`` 0.2 (DXML's paper as its public
reimplementations implement it, for the data sets with a 100-d label space; the paper's own
text was not at hand when this was written); ``hidden_layers`` 2 (two hidden ReLU layers);
``word_dim`` 100 (our paper gives none for DXML, whose inputs are feature vectors: 100 as the
label space, and GloVe on the training split stays cheap at that size); ``scale_init`` 5 and
``regression_weight`` 1 (ours: logits ±5 at inner products ±1; both terms at full weight).
Scaled for this machine: nothing; the network is small (about 0.1 M weights besides the word
table). DXML's optimiser (SGD with momentum) is the trainer's Adam, as for every family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperim.errors import check_all
from hyperim.models.base import ModelConfig, TextModel, TrainingData, bce_loss, prior_logits
from hyperim.models.starts import (
    WORD_INITS,
    cached_table,
    copy_rows,
    euclidean_word_table,
    word_init_ok,
)

#: Document representations: TF-IDF-weighted or plain mean of the word embeddings.
POOLINGS = ("tfidf", "mean")


@dataclass
class DXMLConfig(ModelConfig):
    """DXML's label space, its mapping network and its DeepWalk (its ``[model]`` table)."""

    dim: int = 100  # d of the label space: our paper's DXML on RCV1
    word_dim: int = 100
    hidden_dim: int = 256
    hidden_layers: int = 2
    dropout: float = 0.2
    pooling: str = "tfidf"  # tfidf | mean
    regression_weight: float = 1.0  # λ of DXML's smooth-L1 term; 0 = Eq. (7) alone
    label_trainable: bool = False  # DXML: DeepWalk's vectors are fixed targets
    label_bias: bool = True  # b_j, started at the label prior
    scale_init: float = 5.0  # α's start: logits b_j ± 5 at inner products ± 1
    walks_per_label: int = 10  # DeepWalk's γ
    walk_length: int = 40  # DeepWalk's t
    window: int = 5  # DeepWalk's skip-gram window w
    walk_epochs: int = 5  # skip-gram passes over the walks (gensim's default)
    weighted_walks: bool = True  # steps in proportion to co-occurrence counts
    word_init: str = "glove"  # random | glove (training split) | glove6b | a vectors file
    word_init_scale: float = 0.1  # random start: uniform in ±scale per coordinate
    pretrained_words: int = 50_000  # glove6b: GloVe's most frequent words join the vocabulary

    def validate(self) -> DXMLConfig:
        checks = [
            (self.dim >= 1, "dim must be >= 1"),
            (self.word_dim >= 1, "word_dim must be >= 1"),
            (self.hidden_dim >= 1, "hidden_dim must be >= 1"),
            (self.hidden_layers >= 0, "hidden_layers must be >= 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.pooling in POOLINGS, f"pooling must be one of {', '.join(POOLINGS)}"),
            (self.regression_weight >= 0, "regression_weight must be >= 0"),
            (self.scale_init > 0, "scale_init must be > 0"),
            (self.walks_per_label >= 1, "walks_per_label must be >= 1"),
            (self.walk_length >= 2, "walk_length must be >= 2"),
            (self.window >= 1, "window must be >= 1"),
            (self.walk_epochs >= 1, "walk_epochs must be >= 1"),
            (self.word_init_scale > 0, "word_init_scale must be > 0"),
            (self.pretrained_words >= 0, "pretrained_words must be >= 0"),
            (
                word_init_ok(self.word_init),
                f"word_init must be one of {', '.join(WORD_INITS)} or a GloVe/word2vec file",
            ),
        ]
        check_all(checks)
        return self


class DXMLModel(TextModel):
    """``forward(tokens, mask, labels, targets, target_mask) -> (logits, loss)``: documents
    mapped into DeepWalk's label space, labels scored by inner products (module docstring)."""

    model_type = "dxml"
    config_class = DXMLConfig

    @classmethod
    def extra_vocabulary(cls, config: DXMLConfig) -> list[str]:  # type: ignore[override]
        from hyperim.pretrain.vectors import glove6b_vocabulary

        return glove6b_vocabulary(config.word_init, config.pretrained_words)

    def __init__(self, config: DXMLConfig) -> None:
        super().__init__()
        c = self.config = config
        self.words = nn.Parameter(torch.empty(c.vocab_size, c.word_dim))  # e_w
        # idf(w) of the training split (init_from_data); saved with the model
        self.register_buffer("idf", torch.ones(c.vocab_size))
        layers: list[nn.Module] = []
        width = c.word_dim
        for _ in range(c.hidden_layers):
            layers += [nn.Linear(width, c.hidden_dim), nn.ReLU(), nn.Dropout(c.dropout)]
            width = c.hidden_dim
        self.hidden = nn.Sequential(*layers)  # h_0 -> h_K
        self.out = nn.Linear(width, c.dim)  # h_K -> f(x)
        # v_j: DeepWalk's vectors (init_from_data), fixed unless label_trainable
        self.labels = nn.Parameter(torch.empty(c.n_labels, c.dim), requires_grad=c.label_trainable)
        self.label_bias = nn.Parameter(torch.zeros(c.n_labels)) if c.label_bias else None
        # log α: the inner products' learned scale (DXML's space fixes the scale of f(x))
        self.log_scale = nn.Parameter(torch.tensor(math.log(c.scale_init)))
        with torch.no_grad():
            self.words.uniform_(-c.word_init_scale, c.word_init_scale)
            self.labels.normal_(0.0, 1.0 / c.dim**0.5)

    # ---------------------------------------------------------------- the mapping f
    def project(self, h0: torch.Tensor) -> torch.Tensor:
        """``(..., word_dim) -> (..., dim)``: the network from ``h_0`` to ``f(x)``."""
        return self.out(self.hidden(h0))

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> Any:
        """``(f(x) (B, d), word embeddings (B, T, word_dim), mask (B, T))``."""
        e = nn.functional.embedding(tokens, self.words)  # (B, T, word_dim); deterministic backward
        weight = mask.to(e.dtype)  # (B, T)
        if self.config.pooling == "tfidf":
            weight = weight * self.idf[tokens]
        total = weight.sum(1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)  # (B, 1)
        h0 = torch.bmm((weight / total)[:, None, :], e).squeeze(1)  # (B, word_dim); 0 if empty
        return self.project(h0), e, mask

    def _scores(self, point: torch.Tensor, labels: torch.Tensor | slice | None) -> torch.Tensor:
        """``α v_j^T f(x) + b_j`` for ``labels``: all (None), a slice (shared by the batch) or
        ``(B, L)`` ids; ``(B, C | hi - lo | L)``."""
        if labels is None or isinstance(labels, slice):
            part = slice(None) if labels is None else labels
            logits = point @ self.labels[part].T  # (B, C')
        else:
            logits = torch.einsum("bd,bld->bl", point, self.labels[labels])  # (B, L)
            part = labels
        logits = logits * self.log_scale.exp()
        if self.label_bias is not None:
            logits = logits + self.label_bias[part]
        return logits

    def regression_loss(
        self,
        point: torch.Tensor,  # (B, d) f(x)
        labels: torch.Tensor | None,  # (B, L) ids, None = all labels
        positive: torch.Tensor,  # (B, L | C) 1 at the document's labels
    ) -> torch.Tensor:
        """DXML's term: smooth-L1 of ``f(x) - v̄`` summed over coordinates, averaged over the
        batch (a document without labels has no target and adds 0)."""
        v = self.labels if labels is None else self.labels[labels]  # (C, d) | (B, L, d)
        summed = positive @ v if labels is None else torch.einsum("bl,bld->bd", positive, v)
        count = positive.sum(1, keepdim=True)  # (B, 1)
        centre = summed / count.clamp_min(1)  # v̄_i
        huber = nn.functional.smooth_l1_loss(point, centre, reduction="none", beta=1.0).sum(1)
        return (huber * (count.squeeze(1) > 0).to(huber.dtype)).sum() / point.shape[0]

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        point, _, _ = self.encode_batch(tokens, mask)  # (B, d)
        logits = self._scores(point, labels)  # (B, L | C)
        if targets is None:
            return logits, None
        loss = bce_loss(logits, targets, target_mask)  # Eq. (7)
        weight = self.config.regression_weight
        if weight > 0:
            positive = targets.to(point.dtype)
            if target_mask is not None:
                positive = positive * target_mask
            loss = loss + weight * self.regression_loss(point, labels, positive)
        return logits, loss

    def score_chunk(self, encoded: Any, lo: int, hi: int) -> torch.Tensor:
        point, _, _ = encoded
        return self._scores(point, slice(lo, hi)) + self.config.logit_offset

    def score_subset(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        point, _, _ = encoded
        return self._scores(point, labels) + self.config.logit_offset

    def word_label_scores(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        """``(B, L, T)``: ``α v_j^T f(e_{w_t})``, the label's score (less its bias) of the
        document made of the word at ``t`` alone; padding positions are masked by the caller."""
        _, e, _ = encoded
        alone = self.project(e)  # (B, T, d)
        return torch.einsum("btd,bld->blt", alone, self.labels[labels]) * self.log_scale.exp()

    def label_points(self) -> tuple[str, torch.Tensor]:
        return "euclidean", self.labels

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        """Adam for everything: the word table at ``word_lr`` (default ``lr``), the rest at
        ``lr`` (``hyper_lr`` and ``head_lr`` have nothing to act on); fixed label vectors get
        no gradient and are never updated."""
        from hyperim.optim import euclidean_optimizers

        return euclidean_optimizers(self, train_config, self.words)

    # ---------------------------------------------------------------- starts
    def init_from_data(self, data: TrainingData) -> None:
        """The label prior in ``b_j`` (with ``f`` started at 0, so logits start at the prior),
        ``idf`` of the training split, DeepWalk's label vectors, the word start."""
        c = self.config
        with torch.no_grad():
            if self.label_bias is not None:
                prior = prior_logits(data.label_lists, c.n_labels, c.logit_offset)
                self.label_bias.copy_(prior.to(self.label_bias))
                self.out.weight.zero_()
                self.out.bias.zero_()
            self.idf.copy_(torch.from_numpy(document_idf(data.documents, data.vocab, c.max_len)))
        table, found = deepwalk_table(c, data)
        # skip-gram's scale depends on how long it trained, not on the graph: RMS norm 1
        rms = float(np.sqrt((table**2).sum(1).mean()))
        copy_rows(self.labels, table / max(rms, 1e-12), found)
        table = euclidean_word_table(c.word_init, c.word_dim, data, "word_dim")
        if table is not None:
            copy_rows(self.words, *table)


def document_idf(documents: Sequence[Sequence[str]], vocab: Any, max_len: int) -> np.ndarray:
    """``(V,)`` smoothed inverse document frequency ``log((1 + N) / (1 + df)) + 1`` of each id
    over the first ``max_len`` tokens of the ``N`` documents (what the model reads; unknown
    tokens count as ``<unk>``)."""
    df = np.zeros(len(vocab), dtype=np.int64)
    for doc in documents:
        df[np.unique(np.asarray(vocab.encode(doc, max_len), dtype=np.int64))] += 1
    return (np.log((1.0 + len(documents)) / (1.0 + df)) + 1.0).astype(np.float32)


def deepwalk_table(c: DXMLConfig, data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (C, dim), found (C,))``: DeepWalk's label vectors, made once per run
    (``data.cache``) so that a resumed run does not walk again."""
    walks = "weighted" if c.weighted_walks else "uniform"
    name = (
        f"labels.deepwalk.{c.dim}d.{c.walks_per_label}x{c.walk_length}.w{c.window}"
        f".e{c.walk_epochs}.{walks}.npz"
    )

    def make() -> tuple[np.ndarray, np.ndarray]:
        from hyperim.pretrain.deepwalk import deepwalk_label_vectors

        vectors, isolated = deepwalk_label_vectors(
            data.label_lists,
            c.n_labels,
            c.dim,
            seed=data.seed,
            walks_per_label=c.walks_per_label,
            walk_length=c.walk_length,
            window=c.window,
            epochs=c.walk_epochs,
            weighted=c.weighted_walks,
        )
        data.log(
            f"DeepWalk: {c.dim}-d label vectors from {c.walks_per_label} {walks} walks of "
            f"{c.walk_length} per label; {int(isolated.sum())}/{c.n_labels} labels without a "
            "co-occurring label get a random direction"
        )
        return vectors, np.ones(c.n_labels, dtype=bool)

    return cached_table(data.cache / name, make)
