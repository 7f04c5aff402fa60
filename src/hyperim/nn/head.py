"""Prediction layers, Eq. (6): :math:`p_i = \\sigma(W^e \\varphi(W^f s_i))`, shared by all labels."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": None}


class PredictionHead(nn.Module):
    """``W^f ∈ R^{(T/2)×T}``, ``W^e ∈ R^{1×(T/2)}``; returns logits (the σ is in the loss).

    A batch padded to ``T' ≤ max_len`` uses the first ``T'`` columns of ``W^f``: identical to
    padding the document to ``max_len`` with zero scores, at a fraction of the cost.
    """

    def __init__(
        self, max_len: int, hidden: int | None = None, activation: str = "relu", bias: bool = True
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

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """``(B, L, T') -> (B, L)`` logits."""
        t = s.shape[-1]
        h = nn.functional.linear(s, self.w_f.weight[:, :t], self.w_f.bias)  # (B, L, T/2)
        act = ACTIVATIONS[self.activation]
        if act is not None:
            h = act(h)
        return self.w_e(h).squeeze(-1)  # (B, L)
