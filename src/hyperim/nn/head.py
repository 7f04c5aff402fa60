"""Prediction layers, Eq. (6): :math:`p_i = \\sigma(W^e \\varphi(W^f s_i))`, shared by all labels."""

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

    def forward(self, s: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, T') -> (B, L)`` logits; ``mask`` ``(B, T')`` (True at real tokens) is needed
        by the pooled features only (``s`` is 0 at padding already)."""
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
