"""Turning documents into padded id tensors, and deterministic length-bucketed batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hyperim.data.reader import Document
from hyperim.data.vocab import LabelIndex, Vocabulary


@dataclass
class EncodedSplit:
    """Token ids (truncated to ``max_len``, unpadded) and label ids for each document."""

    tokens: list[np.ndarray]
    labels: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.tokens), dtype=np.int64, count=len(self.tokens))


def encode_documents(
    docs: list[Document], vocab: Vocabulary, labels: LabelIndex, max_len: int
) -> EncodedSplit:
    """Encode documents; labels unknown to ``labels`` are dropped (and counted there)."""
    toks = [np.asarray(vocab.encode(d.tokens, max_len), dtype=np.int64) for d in docs]
    labs = [np.asarray(labels.encode(d.labels), dtype=np.int64) for d in docs]
    return EncodedSplit(toks, labs)


def pad_tokens(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences: ``(B, T)`` ids (PAD = 0) and ``(B, T)`` bool mask, ``T >= 1``."""
    t = max(1, max((len(s) for s in seqs), default=1))
    ids = np.zeros((len(seqs), t), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    tokens = torch.from_numpy(ids)
    return tokens, tokens != Vocabulary.PAD


def epoch_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, bucket: int = 50
) -> list[np.ndarray]:
    """Document indices of each batch of one epoch; a pure function of (seed, epoch).

    Documents are shuffled, then sorted by length inside windows of ``bucket`` batches so a
    batch pads to similar lengths, and the batches are shuffled again.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    batches = []
    window = batch_size * max(1, bucket)
    for lo in range(0, len(order), window):
        w = order[lo : lo + window]
        w = w[np.argsort(lengths[w], kind="stable")]
        batches.extend(w[i : i + batch_size] for i in range(0, len(w), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def label_targets(
    label_lists: list[np.ndarray], n_labels: int, negatives: int, generator: torch.Generator
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """Labels, targets and target mask for one batch (Eq. 7).

    With ``negatives == 0`` (or at least as many as there are labels) every label is scored:
    returns ``(None, targets (B, C), None)``. Otherwise each document gets its positives ``L+``
    (padded to the batch's largest count) plus ``negatives`` labels drawn uniformly without
    replacement from its non-labels ``L-``: returns ``(labels (B, P+N), targets, mask)``.
    """
    b = len(label_lists)
    if negatives <= 0 or negatives + max((len(x) for x in label_lists), default=0) >= n_labels:
        targets = torch.zeros(b, n_labels)
        for i, labs in enumerate(label_lists):
            targets[i, torch.from_numpy(labs)] = 1
        return None, targets, None
    p = max(1, max(len(x) for x in label_lists))
    pos = torch.zeros(b, p, dtype=torch.long)
    pos_mask = torch.zeros(b, p)
    keys = torch.rand(b, n_labels, generator=generator)
    for i, labs in enumerate(label_lists):
        pos[i, : len(labs)] = torch.from_numpy(labs)
        pos_mask[i, : len(labs)] = 1
        keys[i, torch.from_numpy(labs)] = -1.0  # never sample a positive as a negative
    neg = keys.topk(negatives, dim=1).indices  # uniform sample without replacement
    labels = torch.cat([pos, neg], dim=1)
    targets = torch.cat([pos_mask, torch.zeros(b, negatives)], dim=1)
    mask = torch.cat([pos_mask, torch.ones(b, negatives)], dim=1)
    return labels, targets, mask
