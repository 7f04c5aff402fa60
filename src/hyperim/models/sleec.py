"""SLEEC: sparse local embeddings of the label vectors, k-nearest-neighbour prediction.

Bhatia, Jain, Kar, Varma and Jain (2015), "Sparse Local Embeddings for Extreme Multi-label
Classification" (NIPS). Our paper (§"Baselines"): "SLEEC projects labels into low-dimensional
vectors which can capture label correlations by preserving the pairwise distance between
them. SLEEC uses the k-nearest neighbors when predicting, and clustering is used to speed up
its prediction. Ensemble method is also used to improve the performance of SLEEC"; embedding
dimension 100 on RCV1 (``dim``).

Fitting (no gradients: the trainer calls :meth:`SLEECModel.fit` once), for each of
``learners`` learners (an ensemble that differs in the clustering's seed):

1. Features ``x_i``: sublinear TF-IDF of the document's vocabulary ids (``1 + log tf``, the
   smoothed ``idf = log((1 + n) / (1 + df)) + 1`` of the training split), L2-normalised.
2. Clustering: k-means (scikit-learn, seeded) of the training points into ``n_clusters``
   clusters of about ``cluster_size`` points; everything below is local to a cluster ``Q``.
3. Embeddings ``Z ∈ R^{n_Q × d}`` that preserve the label vectors' similarities over each
   point's neighbourhood: with ``G_ij = ŷ_i · ŷ_j`` (cosine of the label vectors) and ``Ω``
   the pairs ``(i, j)`` where ``j`` is among the ``neighbours`` nearest label vectors of ``i``
   (scikit-learn's brute-force cosine neighbours; symmetrised),
   ``min_{M ⪰ 0, rank M ≤ d} ‖P_Ω(M − G)‖²_F`` by singular value projection (SVP):
   ``M_{t+1} = Π_d(M_t − P_Ω(M_t − G))``, ``Π_d`` the best rank-``d`` PSD approximation (the
   ``d`` largest eigenpairs, by Lanczos on ``M_t`` in low-rank + sparse form), ``Z = U Λ^½``.
   :meth:`SLEECModel.fit` returns the mean ``(M − G)²`` over ``Ω`` after each iteration.
4. A linear regressor ``V: x ↦ z`` by ridge regression, ``min ‖Z − X V^T‖² + λ‖V‖²``, kept in
   its dual form ``V x = Z^T (K + λI)^{-1} X x`` (``K = X X^T``), so the model stores the
   training TF-IDF rows instead of a ``d × |vocabulary|`` matrix per cluster. SLEEC's own
   objective adds an L1 term on ``V X`` (solved by ADMM); this one has the closed form.

Prediction of a document ``x``: per learner, its cluster (the nearest k-means centre), its
embedding ``z = V x``, its ``k`` nearest training points ``N`` in that cluster (Euclidean
distance between ``z`` and the training points' ``V x_i``: the same map on both sides) and
the vote ``Σ_{i ∈ N} y_i / |N|``; the learners' votes are averaged. Probabilities are the
votes smoothed by the label prior, ``p = (k v + a π) / (k + a)`` (``a = prior_weight``
pseudo-neighbours; it also orders the labels no neighbour has by their frequency), and the
model's logits are ``log p / (1 − p)``.

Scaled here: SLEEC's papers use up to 15 learners; ``learners = 5`` and clusters of about
5,000 points fit debtags (21k documents) in minutes on 2 cores (BENCHMARKS.md). Everything
the fit computes is saved as buffers (no parameters), sized by :meth:`config_for_data`, so a
saved model loads without the data. No per-word evidence (``word_label_scores`` is None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import eigh, solve
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from hyperim.errors import HyperIMError, check_all
from hyperim.models.base import ModelConfig, TextModel, TrainingData, bce_loss

#: The vocabulary ids that are not words (``<pad>``, ``<unk>``): no feature.
_NOT_WORDS = 2


@dataclass
class SLEECConfig(ModelConfig):
    """SLEEC's options (its ``[model]`` table); the last four fields are fixed by the data."""

    dim: int = 100  # d̂, the embedding dimension (our paper's for RCV1)
    neighbours: int = 15  # n̄: label-space neighbours per point whose similarities Z keeps
    k: int = 10  # nearest training points that vote at prediction
    learners: int = 5  # ensemble size (different clustering seeds)
    cluster_size: int = 5000  # about this many training points per k-means cluster
    svp_iterations: int = 10
    ridge: float = 0.1  # λ of the regressor V
    prior_weight: float = 1.0  # a: pseudo-neighbours voting with the label prior
    kmeans_iterations: int = 100
    # fixed by the training data (config_for_data)
    n_train: int = 0
    feature_nnz: int = 0
    label_nnz: int = 0
    n_clusters: int = 1

    DATA_FIELDS: ClassVar[tuple[str, ...]] = (
        *ModelConfig.DATA_FIELDS,
        "n_train",
        "feature_nnz",
        "label_nnz",
        "n_clusters",
    )

    def validate(self) -> SLEECConfig:
        checks = [
            (self.dim >= 1, "dim must be >= 1"),
            (self.neighbours >= 1, "neighbours must be >= 1"),
            (self.k >= 1, "k must be >= 1"),
            (self.learners >= 1, "learners must be >= 1"),
            (self.cluster_size >= 1, "cluster_size must be >= 1"),
            (self.svp_iterations >= 1, "svp_iterations must be >= 1"),
            (self.ridge > 0, "ridge must be > 0"),
            (self.prior_weight > 0, "prior_weight must be > 0"),
            (self.kmeans_iterations >= 1, "kmeans_iterations must be >= 1"),
        ]
        check_all(checks)
        return self


# ------------------------------------------------------------------------------ features
def document_frequencies(token_ids: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
    """``(V,)`` number of documents each vocabulary id occurs in."""
    df = np.zeros(vocab_size, dtype=np.int64)
    for ids in token_ids:
        df[np.unique(ids)] += 1
    return df


def smoothed_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """``log((1 + n) / (1 + df)) + 1`` (scikit-learn's smooth idf), 0 for the non-words."""
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    idf[:_NOT_WORDS] = 0.0
    return idf


def tfidf_matrix(
    token_ids: Sequence[np.ndarray], idf: np.ndarray, vocab_size: int
) -> sp.csr_matrix:
    """``(N, V)`` rows ``(1 + log tf) · idf``, L2-normalised (a row without words stays 0);
    columns of each row sorted."""
    indptr, indices, data = [0], [], []
    for ids in token_ids:
        ids = np.asarray(ids, dtype=np.int64)
        words, tf = np.unique(ids[ids >= _NOT_WORDS], return_counts=True)
        w = (1.0 + np.log(tf)) * idf[words]
        norm = float(np.sqrt((w * w).sum()))
        indices.append(words)
        data.append(w / norm if norm > 0 else w)
        indptr.append(indptr[-1] + len(words))
    return sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0),
            np.concatenate(indices) if indices else np.zeros(0, np.int64),
            np.asarray(indptr),
        ),
        shape=(len(token_ids), vocab_size),
    )


def label_matrix(label_lists: Sequence[np.ndarray], n_labels: int) -> sp.csr_matrix:
    """``(N, C)`` binary label vectors, one row per document."""
    indptr = np.cumsum([0, *(len(np.unique(y)) for y in label_lists)])
    indices = np.concatenate([np.unique(y) for y in label_lists] or [np.zeros(0, np.int64)])
    return sp.csr_matrix(
        (np.ones(len(indices)), indices.astype(np.int64), indptr),
        shape=(len(label_lists), n_labels),
    )


# ------------------------------------------------------------------------------ the fit
def neighbourhood(y: sp.csr_matrix, neighbours: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Ω`` and ``G`` on it: the pairs ``(i, j)`` (sorted, symmetric, the diagonal included)
    where ``j`` is among the ``neighbours`` label vectors nearest to ``i`` by cosine, and
    ``G_ij`` the cosine there (0 for a document without labels)."""
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import normalize

    n = y.shape[0]
    yn = normalize(y.astype(np.float64), norm="l2")
    k = min(neighbours + 1, n)  # + the point itself
    nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(yn)
    with config_context(working_memory=128):  # MiB of pairwise distances at a time
        _, idx = nn.kneighbors(yn)  # (n, k)
    rows = np.repeat(np.arange(n), k)
    cols = idx.ravel()
    pairs = np.unique(
        np.concatenate(
            [
                np.stack([rows, cols], 1),
                np.stack([cols, rows], 1),
                np.stack([np.arange(n), np.arange(n)], 1),
            ]
        ),
        axis=0,
    )  # (|Ω|, 2), sorted
    i, j = pairs[:, 0], pairs[:, 1]
    g = np.asarray(yn[i].multiply(yn[j]).sum(1)).ravel()
    return i, j, g


def top_psd(
    u: np.ndarray, lam: np.ndarray, s: sp.csr_matrix, d: int, dense_up_to: int = 1500
) -> tuple[np.ndarray, np.ndarray]:
    """The best PSD rank-``d`` approximation of ``U diag(λ) U^T + S`` (``S`` sparse
    symmetric): its ``d`` largest eigenpairs, negative eigenvalues set to 0. Up to
    ``dense_up_to`` points (or ``3 d``) from the dense matrix; above, Lanczos on the operator
    (never the dense ``n × n`` matrix) from a fixed start, so it repeats exactly. Where
    Lanczos does not converge for all ``d`` (label vectors repeated many times make
    eigenvalues of high multiplicity), the pairs that did converge are kept: a projection of
    lower rank, still the best one of that rank found."""
    n = s.shape[0]
    d = min(d, n)
    if n <= max(3 * d, dense_up_to):
        dense = (u * lam) @ u.T + s.toarray()
        vals, vecs = eigh(dense, subset_by_index=(n - d, n - 1))
    else:

        def matvec(v: np.ndarray) -> np.ndarray:  # (n,) or (n, m)
            scale = lam if v.ndim == 1 else lam[:, None]
            return u @ (scale * (u.T @ v)) + s @ v

        op = LinearOperator((n, n), matvec=matvec, matmat=matvec, dtype=np.float64)
        v0 = np.cos(np.arange(n) * 0.618) + 1.5  # fixed, not orthogonal to anything useful
        ncv = min(n, 3 * d + 20)  # more Lanczos vectors than eigsh's 2d+1: repeated eigenvalues
        try:
            vals, vecs = eigsh(
                op, k=d, which="LA", v0=v0 / np.linalg.norm(v0), tol=1e-8, ncv=ncv,
                maxiter=max(1000, 20 * n),
            )  # fmt: skip
        except ArpackNoConvergence as e:
            vals, vecs = e.eigenvalues, e.eigenvectors
    order = np.argsort(-vals, kind="stable")
    return vecs[:, order], np.clip(vals[order], 0.0, None)


def svp_embedding(
    i: np.ndarray, j: np.ndarray, g: np.ndarray, n: int, d: int, iterations: int
) -> tuple[np.ndarray, list[float]]:
    """``Z`` ``(n, d)`` with ``Z Z^T ≈ G`` on ``Ω = {(i, j)}`` by singular value projection
    (step 1), and the mean squared residual on ``Ω`` before the first and after each
    iteration."""
    u = np.zeros((n, 0))
    lam = np.zeros(0)
    m = np.zeros_like(g)  # M on Ω
    losses = [float(np.mean((m - g) ** 2))]
    for _ in range(iterations):
        s = sp.csr_matrix((g - m, (i, j)), shape=(n, n))  # −P_Ω(M − G)
        u, lam = top_psd(u, lam, s, d)
        m = ((u[i] * lam) * u[j]).sum(1)
        losses.append(float(np.mean((m - g) ** 2)))
    z = u * np.sqrt(lam)  # (n, d'), d' = min(d, n)
    return np.pad(z, ((0, 0), (0, d - z.shape[1]))), losses


def kmeans_clusters(
    x: sp.csr_matrix, n_clusters: int, seed: int, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means (scikit-learn) of the rows of ``x``: ``(n,)`` cluster ids and
    ``(n_clusters, V)`` centres; a cluster k-means left empty keeps a zero centre."""
    from sklearn.cluster import KMeans

    n_clusters = min(n_clusters, x.shape[0])
    if n_clusters == 1:
        centre = np.asarray(x.mean(0))
        return np.zeros(x.shape[0], dtype=np.int64), centre
    km = KMeans(n_clusters=n_clusters, n_init=1, max_iter=iterations, random_state=seed)
    assign = km.fit_predict(x)
    return assign.astype(np.int64), km.cluster_centers_


def linear_kernel(x: sp.csr_matrix, rows: int = 1024) -> np.ndarray:
    """``X X^T`` dense, ``rows`` rows at a time: never the sparse ``n × n`` product (whose
    indices would cost more than the dense matrix)."""
    xt = x.T.tocsc()
    out = np.empty((x.shape[0], x.shape[0]))
    for lo in range(0, x.shape[0], rows):
        out[lo : lo + rows] = (x[lo : lo + rows] @ xt).toarray()
    return out


# ------------------------------------------------------------------------------ the model
class SLEECModel(TextModel):
    """SLEEC in the model protocol: fitted by :meth:`fit`, scored by :meth:`encode_batch`."""

    model_type = "sleec"
    config_class = SLEECConfig
    trained_by_gradients = False

    def __init__(self, config: SLEECConfig) -> None:
        super().__init__()
        c = self.config = config
        n, L, d = c.n_train, c.learners, c.dim
        self.register_buffer("idf", torch.zeros(c.vocab_size))
        self.register_buffer("prior", torch.zeros(c.n_labels))  # π
        # training TF-IDF rows (CSR) and label lists (CSR)
        self.register_buffer("x_indptr", torch.zeros(n + 1, dtype=torch.long))
        self.register_buffer("x_indices", torch.zeros(c.feature_nnz, dtype=torch.long))
        self.register_buffer("x_values", torch.zeros(c.feature_nnz))
        self.register_buffer("y_indptr", torch.zeros(n + 1, dtype=torch.long))
        self.register_buffer("y_indices", torch.zeros(c.label_nnz, dtype=torch.long))
        # per learner: k-means centres, each point's cluster, V in dual form, V x_i
        self.register_buffer("centres", torch.zeros(L, c.n_clusters, c.vocab_size))
        self.register_buffer("assign", torch.zeros(L, n, dtype=torch.long))
        self.register_buffer("dual", torch.zeros(L, d, n))  # column i: Z^T (K + λI)^-1 [:, i]
        self.register_buffer("points", torch.zeros(L, n, d))  # V x_i

    @classmethod
    def config_for_data(cls, config: SLEECConfig, data: TrainingData) -> SLEECConfig:  # type: ignore[override]
        if not len(data.token_ids):
            raise HyperIMError("sleec: the training data came without token ids")
        n = len(data.token_ids)
        feature_nnz = sum(
            len(np.unique(ids[ids >= _NOT_WORDS])) for ids in map(np.asarray, data.token_ids)
        )
        label_nnz = sum(len(np.unique(y)) for y in data.label_lists)
        n_clusters = max(1, min(n, round(n / config.cluster_size)))
        return replace(
            config,
            n_train=n,
            feature_nnz=int(feature_nnz),
            label_nnz=int(label_nnz),
            n_clusters=int(n_clusters),
        )

    # ---------------------------------------------------------------- fitting
    def fit(self, data: TrainingData) -> list[float]:
        """Fit every learner (steps 1-4 of the module docstring) into the buffers; returns
        the SVP residual per iteration, averaged over clusters and learners (weighted by
        ``|Ω|``)."""
        c = self.config
        token_ids = [np.asarray(t) for t in data.token_ids]
        if len(token_ids) != c.n_train:
            raise HyperIMError(
                f"sleec: fitted on {len(token_ids)} documents, sized for {c.n_train}"
            )
        idf = smoothed_idf(document_frequencies(token_ids, c.vocab_size), c.n_train)
        x = tfidf_matrix(token_ids, idf, c.vocab_size)
        y = label_matrix(data.label_lists, c.n_labels)
        counts = np.asarray(y.sum(0)).ravel()
        prior = (counts + 0.5) / (c.n_train + 1.0)
        residuals = np.zeros(c.svp_iterations + 1)
        weight = 0
        centres = np.zeros((c.learners, c.n_clusters, c.vocab_size))
        assign = np.zeros((c.learners, c.n_train), dtype=np.int64)
        dual = np.zeros((c.learners, c.dim, c.n_train))
        points = np.zeros((c.learners, c.n_train, c.dim))
        for learner in range(c.learners):
            seed = data.seed * 1009 + learner
            a, centre = kmeans_clusters(x, c.n_clusters, seed, c.kmeans_iterations)
            assign[learner], centres[learner, : len(centre)] = a, centre
            for cluster in range(c.n_clusters):
                idx = np.flatnonzero(a == cluster)
                if not len(idx):
                    continue
                i, j, g = neighbourhood(y[idx], c.neighbours)
                z, losses = svp_embedding(i, j, g, len(idx), c.dim, c.svp_iterations)
                residuals += np.asarray(losses) * len(g)
                weight += len(g)
                kernel = linear_kernel(x[idx])  # (n_Q, n_Q)
                kernel[np.diag_indices_from(kernel)] += c.ridge
                # kernel.T: the same symmetric matrix in Fortran order, which LAPACK factors
                # in place (a C-ordered one would be copied first)
                w = solve(kernel.T, z, assume_a="pos", overwrite_a=True)  # (n_Q, d)
                del kernel
                dual[learner][:, idx] = w.T
                points[learner][idx] = z - c.ridge * w  # V x_i = K w, as (K + λI) w = Z
            data.log(f"sleec: learner {learner + 1}/{c.learners} fitted")
        dtype = self.idf.dtype
        with torch.no_grad():
            self.idf.copy_(torch.from_numpy(idf))
            self.prior.copy_(torch.from_numpy(prior))
            self.x_indptr.copy_(torch.from_numpy(x.indptr.astype(np.int64)))
            self.x_indices.copy_(torch.from_numpy(x.indices.astype(np.int64)))
            self.x_values.copy_(torch.from_numpy(x.data).to(dtype))
            self.y_indptr.copy_(torch.from_numpy(y.indptr.astype(np.int64)))
            self.y_indices.copy_(torch.from_numpy(y.indices.astype(np.int64)))
            self.centres.copy_(torch.from_numpy(centres))
            self.assign.copy_(torch.from_numpy(assign))
            self.dual.copy_(torch.from_numpy(dual))
            self.points.copy_(torch.from_numpy(points))
        return (residuals / max(weight, 1)).tolist()

    # ---------------------------------------------------------------- prediction
    def features(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, V)`` the documents' TF-IDF rows (step 1, with the training idf)."""
        ids = tokens.masked_fill(~mask, 0)
        tf = torch.zeros(tokens.shape[0], self.config.vocab_size, dtype=self.idf.dtype)
        tf = tf.to(tokens.device).scatter_add_(1, ids, mask.to(tf.dtype))
        tf[:, :_NOT_WORDS] = 0
        w = torch.where(tf > 0, 1 + torch.log(tf.clamp_min(1)), tf) * self.idf  # (B, V)
        return w / w.norm(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)

    def votes(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` the learners' mean share of the ``k`` neighbours that have each label."""
        c = self.config
        if int(self.x_indptr[-1]) != c.feature_nnz or not c.n_train:
            raise HyperIMError("sleec: the model is not fitted (train it: hyperim train)")
        q = self.features(tokens, mask)  # (B, V)
        b = q.shape[0]
        rows = torch.repeat_interleave(
            torch.arange(c.n_train, device=q.device), self.x_indptr[1:] - self.x_indptr[:-1]
        )
        x = torch.sparse_coo_tensor(
            torch.stack([rows, self.x_indices]),
            self.x_values,
            (c.n_train, c.vocab_size),
            is_coalesced=True,  # rows sorted, columns sorted in each row
            check_invariants=False,
        )
        kq = x @ q.T  # (n, B): x_i · x
        out = torch.zeros(b, c.n_labels, dtype=q.dtype, device=q.device)
        y_len = self.y_indptr[1:] - self.y_indptr[:-1]  # (n,)
        for learner in range(c.learners):
            centres = self.centres[learner]  # (K, V)
            near = (2 * q @ centres.T - (centres * centres).sum(1)).argmax(1)  # (B,)
            same = self.assign[learner][:, None] == near[None, :]  # (n, B)
            z = self.dual[learner] @ (kq * same)  # (d, B): V x
            pts = self.points[learner]  # (n, d)
            dist = (pts * pts).sum(1)[:, None] - 2 * pts @ z + (z * z).sum(0)[None, :]
            dist = dist.masked_fill(~same, float("inf"))  # (n, B)
            k = min(c.k, c.n_train)
            d_k, nn = dist.topk(k, dim=0, largest=False)  # (k, B)
            found = torch.isfinite(d_k)  # a cluster smaller than k
            share = found.to(q.dtype) / found.sum(0).clamp_min(1)  # (k, B)
            # every neighbour's labels: (pairs,) doc, label, weight
            who = nn.T.reshape(-1)  # (B k,)
            weight = share.T.reshape(-1)
            doc = torch.arange(b, device=q.device).repeat_interleave(k)
            n_lab = y_len[who]
            start = self.y_indptr[who]
            rep = torch.repeat_interleave(torch.arange(len(who), device=q.device), n_lab)
            offset = torch.arange(len(rep), device=q.device) - torch.repeat_interleave(
                torch.cumsum(n_lab, 0) - n_lab, n_lab
            )
            labels = self.y_indices[start[rep] + offset]
            out.index_put_((doc[rep], labels), weight[rep], accumulate=True)
        return out / c.learners

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` calibrated logits of every label: the votes smoothed by the prior."""
        c = self.config
        k, a = float(c.k), c.prior_weight
        p = (k * self.votes(tokens, mask) + a * self.prior) / (k + a)
        eps = 1e-6
        p = p.clamp(eps, 1 - eps)
        return torch.log(p) - torch.log1p(-p)

    def score_chunk(self, encoded: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return encoded[:, lo:hi]

    def score_subset(self, encoded: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return encoded.gather(1, labels)

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.encode_batch(tokens, mask)
        if labels is not None:
            logits = self.score_subset(logits, labels)
        loss = None if targets is None else bce_loss(logits, targets, target_mask)
        return logits, loss

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        return []  # nothing is trained by gradients
