"""SLEEC's pieces: TF-IDF rows, SVP embeddings, the Lanczos projection, k-NN votes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hyperim.config import TrainConfig
from hyperim.errors import HyperIMError
from hyperim.models.sleec import (
    SLEECConfig,
    SLEECModel,
    document_frequencies,
    linear_kernel,
    neighbourhood,
    smoothed_idf,
    svp_embedding,
    tfidf_matrix,
    top_psd,
)
from hyperim.train import build_model, prepare, training_data


def test_tfidf_rows_are_scikit_learns_sublinear_smoothed_tfidf() -> None:
    from sklearn.feature_extraction.text import TfidfTransformer

    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 12, size=rng.integers(1, 15)) for _ in range(30)]
    docs.append(np.array([0, 1, 1]))  # only <pad>/<unk>: an empty row
    x = tfidf_matrix(docs, smoothed_idf(document_frequencies(docs, 12), len(docs)), 12)
    counts = np.zeros((len(docs), 12))
    for i, d in enumerate(docs):
        np.add.at(counts[i], d[d >= 2], 1)
    want = TfidfTransformer(sublinear_tf=True).fit_transform(counts[:, 2:]).toarray()
    np.testing.assert_allclose(x.toarray()[:, 2:], want, atol=1e-12)
    assert not x[:, :2].nnz and x[-1].nnz == 0


def test_linear_kernel_in_row_blocks_is_x_xt() -> None:
    x = sp.random(50, 30, density=0.2, random_state=4, format="csr")
    np.testing.assert_allclose(linear_kernel(x, rows=7), (x @ x.T).toarray(), atol=1e-12)


def test_lanczos_projection_equals_the_dense_eigendecomposition() -> None:
    rng = np.random.default_rng(1)
    n, d = 120, 6  # n > 3 d: the Lanczos path
    u = np.linalg.qr(rng.normal(size=(n, 4)))[0]
    lam = np.array([3.0, 2.0, 1.0, 0.5])
    s = sp.random(n, n, density=0.05, random_state=2)
    s = (s + s.T).tocsr()
    vecs, vals = top_psd(u, lam, s, d, dense_up_to=0)
    dense = (u * lam) @ u.T + s.toarray()
    w, v = np.linalg.eigh(dense)
    np.testing.assert_allclose(vals, np.clip(w[::-1][:d], 0, None), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        (vecs * vals) @ vecs.T, (v[:, -d:] * w[-d:]) @ v[:, -d:].T, atol=1e-7
    )
    again = top_psd(u, lam, s, d, dense_up_to=0)  # a fixed start: the same digits
    assert np.array_equal(again[0], vecs) and np.array_equal(again[1], vals)


def test_lanczos_that_does_not_converge_keeps_the_pairs_that_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scipy.sparse.linalg import ArpackNoConvergence

    import hyperim.models.sleec as sleec

    def stuck(*args, **kwargs):
        vecs = np.eye(40)[:, :2]
        raise ArpackNoConvergence("no convergence", np.array([1.0, 3.0]), vecs)

    monkeypatch.setattr(sleec, "eigsh", stuck)
    s = sp.identity(40, format="csr")
    vecs, vals = top_psd(np.zeros((40, 0)), np.zeros(0), s, 5, dense_up_to=0)
    assert vals.tolist() == [3.0, 1.0] and vecs.shape == (40, 2)  # rank 2, largest first
    assert vecs[1, 0] == 1.0


def test_svp_recovers_a_low_rank_gram_matrix_from_its_neighbourhoods() -> None:
    rng = np.random.default_rng(3)
    y = sp.csr_matrix((rng.random((80, 10)) < 0.3).astype(float))
    i, j, g = neighbourhood(y, 8)
    assert np.all(g[i == j][np.asarray(y.sum(1)).ravel()[i[i == j]] > 0] > 0.999)  # ŷ·ŷ = 1
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    assert all((b, a) in pairs for a, b in pairs)  # symmetric
    z, losses = svp_embedding(i, j, g, 80, 10, 15)
    assert losses[-1] < 0.01 * losses[0]  # rank 10 can hold the cosine Gram exactly
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(losses))
    rms = float(np.sqrt(np.mean(((z[i] * z[j]).sum(1) - g) ** 2)))  # Z Z^T on Ω
    assert rms < 0.05 and rms == pytest.approx(np.sqrt(losses[-1]))


def _fitted(tiny_dataset: Path, tmp_path: Path, **options) -> tuple[SLEECModel, object]:
    cfg = TrainConfig.of(model="sleec", max_len=24, min_count=1, dim=8, **options).validate()
    prep = prepare(tiny_dataset, cfg)
    data = training_data(prep, cfg, tmp_path, quiet=True)
    model = build_model(cfg, len(prep.vocab), len(prep.labels), data=data)
    assert isinstance(model, SLEECModel)
    return model, prep


def test_one_neighbour_votes_for_a_training_documents_own_labels(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """``z = V x`` of a training document is its own stored ``V x_i``: with k = 1 and one
    learner its vote is its own label vector."""
    model, prep = _fitted(tiny_dataset, tmp_path, k=1, learners=1, cluster_size=50)
    assert model.config.n_clusters == 3 and model.config.n_train == 160
    losses = model.fit(training_data(prep, TrainConfig.of(model="sleec"), tmp_path, quiet=True))
    assert losses[-1] < losses[0]
    from hyperim.data.batching import pad_tokens

    tokens, mask = pad_tokens(prep.train.tokens[:40])
    votes = model.votes(tokens, mask)
    want = torch.zeros_like(votes)
    for r, y in enumerate(prep.train.labels[:40]):
        want[r, torch.from_numpy(y)] = 1.0
    assert (votes == want).all(1).float().mean() >= 0.95  # duplicates may vote for each other
    # the documents' TF-IDF rows in torch equal the fit's (scipy) rows
    q = model.features(tokens, mask)
    idf = model.idf.double().numpy()
    x = tfidf_matrix(prep.train.tokens[:40], idf, model.config.vocab_size).toarray()
    np.testing.assert_allclose(q.double().numpy(), x, atol=1e-6)


def test_an_unfitted_model_says_so(tiny_dataset: Path, tmp_path: Path) -> None:
    model, _ = _fitted(tiny_dataset, tmp_path, learners=1)
    tokens, mask = torch.tensor([[2, 3]]), torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(HyperIMError, match="sleec: the model is not fitted"):
        model.score_all(tokens, mask)


def test_the_fit_repeats_exactly_and_sizes_come_from_the_data(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    a, prep = _fitted(tiny_dataset, tmp_path, learners=2, cluster_size=80)
    b, _ = _fitted(tiny_dataset, tmp_path, learners=2, cluster_size=80)
    data = training_data(prep, TrainConfig.of(model="sleec"), tmp_path, quiet=True)
    assert a.fit(data) == b.fit(data)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert a.config.label_nnz == sum(len(y) for y in prep.train.labels)
    assert a.config.feature_nnz == int((a.x_values != 0).sum())
    assert not list(a.parameters()) and a.configure_optimizers(None) == []


def test_bad_options_are_one_line() -> None:
    with pytest.raises(HyperIMError, match="invalid option: k must be >= 1"):
        SLEECConfig(k=0).validate()
    with pytest.raises(HyperIMError, match="ridge must be > 0"):
        SLEECConfig(ridge=0.0).validate()
    with pytest.raises(HyperIMError, match=r"unknown option\(s\) n_train"):
        TrainConfig.of(model="sleec", n_train=5).model_config()
