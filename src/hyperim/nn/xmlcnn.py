"""The XML-CNN text encoder (Liu, Chang, Wu and Yang 2017, "Deep Learning for Extreme
Multi-label Text Classification", SIGIR), the primary features of a text for a classifier.

Words ``e_1 … e_n ∈ R^k`` → for each filter width ``w`` (2, 4, 8 in XML-CNN) ``F`` filters,
``c_t = ReLU(W_w [e_t; …; e_{t+w−1}] + b_w)`` → dynamic max pooling of each feature map into
``p`` chunks along the text, ``P(c) = [max c_{chunk 1}; …; max c_{chunk p}]`` (XML-CNN's
answer to a single max losing where in the text a feature fired) → concatenation
``z ∈ R^{3 F p}`` → the bottleneck hidden layer ``h = dropout(ReLU(W_h z + b_h))`` (512 units),
which XML-CNN puts between pooling and its output layer so that the output layer, of one row
per label, acts on a small vector.

What this implementation fixes for padded batches of texts of any length:

- A window starts at each real token ``t < n``; past the end of the text it sees zeros (the
  text is right-padded with ``max(w) − 1`` zero vectors), so a text shorter than the widest
  filter still has ``n`` features per map, and padding never enters a window as anything but
  the zeros past the end. (XML-CNN's "valid" convolution has ``n − w + 1`` windows and none for
  a text shorter than ``w``.)
- The ``p`` chunks are those of adaptive max pooling over the text's own length ``n``, not
  the padded batch's: chunk ``j`` covers positions ``⌊j n / p⌋ ≤ t < ⌈(j+1) n / p⌉``, which is
  never empty for ``n ≥ 1`` (for ``n < p`` neighbouring chunks share positions). So appending
  padding changes no feature, and a batch gives each document the features it has alone.
- The maps are ReLU outputs (``≥ 0``), so a position outside a chunk is zeroed rather than set
  to ``−∞`` before the max: the max is the same, and a text without tokens has zero features.
"""

from __future__ import annotations

import torch
from torch import nn


def chunk_members(mask: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """``(B, T)`` mask → ``(B, p, T)`` bool: position ``t`` lies in chunk ``j`` of its text,
    ``⌊j n / p⌋ ≤ t < ⌈(j+1) n / p⌉`` with ``n`` the text's number of real tokens (right
    padding assumed)."""
    n = mask.sum(1, dtype=torch.long)[:, None]  # (B, 1)
    j = torch.arange(n_chunks, device=mask.device)[None, :]  # (1, p)
    start = torch.div(j * n, n_chunks, rounding_mode="floor")  # (B, p)
    end = torch.div((j + 1) * n + n_chunks - 1, n_chunks, rounding_mode="floor")  # ceil
    t = torch.arange(mask.shape[1], device=mask.device)[None, None, :]  # (1, 1, T)
    return (t >= start[..., None]) & (t < end[..., None])  # (B, p, T)


def dynamic_max_pool(features: torch.Tensor, mask: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """``(B, F, T)`` non-negative feature maps → ``(B, F · p)``: the max of each map over each
    of the text's ``p`` chunks (:func:`chunk_members`), the ``p`` chunks of a map side by
    side; 0 for a text without tokens."""
    members = chunk_members(mask, n_chunks).to(features.dtype)  # (B, p, T)
    pooled = [
        (features * members[:, j, None, :]).amax(-1)  # (B, F)
        for j in range(n_chunks)
    ]
    return torch.stack(pooled, dim=-1).flatten(1)  # (B, F, p) -> (B, F p)


class XMLCNNEncoder(nn.Module):
    """``(B, T, k)`` word vectors and ``(B, T)`` mask → ``(B, hidden)`` text features ``h``.

    Parameters
    ----------
    word_dim : int
        ``k``, the word vectors' dimension.
    widths : tuple of int
        Filter widths (XML-CNN: 2, 4, 8).
    filters : int
        Filters per width ``F``.
    chunks : int
        ``p`` of dynamic max pooling.
    hidden : int
        Units of the bottleneck layer (XML-CNN: 512).
    dropout : float
        Dropout on the bottleneck's output ``h``.
    """

    def __init__(
        self,
        word_dim: int,
        widths: tuple[int, ...] = (2, 4, 8),
        filters: int = 128,
        chunks: int = 2,
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.widths, self.chunks = tuple(widths), chunks
        self.convs = nn.ModuleList(nn.Conv1d(word_dim, filters, w) for w in self.widths)
        self.bottleneck = nn.Linear(len(self.widths) * filters * chunks, hidden)
        self.dropout = nn.Dropout(dropout)

    @property
    def out_dim(self) -> int:
        return self.bottleneck.out_features

    def feature_maps(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, k)`` → ``(B, len(widths) · F, T)``: ``ReLU`` convolution features of the
        window starting at each position, padding zeroed and zeros past the end."""
        t = words.shape[1]
        x = (words * mask[..., None].to(words.dtype)).transpose(1, 2)  # (B, k, T)
        x = nn.functional.pad(x, (0, max(self.widths) - 1))  # (B, k, T + w_max - 1)
        maps = [torch.relu(conv(x)[..., :t]) for conv in self.convs]  # each (B, F, T)
        return torch.cat(maps, dim=1)  # (B, 3F, T)

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = dynamic_max_pool(self.feature_maps(words, mask), mask, self.chunks)  # (B, 3Fp)
        return self.dropout(torch.relu(self.bottleneck(pooled)))  # (B, hidden)
