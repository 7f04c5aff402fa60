"""The Hyperbolic Interaction Model (HyperIM): words and labels in one product of Poincaré balls.

Pipeline (paper Fig. 2): word embeddings Θ^E → hyperbolic GRU (Eq. 5) → encoded words Θ^w;
interaction with label embeddings Θ^L by geodesic distance (Eq. 1) → label-aware document
representations ``s_i``; prediction layers (Eq. 6) → per-label logits; loss Eq. (7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from hyperim.errors import HyperIMError, check_all
from hyperim.geometry import expmap0, logmap0, project
from hyperim.models.base import (
    ModelConfig,
    TextModel,
    TrainingData,
    bce_loss,
    prior_logits,
)
from hyperim.nn import HyperbolicEmbedding, HyperbolicGRU, Interaction, PredictionHead


@dataclass
class HyperIMConfig(ModelConfig):
    """Architecture of a HyperIM model and where its embeddings start; the ``[model]`` table
    of ``hyperim train --model hyperim``; round-trips through ``config.json``.

    Defaults are the reported set-up (BENCHMARKS.md). The paper's exact model is
    ``phi = "identity"``, ``label_bias = false``: with ϕ = identity the GRU's states reach
    the boundary after a few epochs and its float32 gradient through time overflows.
    """

    n_balls: int = 75  # the paper's 75×2D
    ball_dim: int = 2
    phi: str = "tanh"  # ϕ of Eq. (5); the paper's is "identity"
    gru_init: str = "uniform"  # GRU weights: "uniform" (PyTorch's) or "orthogonal"
    # Training memory: the GRU's backward recomputes segments of this many steps instead of
    # storing them (0: store all). Changes memory and time, not the numbers (up to rounding).
    gru_checkpoint: int = 16
    head_activation: str = "relu"  # ϕ of Eq. (6)
    head_bias: bool = True
    aggregate: str = "riemannian"  # per-ball distances: "sum" or "riemannian" (measured better)
    word_init_scale: float = 0.1  # measured: 0.05, 0.1, 0.3 and 0.01 (BENCHMARKS.md)
    label_init_scale: float = 0.1
    # A learned bias per label on Eq. (6), started at the label prior (an extension,
    # hyperim.nn.head); the paper's prediction layers are fully shared.
    label_bias: bool = True
    # Max and mean of s_i over the real positions as two more inputs of Eq. (6)'s first layer
    # (an extension, hyperim.nn.head): a word near the label counts wherever it stands.
    head_pool: bool = False
    # Dropout of the word embeddings in the tangent space at the origin while training:
    # θ^e -> exp0(dropout(log0 θ^e)) coordinate by coordinate (an extension; off at evaluation).
    # Chosen on debtags validation at 25×2-D: 0.25 reached nDCG@5 79.59 against 0.1's 79.39
    # and no dropout's 77.61, whose run overfitted after epoch 7 (BENCHMARKS.md).
    word_dropout: float = 0.25
    # Where the embeddings start (hyperim.pretrain.init): a name or an embedding file. The
    # paper's H-hier set-up; best of six on debtags validation (BENCHMARKS.md).
    label_init: str = "auto"  # auto (hierarchy if any) | random | hierarchy (Eq. 2) | FILE
    # random | glove (Eq. 3) | glove+wordnet (Eq. 3+4) | glove6b (GloVe 6B, lifted) | FILE
    word_init: str = "glove+wordnet"
    # glove6b: the most frequent GloVe 6B words join the vocabulary (test texts' words that no
    # training text has keep their pre-trained start instead of becoming <unk>)
    pretrained_words: int = 50_000
    wordnet_dir: str | None = None  # WordNet 3.0 database folder; None = /usr/share/wordnet

    #: Runs and models recorded before word dropout became the default trained without it.
    RECORDED_DEFAULTS: ClassVar[dict[str, Any]] = {"word_dropout": 0.0}

    def validate(self) -> HyperIMConfig:
        from hyperim.nn.gru import PHI
        from hyperim.nn.head import ACTIVATIONS
        from hyperim.pretrain.init import check_init

        checks = [
            (self.n_balls >= 1 and self.ball_dim >= 1, "n_balls and ball_dim must be >= 1"),
            (self.aggregate in ("sum", "riemannian"), "aggregate must be sum or riemannian"),
            (self.phi in PHI, f"phi must be one of {', '.join(PHI)}"),
            (self.gru_init in ("uniform", "orthogonal"), "gru_init must be uniform or orthogonal"),
            (self.gru_checkpoint >= 0, "gru_checkpoint must be >= 0"),
            (
                self.head_activation in ACTIVATIONS,
                f"head_activation must be one of {', '.join(ACTIVATIONS)}",
            ),
            (self.word_init_scale > 0, "word_init_scale must be > 0"),
            (self.label_init_scale > 0, "label_init_scale must be > 0"),
            (self.pretrained_words >= 0, "pretrained_words must be >= 0"),
            (0 <= self.word_dropout < 1, "word_dropout must be in [0, 1)"),
        ]
        check_all(checks)
        check_init("label", self.label_init)
        check_init("word", self.word_init)
        return self

    @classmethod
    def for_dimension(cls, dim: int, **options: Any) -> HyperIMConfig:
        """HyperIM at total dimension ``dim`` as ``dim / 2`` balls of 2-D (the paper's
        ablation); an odd ``dim`` has no such product and is refused."""
        if dim < 2 or dim % 2:
            raise HyperIMError(
                f"HyperIM at dimension {dim}: the ablation uses dim/2 balls of 2-D, so the "
                "dimension must be even and >= 2"
            )
        return cls(n_balls=dim // 2, ball_dim=2, **options)


#: ``config.json`` of models saved before model families existed: fields missing there had
#: these defaults (the paper's), not today's.
LEGACY_DEFAULTS = {"phi": "identity", "label_bias": False, "head_pool": False}


class HyperIMModel(TextModel):
    """``forward(tokens, mask, labels, targets, target_mask) -> (logits, loss)``."""

    model_type = "hyperim"
    config_class = HyperIMConfig
    words_in_label_space = True

    @classmethod
    def extra_vocabulary(cls, config: HyperIMConfig) -> list[str]:  # type: ignore[override]
        from hyperim.pretrain.vectors import glove6b_vocabulary

        return glove6b_vocabulary(config.word_init, config.pretrained_words)

    def __init__(self, config: HyperIMConfig) -> None:
        super().__init__()
        c = self.config = config
        self.words = HyperbolicEmbedding(c.vocab_size, c.n_balls, c.ball_dim, c.word_init_scale)
        self.encoder = HyperbolicGRU(c.n_balls, c.ball_dim, c.phi, c.gru_init, c.gru_checkpoint)
        self.labels = HyperbolicEmbedding(c.n_labels, c.n_balls, c.ball_dim, c.label_init_scale)
        self.interaction = Interaction(c.aggregate)  # type: ignore[arg-type]
        self.head = PredictionHead.from_config(c)  # Eq. (6) and its extensions

    # ---------------------------------------------------------------- the paper's pipeline
    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` token ids -> ``(B, T, n, d)`` encoded words Θ^w (Eq. 5)."""
        e = self.words(tokens)  # (B, T, n, d) Θ^E rows
        p = self.config.word_dropout
        if self.training and p > 0:  # in the tangent space at the origin, ball by ball
            e = project(expmap0(torch.nn.functional.dropout(logmap0(e), p, training=True)))
        return self.encoder(e, mask)

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> Any:
        return self.encode(tokens, mask), mask

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) long, right-padded
        mask: torch.Tensor,  # (B, T) bool, True at real tokens
        labels: torch.Tensor | None = None,  # (B, L) label ids per document; None = all labels
        targets: torch.Tensor | None = None,  # (B, L) or (B, C) in {0, 1}
        target_mask: torch.Tensor | None = None,  # (B, L): 0 where ``labels`` is padding
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        theta_w, _ = self.encode_batch(tokens, mask)  # (B, T, n, d)
        theta_l = self.labels.weight if labels is None else self.labels(labels)  # (C|B,L, n, d)
        s = self.interaction(theta_w, theta_l, mask.to(theta_w.dtype))  # (B, L, T)
        logits = self.head(s, mask, labels)  # Eq. (6) without the σ: (B, L)
        loss = None if targets is None else bce_loss(logits, targets, target_mask)  # Eq. (7)
        return logits, loss

    # ---------------------------------------------------------------- the protocol
    def score_chunk(self, encoded: Any, lo: int, hi: int) -> torch.Tensor:
        theta_w, mask = encoded
        s = self.interaction(theta_w, self.labels.weight[lo:hi], mask.to(theta_w.dtype))
        return self.head(s, mask, slice(lo, hi), calibrated=True)  # (B, hi - lo)

    def score_subset(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        theta_w, mask = encoded
        s = self.interaction(theta_w, self.labels(labels), mask.to(theta_w.dtype))  # (B, L, T)
        return self.head(s, mask, labels, calibrated=True)

    def word_label_scores(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        """``-d(θ^w_t, θ^l_i)``: the interaction scores that Eq. (6) reads."""
        theta_w, mask = encoded
        return self.interaction(theta_w, self.labels(labels), mask.to(theta_w.dtype))

    def label_points(self) -> tuple[str, torch.Tensor]:
        return "poincare", self.labels.weight  # (C, n_balls, ball_dim)

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        """Riemannian Adam for Θ^E (its own group, ``word_lr``), Θ^L and the GRU biases
        (``hyper_lr``); Adam for the GRU weights and label bias (``lr``) and the prediction
        layers (``head_lr``). See :func:`hyperim.optim.make_optimizers`."""
        from hyperim.optim import make_optimizers

        t = train_config
        return make_optimizers(
            self,
            t.lr,
            t.hyper_lr,
            t.word_lr,
            t.head_lr,
            words=self.words.weight,
            head=self.head,
            lazy_words=t.lazy_word_updates,
            weight_decay=t.weight_decay,
        )

    def init_from_data(self, data: TrainingData) -> None:
        """Label priors into the head's ``label_bias`` (when it has one), then Θ^L and Θ^E from
        ``label_init`` / ``word_init`` (H-hier), pre-training into ``data.cache`` when no cached
        table is there yet."""
        from hyperim.pretrain.init import check_word_init, label_points, word_points

        c = self.config
        check_word_init(c.word_init, data.cache, c.wordnet_dir)
        if self.head.label_bias is not None:
            self.head.start_at_prior(prior_logits(data.label_lists, c.n_labels, c.logit_offset))
        shape = dict(
            n_balls=c.n_balls,
            ball_dim=c.ball_dim,
            aggregate=c.aggregate,
            seed=data.seed,
            cache=data.cache,
            log=data.log,
        )
        found = label_points(c.label_init, data.hierarchy, data.labels.labels, **shape)
        if found is not None:
            self.labels.load_rows(*found)
        found = word_points(
            c.word_init,
            data.documents,
            data.vocab,
            wordnet_dir=c.wordnet_dir,
            radius=c.word_init_scale * math.sqrt(c.ball_dim / 3.0),  # the random start's RMS
            **shape,
        )
        if found is not None:
            self.words.load_rows(*found)

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Before model families, ``label_bias`` was the model's own; it is the head's now."""
        if "label_bias" in state:
            state = dict(state)
            state["head.label_bias"] = state.pop("label_bias")
        return state
