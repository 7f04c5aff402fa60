"""Pre-trained Euclidean word vectors lifted into a product of Poincaré balls (glove6b start)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hyperim.config import TrainConfig
from hyperim.geometry.poincare import logmap0
from hyperim.pretrain.ball_vectors import ball_points, lift_matrix
from hyperim.train import train
from tests.test_vectors import fake_glove_package, forget_glove_module


def vectors(n: int = 40, k: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, k)) + 3.0  # off-centre on purpose


def test_lift_keeps_the_geometry_of_the_centred_vectors() -> None:
    g = vectors()
    found = np.ones(len(g), dtype=bool)
    found[[0, 5]] = False  # e.g. <pad> and a word GloVe lacks
    points, stats = ball_points(g, found, n_balls=6, ball_dim=2, radius=0.2, seed=3)
    assert points.shape == (40, 6, 2)
    assert torch.all(points[~torch.from_numpy(found)] == 0)
    tangent = logmap0(points).reshape(40, 12).numpy()[found]
    per_ball = np.linalg.norm(tangent.reshape(-1, 6, 2), axis=-1)
    assert np.sqrt((per_ball**2).mean()) == pytest.approx(0.2, rel=1e-9)
    centred = g[found] - g[found].mean(0)
    # an orthonormal lift times one scale: every pairwise distance in the same ratio
    d_in = np.linalg.norm(centred[:, None] - centred[None], axis=-1)
    d_out = np.linalg.norm(tangent[:, None] - tangent[None], axis=-1)
    ratio = d_out[d_in > 0] / d_in[d_in > 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    assert np.allclose(tangent.mean(0), 0, atol=1e-12)  # centred: spread around the origin
    assert stats["max_ball_norm"] < 1


def test_lift_is_seeded_and_spreads_over_every_ball() -> None:
    g = vectors()
    found = np.ones(len(g), dtype=bool)
    a, _ = ball_points(g, found, 6, 2, 0.2, seed=1)
    b, _ = ball_points(g, found, 6, 2, 0.2, seed=1)
    c, _ = ball_points(g, found, 6, 2, 0.2, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a.norm(dim=-1).mean(0) > 0.05).all()  # no ball left empty


def test_fewer_coordinates_than_the_vectors_take_the_principal_directions() -> None:
    g = vectors(k=8)
    a = lift_matrix(8, 3, g - g.mean(0), seed=0)
    assert a.shape == (3, 8)
    np.testing.assert_allclose(a @ a.T, np.eye(3), atol=1e-12)
    top = np.linalg.svd(g - g.mean(0), full_matrices=False)[2][0]
    assert abs(abs(a[0] @ top) - 1) < 1e-9


def test_hyperim_trains_from_glove6b(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = ["cat", "dog", "kitten", "puppy", "drill", "saw", "hammer", "zebra", "wrench"]
    site = fake_glove_package(tmp_path / "glove", words, vectors(len(words), 50).astype("f4"))
    forget_glove_module(monkeypatch)
    monkeypatch.syspath_prepend(str(site))
    cfg = TrainConfig.of(
        epochs=1, n_balls=4, max_len=24, min_count=1, batch_size=16, negatives=3,
        word_init="glove6b", label_init="random",
    )  # fmt: skip
    train(tiny_dataset, tmp_path / "run", cfg, progress=False)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    from hyperim.data import Vocabulary

    vocab = Vocabulary.load(tmp_path / "run" / "vocab.json")
    table = state["words.weight"]
    known = [vocab.tokens.index(w) for w in words if w in vocab.tokens]
    assert len(known) >= 4
    assert (table[known].norm(dim=-1) < 1).all()
    # words no training text has joined the vocabulary with their lifted GloVe start, which
    # training leaves alone (no gradient ever reaches them)
    assert {"zebra", "wrench"} <= set(vocab.tokens)
    from hyperim.pretrain.vectors import load_glove6b, vectors_for_vocab

    names, vecs = load_glove6b()
    g, found = vectors_for_vocab(names, vecs, vocab.tokens)
    found[:2] = False
    start, _ = ball_points(g, found, 4, 2, 0.1 * (2 / 3) ** 0.5, seed=0)
    for w in ("zebra", "wrench"):
        i = vocab.tokens.index(w)
        torch.testing.assert_close(table[i].double(), start[i], rtol=0, atol=1e-6)
    from hyperim.api import HyperIM

    m = HyperIM.from_pretrained(tmp_path / "run")
    assert m.vocab.token_to_id("zebra") != m.vocab.UNK
