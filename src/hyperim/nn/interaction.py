"""Word–label interaction (paper §"Interaction in the Hyperbolic Space").

``score(x_t, l_i) = -d(θ^w_t, θ^l_i)``; the label-aware document representation of label ``i``
is ``s_i = [score(x_1, l_i); …; score(x_T, l_i)]``. Padding positions score 0, so they add
nothing to Eq. (6).
"""

from __future__ import annotations

import torch
from torch import nn

from hyperim.geometry import pairwise_dist, pairwise_dist_naive
from hyperim.geometry.product import Aggregate


class Interaction(nn.Module):
    """Computes ``S`` of shape ``(B, L, T)`` from words ``(B, T, n, d)`` and labels.

    ``labels`` is ``(C, n, d)`` (every document against the same labels) or ``(B, L, n, d)``
    (a label set per document: partial interaction, Eq. 7). ``naive=True`` uses the broadcast
    Möbius formula instead of the fused one (for tests and benchmarks only).
    """

    def __init__(self, aggregate: Aggregate = "sum", naive: bool = False) -> None:
        super().__init__()
        self.aggregate, self.naive = aggregate, naive

    def forward(
        self, words: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        if self.naive:
            d = pairwise_dist_naive(words, labels, self.aggregate)  # (B, T, L)
        else:
            d = pairwise_dist(words, labels, self.aggregate)  # (B, T, L)
        return (-d * mask[:, :, None]).transpose(1, 2)  # (B, L, T); padding → 0
