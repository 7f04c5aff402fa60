"""The Hyperbolic Interaction Model (HyperIM): words and labels in one product of Poincaré balls.

Pipeline (paper Fig. 2): word embeddings Θ^E → hyperbolic GRU (Eq. 5) → encoded words Θ^w;
interaction with label embeddings Θ^L by geodesic distance (Eq. 1) → label-aware document
representations ``s_i``; prediction layers (Eq. 6) → per-label logits; loss Eq. (7).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from hyperim.nn import HyperbolicEmbedding, HyperbolicGRU, Interaction, PredictionHead


@dataclass
class ModelConfig:
    """Architecture of a HyperIM model; round-trips through ``config.json``."""

    vocab_size: int
    n_labels: int
    max_len: int = 150
    n_balls: int = 75  # the paper's 75×2D
    ball_dim: int = 2
    phi: str = "identity"  # ϕ of Eq. (5)
    gru_init: str = "uniform"  # GRU weights: "uniform" (PyTorch's) or "orthogonal"
    # Training memory: the GRU's backward recomputes segments of this many steps instead of
    # storing them (0: store all). Changes memory and time, not the numbers (up to rounding).
    gru_checkpoint: int = 16
    head_activation: str = "relu"  # ϕ of Eq. (6)
    head_bias: bool = True
    aggregate: str = "riemannian"  # per-ball distances: "sum" or "riemannian"
    word_init_scale: float = 0.1
    label_init_scale: float = 0.1
    # Added to logits at inference: log r for training with negatives sampled at rate r (see
    # hyperim.train.sampling_logit_offset); 0 when every label was scored in training.
    logit_offset: float = 0.0
    # A learned bias per label added to Eq. (6)'s output (an extension; the paper's prediction
    # layers are fully shared). It carries each label's prior, so the shared layers and the
    # geometry only have to explain what the text adds.
    label_bias: bool = False
    # Max and mean of s_i over the real positions as two more inputs of Eq. (6)'s first layer
    # (an extension, hyperim.nn.head): a word near the label counts wherever it stands.
    head_pool: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class HyperIMModel(nn.Module):
    """``forward(tokens, mask, labels, targets, target_mask) -> (logits, loss)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = self.config = config
        self.words = HyperbolicEmbedding(c.vocab_size, c.n_balls, c.ball_dim, c.word_init_scale)
        self.encoder = HyperbolicGRU(c.n_balls, c.ball_dim, c.phi, c.gru_init, c.gru_checkpoint)
        self.labels = HyperbolicEmbedding(c.n_labels, c.n_balls, c.ball_dim, c.label_init_scale)
        self.interaction = Interaction(c.aggregate)  # type: ignore[arg-type]
        self.head = PredictionHead(
            c.max_len, activation=c.head_activation, bias=c.head_bias, pool=c.head_pool
        )
        self.label_bias = nn.Parameter(torch.zeros(c.n_labels)) if c.label_bias else None

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` token ids -> ``(B, T, n, d)`` encoded words Θ^w."""
        return self.encoder(self.words(tokens), mask)

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) long, right-padded
        mask: torch.Tensor,  # (B, T) bool, True at real tokens
        labels: torch.Tensor | None = None,  # (B, L) label ids per document; None = all labels
        targets: torch.Tensor | None = None,  # (B, L) or (B, C) in {0, 1}
        target_mask: torch.Tensor | None = None,  # (B, L): 0 where ``labels`` is padding
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        theta_w = self.encode(tokens, mask)  # (B, T, n, d)
        theta_l = self.labels.weight if labels is None else self.labels(labels)  # (C|B,L, n, d)
        s = self.interaction(theta_w, theta_l, mask.to(theta_w.dtype))  # (B, L, T)
        logits = self.predict_logits(s, mask, slice(None) if labels is None else labels)
        loss = None
        if targets is not None:  # Eq. (7): -Σ_{L+} log p - Σ_{L-} log(1-p), averaged over docs
            bce = nn.functional.binary_cross_entropy_with_logits(
                logits, targets.to(logits.dtype), reduction="none"
            )
            if target_mask is not None:
                bce = bce * target_mask
            loss = bce.sum() / logits.shape[0]
        return logits, loss

    def predict_logits(
        self,
        s: torch.Tensor,  # (B, L, T) label-aware representations s_i
        mask: torch.Tensor,  # (B, T)
        labels: torch.Tensor | slice,  # which labels: (B, L) ids, or a slice of all of them
    ) -> torch.Tensor:
        """Eq. (6) (without the σ) plus ``label_bias``: ``(B, L)`` logits, no offset."""
        logits = self.head(s, mask)  # (B, L)
        if self.label_bias is not None:
            logits = logits + self.label_bias[labels]
        return logits

    @torch.no_grad()
    def score_all(
        self, tokens: torch.Tensor, mask: torch.Tensor, label_chunk: int = 2048
    ) -> torch.Tensor:
        """Calibrated logits for every label, ``(B, C)``, computed ``label_chunk`` labels at a
        time so the ``(B, T, chunk)`` score tensor, not ``(B, T, C)``, bounds memory.

        ``config.logit_offset`` is added (it corrects for sampled negatives; ranking unchanged).
        """
        theta_w = self.encode(tokens, mask)
        m = mask.to(theta_w.dtype)
        out = []
        for lo in range(0, self.config.n_labels, label_chunk):
            s = self.interaction(theta_w, self.labels.weight[lo : lo + label_chunk], m)
            out.append(self.predict_logits(s, mask, slice(lo, lo + label_chunk)))
        return torch.cat(out, dim=1) + self.config.logit_offset
