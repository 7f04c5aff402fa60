"""Windowed word co-occurrence counts :math:`X_{ij}` for Poincaré GloVe (paper Eq. 3).

The counts follow GloVe's ``cooccur`` tool (Pennington et al. 2014):

* a context window of ``window`` tokens on each side (default 10, GloVe's default);
* a pair of tokens ``k`` positions apart adds ``1 / k`` (``distance_weighting=True``, GloVe's
  default) or ``1``;
* symmetric: the pair adds to both :math:`X_{ij}` and :math:`X_{ji}`; a word next to a copy of
  itself therefore adds ``2 / k`` to :math:`X_{ii}`;
* windows never cross a document (GloVe: a line) boundary;
* out-of-vocabulary tokens are removed *before* windowing (GloVe skips them), so distances are
  counted over in-vocabulary tokens: see :func:`encode_corpus`.

Memory is bounded and the corpus is never held: sequences are consumed one at a time into a
token buffer; each full token buffer is turned into ``(row, col, weight)`` triples with one
vectorised numpy pass per offset ``k`` (no per-pair Python loop), and the triples go into
fixed-size buffers that are summed into a CSR matrix (``coo -> csr`` sums duplicates) when full.
Peak memory is about the final matrix, twice over while adding a chunk, plus the buffers
(``buffer_size`` triples of 16 bytes each). Only one direction (left word, right word) is
stored; the symmetric matrix is :math:`A + A^\\top` at the end. Measured on the debtags
training split (21,305 documents, 29,082-word vocabulary, window 10): 4,170,553 nonzeros in
2.5 s with a 184 MiB allocation peak (1 CPU thread).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from hyperim.data.vocab import Vocabulary

#: GloVe's default context window (tokens on each side).
DEFAULT_WINDOW = 10


def encode_corpus(docs: Iterable[Sequence[str]], vocab: Vocabulary) -> Iterator[np.ndarray]:
    """Map tokenised documents to id arrays over ``vocab``, dropping unknown tokens.

    Unknown tokens (and literal ``<pad>``/``<unk>`` strings) are removed rather than mapped to
    ``UNK``, as GloVe's ``cooccur`` does, so they neither get a vector nor stretch the window.
    Lazy: one document at a time.
    """
    ids = vocab._ids  # the token -> id dict; avoids a method call per token
    first = len(Vocabulary.SPECIALS)
    for doc in docs:
        a = np.fromiter((ids.get(t, -1) for t in doc), dtype=np.int64, count=len(doc))
        yield a[a >= first]


class _TripleBuffer:
    """Fixed-size numpy buffers of ``(row, col, weight)`` summed into a CSR matrix when full."""

    def __init__(self, n: int, size: int, dtype: np.dtype) -> None:
        self.n, self.size, self.dtype = n, size, dtype
        self.rows = np.empty(size, np.int32 if n < 2**31 else np.int64)
        self.cols = np.empty_like(self.rows)
        self.weights = np.empty(size, dtype)
        self.used = 0
        self.flushes = 0
        self.total: sp.csr_matrix = sp.csr_matrix((n, n), dtype=dtype)

    def add(self, rows: np.ndarray, cols: np.ndarray, weight: float) -> None:
        start = 0
        while start < len(rows):
            take = min(len(rows) - start, self.size - self.used)
            sl = slice(self.used, self.used + take)
            self.rows[sl] = rows[start : start + take]
            self.cols[sl] = cols[start : start + take]
            self.weights[sl] = weight
            self.used += take
            start += take
            if self.used == self.size:
                self.flush()

    def flush(self) -> None:
        if self.used == 0:
            return
        u = self.used
        chunk = sp.coo_matrix(
            (self.weights[:u], (self.rows[:u], self.cols[:u])), shape=(self.n, self.n)
        ).tocsr()  # sums duplicate (row, col) entries
        self.total = self.total + chunk if self.total.nnz else chunk
        self.used = 0
        self.flushes += 1


def cooccurrence_matrix(
    sequences: Iterable[Sequence[int] | np.ndarray],
    vocab_size: int,
    *,
    window: int = DEFAULT_WINDOW,
    distance_weighting: bool = True,
    symmetric: bool = True,
    buffer_size: int = 4_000_000,
    token_buffer: int = 1_000_000,
    dtype: np.dtype | type = np.float64,
) -> sp.csr_matrix:
    """Count co-occurrences of token ids within ``window`` positions of each other.

    Parameters
    ----------
    sequences : iterable of int sequences
        One sequence of ids (all in ``[0, vocab_size)``) per document; consumed once, lazily
        (a generator over a file of millions of lines is fine). Use :func:`encode_corpus` to
        go from tokens and a :class:`~hyperim.data.vocab.Vocabulary` to ids.
    vocab_size : int
        The matrix is ``vocab_size x vocab_size``.
    window : int
        Tokens on each side that count as context (GloVe: 10).
    distance_weighting : bool
        Weight a pair ``k`` tokens apart by ``1 / k`` (GloVe) instead of 1.
    symmetric : bool
        Count right contexts too (``X = A + A^T``, GloVe's default); otherwise ``X_ij`` only
        counts ``j`` to the right of ``i``.
    buffer_size : int
        Triples held before they are summed into the result (16 bytes each).
    token_buffer : int
        Tokens gathered from consecutive documents before they are windowed together.
    dtype : numpy float dtype
        Of the result (float64 by default: exact sums of ``1/k``).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``X`` with sorted indices and no explicit zeros.
    """
    if window < 1:
        raise ValueError("window must be >= 1")
    if buffer_size < 1 or token_buffer < 1:
        raise ValueError("buffer_size and token_buffer must be >= 1")
    dtype = np.dtype(dtype)
    out = _TripleBuffer(vocab_size, buffer_size, dtype)

    # Consecutive documents are concatenated (with their document number) and windowed in one
    # go; pairs whose two tokens come from different documents are masked out.
    tok_ids: list[np.ndarray] = []
    tok_docs: list[np.ndarray] = []
    held = 0
    n_docs = 0

    def window_pass() -> None:
        nonlocal held
        if not tok_ids:
            return
        ids = np.concatenate(tok_ids)
        docs = np.concatenate(tok_docs)
        tok_ids.clear()
        tok_docs.clear()
        held = 0
        for k in range(1, min(window, len(ids) - 1) + 1):
            same = docs[:-k] == docs[k:]
            out.add(ids[:-k][same], ids[k:][same], 1.0 / k if distance_weighting else 1.0)

    for seq in sequences:
        a = np.asarray(seq, dtype=np.int64)
        if a.ndim != 1:
            raise ValueError("each sequence must be one-dimensional")
        if a.size and (a.min() < 0 or a.max() >= vocab_size):
            raise ValueError(f"token ids must lie in [0, {vocab_size})")
        if a.size > 1:
            tok_ids.append(a)
            tok_docs.append(np.full(a.size, n_docs, dtype=np.int64))
            held += a.size
            n_docs += 1
            if held >= token_buffer:
                window_pass()
    window_pass()
    out.flush()
    x = out.total
    if symmetric:
        x = (x + x.T).tocsr()
    x.sum_duplicates()
    x.eliminate_zeros()
    x.sort_indices()
    return x.astype(dtype, copy=False)
