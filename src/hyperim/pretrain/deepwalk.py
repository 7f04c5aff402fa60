"""DeepWalk (Perozzi, Al-Rfou and Skiena 2014) on the label co-occurrence graph, for DXML.

DXML (Zhang et al. 2018) embeds the labels by DeepWalk on a graph whose nodes are the labels
and whose edges join two labels that occur in the same training document
(:func:`label_cooccurrence`, weighted by the number of such documents). DeepWalk then

1. starts ``walks_per_label`` truncated random walks of ``walk_length`` nodes from every
   label, one pass over the labels in a fresh random order at a time (its Algorithm 1);
2. treats the walks as sentences and trains skip-gram Word2Vec on them with a context window
   of ``window`` nodes and hierarchical softmax (its Algorithm 2), here with gensim.

The defaults are those of DeepWalk's published implementation (``deepwalk``: 10 walks of 40
nodes per node, window 5, skip-gram with hierarchical softmax, gensim's 5 epochs); the
dimension is the caller's (DXML: 100 for RCV1, our paper's §"Hyperparameters").

Transitions: DeepWalk's walks are uniform over a node's neighbours (its graphs are unweighted).
A label co-occurrence graph closed under the hierarchy's ancestors is nearly complete (debtags'
``role`` facet is on 88% of the documents, so it neighbours almost every label), and uniform
walks would treat a pair seen together once like a pair seen together a thousand times; so by
default a walk steps to a neighbour with probability proportional to the edge's count
(``weighted=True``); ``weighted=False`` gives DeepWalk's uniform walks.

Isolated labels (that never share a document with another label, or never occur in the
training split) have walks of one node, which give skip-gram no pair to learn from: they are
left out of the walks and get a random direction (from the same seeded generator) at the root
mean square norm of the walked labels' vectors (1 when no label has a neighbour), so that a
classifier can still aim at them, each along its own nearly orthogonal axis.

Reproducible bit for bit from ``seed``: the walks come from a seeded :class:`numpy.random.
Generator`; Word2Vec runs on one worker thread with ``seed`` and a ``hashfxn`` that does not
depend on ``PYTHONHASHSEED`` (:func:`stable_hash`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: DeepWalk's published defaults: walks per node, walk length, skip-gram window.
WALKS_PER_LABEL = 10
WALK_LENGTH = 40
WINDOW = 5
#: gensim's (and so DeepWalk's implementation's) passes of skip-gram over the walks.
EPOCHS = 5


def stable_hash(text: str) -> int:
    """CRC-32 of ``text``: a hash that is the same in every process (Python's ``hash`` of a
    string changes with ``PYTHONHASHSEED``)."""
    return zlib.crc32(text.encode("utf-8"))


def label_cooccurrence(label_lists: Sequence[np.ndarray], n_labels: int) -> sp.csr_matrix:
    """``(C, C)`` symmetric CSR matrix: entry ``(i, j)``, ``i != j``, is the number of documents
    whose label list holds both ``i`` and ``j``; the diagonal is empty."""
    rows = np.repeat(np.arange(len(label_lists)), [len(x) for x in label_lists])
    cols = np.concatenate(list(label_lists) or [np.zeros(0, np.int64)]).astype(np.int64)
    y = sp.csr_matrix(
        (np.ones(len(cols), np.int64), (rows, cols)), shape=(len(label_lists), n_labels)
    )
    y.data[:] = 1  # a label listed twice in one document counts once
    graph = (y.T @ y).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    graph.sort_indices()
    return graph


def random_walks(
    graph: sp.csr_matrix,
    walks_per_label: int,
    walk_length: int,
    rng: np.random.Generator,
    weighted: bool = True,
) -> np.ndarray:
    """``(walks_per_label · n, walk_length)`` node ids: DeepWalk's truncated random walks from
    each of the ``n`` labels that have a neighbour, ``walks_per_label`` passes over them in a
    shuffled order. All walks of a pass advance together (one vectorised step per position):
    the next node is drawn from the current node's row of ``graph``, in proportion to the
    counts (``weighted``) or uniformly."""
    indptr, neighbours = graph.indptr, graph.indices
    degree = np.diff(indptr)
    starts = np.flatnonzero(degree > 0)
    if len(starts) == 0 or walks_per_label == 0:
        return np.zeros((0, walk_length), dtype=np.int64)
    # cumulative edge weights over the whole CSR array: row i's edges share out, in order,
    # the interval [before[i], before[i] + total[i]) of it, each as long as its weight
    weights = graph.data.astype(np.float64) if weighted else np.ones(len(neighbours))
    cum = np.cumsum(weights)
    padded = np.concatenate([[0.0], cum])
    before = padded[indptr[:-1]]  # (C,) weight of the rows before row i
    total = padded[indptr[1:]] - before  # (C,) row i's weight
    walks = []
    for _ in range(walks_per_label):
        walk = np.empty((len(starts), walk_length), dtype=np.int64)
        walk[:, 0] = rng.permutation(starts)
        for t in range(1, walk_length):
            here = walk[:, t - 1]
            u = rng.random(len(here))  # (n,) in [0, 1)
            edge = np.searchsorted(cum, before[here] + u * total[here], side="right")
            # rounding at a row's end: stay inside its edges
            edge = np.clip(edge, indptr[here], indptr[here + 1] - 1)
            walk[:, t] = neighbours[edge]
        walks.append(walk)
    return np.concatenate(walks)


def deepwalk_label_vectors(
    label_lists: Sequence[np.ndarray],
    n_labels: int,
    dim: int,
    *,
    seed: int = 0,
    walks_per_label: int = WALKS_PER_LABEL,
    walk_length: int = WALK_LENGTH,
    window: int = WINDOW,
    epochs: int = EPOCHS,
    weighted: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (C, dim) float32, isolated (C,) bool)``: DeepWalk's label embedding of the
    co-occurrence graph of ``label_lists`` (module docstring); ``isolated`` marks the labels
    without a neighbour, which have a random direction instead."""
    from gensim.models import Word2Vec

    rng = np.random.default_rng(seed)
    graph = label_cooccurrence(label_lists, n_labels)
    walks = random_walks(graph, walks_per_label, walk_length, rng, weighted)
    isolated = np.diff(graph.indptr) == 0
    vectors = np.zeros((n_labels, dim), dtype=np.float32)
    if len(walks):
        model = Word2Vec(
            sentences=[[str(node) for node in walk] for walk in walks.tolist()],
            vector_size=dim,
            window=window,
            min_count=1,
            sg=1,  # skip-gram
            hs=1,  # hierarchical softmax, as DeepWalk
            negative=0,
            workers=1,  # one thread: the updates happen in one order, every time
            seed=seed,
            hashfxn=stable_hash,
            epochs=epochs,
        )
        walked = np.flatnonzero(~isolated)
        vectors[walked] = model.wv[[str(i) for i in walked]]
    norm = float(np.sqrt((vectors[~isolated] ** 2).sum(1).mean())) if (~isolated).any() else 1.0
    if isolated.any():
        directions = rng.standard_normal((int(isolated.sum()), dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        vectors[isolated] = (norm * directions).astype(np.float32)
    return vectors, isolated
