"""Prediction layers, Eq. (6): :math:`p_i = \\sigma(W^e \\varphi(W^f s_i))`, shared by all labels,
and the extensions of Eq. (6) that this library adds, all here so that Eq. (6) has one home:

- ``pool``: ``W^p [max_t s_it; mean_t s_it]`` added inside ϕ;
- ``label_bias``: a learned bias per label added to the logit (started at the label prior);
- ``logit_offset``: a constant added at inference only (``calibrated=True``), ``log r`` for a
  model trained with negatives sampled at rate ``r``, so that probabilities are calibrated.
"""

from __future__ import annotations

import torch
from torch import nn

#: Pooled features of ``s_i`` over the real positions (``pool=True``).
POOLS = ("max", "mean")


def pooled_scores(s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, L, T), (B, T) -> (B, L, 2)``: max and mean of ``s_i`` over real positions
    (both 0 for a document without tokens)."""
    real = mask[:, None, :].to(torch.bool)  # (B, 1, T)
    n = real.sum(-1).clamp_min(1).to(s.dtype)  # (B, 1)
    mean = s.masked_fill(~real, 0).sum(-1) / n  # (B, L)
    top = s.masked_fill(~real, torch.finfo(s.dtype).min).amax(-1)  # (B, L)
    top = torch.where(real.any(-1), top, torch.zeros_like(top))
    return torch.stack([top, mean], dim=-1)


ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": None}


class PredictionHead(nn.Module):
    """``W^f ∈ R^{(T/2)×T}``, ``W^e ∈ R^{1×(T/2)}``; returns logits (the σ is in the loss).

    A batch padded to ``T' ≤ max_len`` uses the first ``T'`` columns of ``W^f``: identical to
    padding the document to ``max_len`` with zero scores, at a fraction of the cost.
    """

    def __init__(
        self,
        max_len: int,
        hidden: int | None = None,
        activation: str = "relu",
        bias: bool = True,
        pool: bool = False,
        n_labels: int | None = None,
        logit_offset: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}"
            )
        self.max_len, self.activation = max_len, activation
        hidden = hidden or max(1, max_len // 2)
        self.w_f = nn.Linear(max_len, hidden, bias=bias)
        self.w_e = nn.Linear(hidden, 1, bias=bias)
        # Extension: ``W^p [max_t s_it; mean_t s_it]`` added inside ϕ, over real positions.
        # ``max_t s_it = -min_t d(θ^w_t, θ^l_i)`` says whether any word lies near the label,
        # wherever it stands; ``W^f`` alone sees each position separately.
        self.w_p = nn.Linear(len(POOLS), hidden, bias=False) if pool else None
        # Extension: a learned bias per label (``n_labels`` given), which carries each label's
        # prior, so the shared layers and the geometry only explain what the text adds.
        self.label_bias = nn.Parameter(torch.zeros(n_labels)) if n_labels else None
        self.logit_offset = float(logit_offset)

    @classmethod
    def from_config(cls, c) -> PredictionHead:
        """The head a family's config describes: ``max_len``, ``head_activation``,
        ``head_bias``, ``head_pool``, ``label_bias`` (over ``n_labels``), ``logit_offset``."""
        return cls(
            c.max_len,
            activation=c.head_activation,
            bias=c.head_bias,
            pool=c.head_pool,
            n_labels=c.n_labels if c.label_bias else None,
            logit_offset=c.logit_offset,
        )

    def forward(
        self,
        s: torch.Tensor,  # (B, L, T') label-aware representations s_i
        mask: torch.Tensor | None = None,  # (B, T') True at real tokens
        labels: torch.Tensor | slice | None = None,  # (B, L) ids, or a slice of all labels
        calibrated: bool = False,
    ) -> torch.Tensor:
        """``(B, L, T') -> (B, L)`` logits of the labels ``labels`` (``label_bias`` is added when
        the head has one; ``labels=None`` means all labels in order). ``mask`` is needed by the
        pooled features only (``s`` is 0 at padding already). ``calibrated`` adds
        ``logit_offset`` (inference); training's loss reads the uncalibrated logits."""
        logits = self.shared(s, mask)
        if self.label_bias is not None:
            if labels is None and s.shape[1] != self.label_bias.shape[0]:
                raise ValueError(f"{s.shape[1]} labels scored, {self.label_bias.shape[0]} known")
            logits = logits + self.label_bias[slice(None) if labels is None else labels]
        if calibrated:
            logits = logits + self.logit_offset
        return logits

    def shared(self, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (6) without the σ and without the per-label terms: ``(B, L, T') -> (B, L)``."""
        t = s.shape[-1]
        h = nn.functional.linear(s, self.w_f.weight[:, :t], self.w_f.bias)  # (B, L, T/2)
        if self.w_p is not None:
            if mask is None:
                raise ValueError("the pooled prediction head needs the token mask")
            h = h + self.w_p(pooled_scores(s, mask))
        act = ACTIVATIONS[self.activation]
        if act is not None:
            h = act(h)
        return self.w_e(h).squeeze(-1)  # (B, L)

    @torch.no_grad()
    def start_at_prior(self, prior_logits: torch.Tensor) -> None:
        """Start the logits exactly at ``prior_logits`` ``(C,)``: ``label_bias`` takes them and
        ``W^e`` (with its bias) is zeroed, so the text moves the logits from the prior (the zero
        start of a residual branch)."""
        if self.label_bias is None:
            raise ValueError("start_at_prior needs a head with label_bias")
        self.label_bias.copy_(prior_logits.to(self.label_bias))
        self.w_e.weight.zero_()
        if self.w_e.bias is not None:
            self.w_e.bias.zero_()
