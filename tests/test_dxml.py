"""DXML: the label co-occurrence graph, DeepWalk's walks and vectors, the model's loss terms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperim.errors import HyperIMError
from hyperim.models.base import TrainingData, bce_loss
from hyperim.models.dxml import DXMLConfig, DXMLModel, document_idf
from hyperim.pretrain.deepwalk import (
    deepwalk_label_vectors,
    label_cooccurrence,
    random_walks,
    stable_hash,
)

#: Two blocks of labels that co-occur within (0-3, 4-7), never across; 8 is always alone and
#: 9 never occurs.
BLOCKS = [np.array(x) for x in ([0, 1, 2], [1, 2, 3], [0, 3], [4, 5, 6], [5, 6, 7], [4, 7], [8])]
N_LABELS = 10


def cosine(v: np.ndarray, a: int, b: int) -> float:
    return float(v[a] @ v[b] / (np.linalg.norm(v[a]) * np.linalg.norm(v[b])))


def test_cooccurrence_graph_counts_shared_documents() -> None:
    g = label_cooccurrence([np.array([0, 1, 2]), np.array([1, 2]), np.array([2, 2, 3])], 5)
    dense = g.toarray()
    assert (dense == dense.T).all() and (np.diag(dense) == 0).all()
    assert dense[1, 2] == 2 and dense[0, 1] == 1 and dense[2, 3] == 1  # a repeat counts once
    assert dense[0, 3] == 0 and dense[4].sum() == 0


def test_walks_follow_edges_in_proportion_to_their_counts() -> None:
    # 0 - 1 seen together 9 times, 0 - 2 once
    lists = [np.array([0, 1])] * 9 + [np.array([0, 2]), np.array([3])]
    g = label_cooccurrence(lists, 4)
    rng = np.random.default_rng(0)
    walks = random_walks(g, 200, 6, rng)
    assert walks.shape == (3 * 200, 6) and not (walks == 3).any()  # 3 has no neighbour
    dense = g.toarray()
    assert (dense[walks[:, :-1], walks[:, 1:]] > 0).all()  # every step is an edge
    after_zero = walks[:, 1:][walks[:, :-1] == 0]
    assert abs(np.mean(after_zero == 1) - 0.9) < 0.03  # weighted: 9 to 1
    uniform = random_walks(g, 200, 6, np.random.default_rng(0), weighted=False)
    after_zero = uniform[:, 1:][uniform[:, :-1] == 0]
    assert abs(np.mean(after_zero == 1) - 0.5) < 0.05
    # each pass starts once from every label that has a neighbour, in a shuffled order
    assert sorted(walks[:3, 0].tolist()) == [0, 1, 2]


def test_labels_that_cooccur_end_up_closer_and_isolated_ones_get_a_vector() -> None:
    v, isolated = deepwalk_label_vectors(BLOCKS * 5, N_LABELS, 16, seed=3)
    assert v.shape == (N_LABELS, 16) and v.dtype == np.float32
    assert isolated.tolist() == [False] * 8 + [True, True]
    within = [cosine(v, a, b) for a, b in ((0, 1), (1, 3), (4, 5), (6, 7))]
    across = [cosine(v, a, b) for a, b in ((0, 4), (1, 5), (3, 6), (2, 7))]
    assert min(within) > max(across), (within, across)
    norms = np.linalg.norm(v, axis=1)
    rms = np.sqrt((norms[:8] ** 2).mean())
    np.testing.assert_allclose(norms[8:], rms, rtol=1e-5)  # random directions at the RMS norm
    assert abs(cosine(v, 8, 9)) < 0.99
    # no label has a neighbour: every vector is a random unit direction
    alone, iso = deepwalk_label_vectors([np.array([0]), np.array([1])], 3, 4, seed=0)
    assert iso.all() and np.allclose(np.linalg.norm(alone, axis=1), 1.0)


def test_deepwalk_is_identical_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    here, _ = deepwalk_label_vectors(BLOCKS, N_LABELS, 8, seed=5, walks_per_label=3)
    script = (
        "import sys, numpy as np\n"
        "from tests.test_dxml import BLOCKS, N_LABELS\n"
        "from hyperim.pretrain.deepwalk import deepwalk_label_vectors\n"
        "v, _ = deepwalk_label_vectors(BLOCKS, N_LABELS, 8, seed=5, walks_per_label=3)\n"
        "np.save(sys.argv[1], v)\n"
    )
    out = tmp_path / "there.npy"
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]),
    }
    p = subprocess.run(
        [sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.load(out), here)
    assert stable_hash("17") == 1_060_745_282  # CRC-32: the same in every process
    other, _ = deepwalk_label_vectors(BLOCKS, N_LABELS, 8, seed=6, walks_per_label=3)
    assert not np.array_equal(other, here)


def small(**kw) -> DXMLConfig:
    return DXMLConfig(
        vocab_size=12, n_labels=N_LABELS, max_len=8, dim=4, word_dim=6, hidden_dim=5, **kw
    ).validate()


def test_loss_is_eq7_plus_dxml_smooth_l1_to_the_mean_of_the_labels_vectors() -> None:
    torch.manual_seed(0)
    model = DXMLModel(small(dropout=0.0, regression_weight=0.5)).double()
    tokens = torch.tensor([[2, 3, 4, 0], [5, 5, 0, 0], [6, 7, 8, 9]])
    mask = tokens > 0
    labels = torch.tensor([[0, 1, 7], [2, 0, 9], [3, 0, 4]])  # positives first, then negatives
    targets = torch.tensor([[1.0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float64)
    tmask = torch.tensor([[1.0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=torch.float64)
    logits, loss = model(tokens, mask, labels, targets, tmask)
    point = model.encode_batch(tokens, mask)[0]  # (B, d)
    v = model.labels.detach()
    centre = torch.stack([(v[0] + v[1]) / 2, v[2], torch.zeros(4, dtype=torch.float64)])
    r = point - centre
    huber = torch.where(r.abs() < 1, 0.5 * r**2, r.abs() - 0.5).sum(1)
    want = bce_loss(logits, targets, tmask) + 0.5 * (huber[0] + huber[1]) / 3  # doc 3: no labels
    torch.testing.assert_close(loss, want)
    # the inner-product scores, every label at once and per document alike
    full, all_loss = model(tokens, mask, None, torch.zeros(3, N_LABELS, dtype=torch.float64))
    torch.testing.assert_close(full.gather(1, labels), logits)
    scale = model.log_scale.exp()
    torch.testing.assert_close(full, scale * point @ v.T + model.label_bias)
    assert all_loss is not None
    # fixed DeepWalk vectors by default: no gradient reaches them
    loss.backward()
    assert model.labels.grad is None and model.words.grad is not None
    trainable = DXMLModel(small(label_trainable=True))
    trainable(tokens, mask, labels, targets.float(), tmask.float())[1].backward()
    assert trainable.labels.grad is not None


def test_tfidf_pooling_weights_rare_words_and_words_alone_give_the_evidence() -> None:
    from hyperim.data.vocab import Vocabulary

    vocab = Vocabulary(["<pad>", "<unk>", "common", "rare"])
    idf = document_idf([["common", "rare"], ["common"], ["common", "x", "common"]], vocab, 8)
    np.testing.assert_allclose(idf[2:], [np.log(4 / 4) + 1, np.log(4 / 2) + 1], rtol=1e-6)
    model = DXMLModel(small(hidden_layers=0)).eval()
    with torch.no_grad():
        model.idf[:] = torch.arange(1.0, 13.0)
        model.words[:] = torch.randn(12, 6)
    tokens = torch.tensor([[2, 3, 3, 0]])
    mask = tokens > 0
    point, e, _ = model.encode_batch(tokens, mask)
    h0 = (3 * model.words[2] + 4 * model.words[3] * 2) / (3 + 4 + 4)
    torch.testing.assert_close(point[0], model.out(h0))
    ids = torch.tensor([[1, 5]])
    s = model.word_label_scores((point, e, mask), ids)  # (1, 2, 4)
    alone = model.encode_batch(torch.tensor([[3]]), torch.tensor([[True]]))[0]  # word 3 alone
    scale = model.log_scale.exp()
    torch.testing.assert_close(s[0, :, 1], scale * (alone @ model.labels[[1, 5]].T)[0])
    mean = DXMLModel(small(hidden_layers=0, pooling="mean")).eval()
    mean.load_state_dict(model.state_dict())
    torch.testing.assert_close(mean.encode_batch(tokens, mask)[0][0], model.out(e[0, :3].mean(0)))
    # a document without tokens maps to f(0), not NaN
    empty = model.encode_batch(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3).bool())
    assert torch.isfinite(empty[0]).all()


def test_starts_from_data_without_a_hierarchy_and_caches_deepwalk(tmp_path: Path) -> None:
    from hyperim.data.vocab import LabelIndex, Vocabulary

    docs = [["a", "b"], ["b", "c"], ["c"], ["a"]] * 5
    lists = [np.array([0, 1]), np.array([1, 2]), np.array([3]), np.array([0])] * 5
    vocab = Vocabulary.build(docs)
    config = small(word_init="random").with_data(vocab_size=len(vocab), n_labels=4)
    said: list[str] = []
    data = TrainingData(
        docs, lists, vocab, LabelIndex(list("wxyz")), None, 1, tmp_path, said.append
    )
    model = DXMLModel(config)
    model.init_from_data(data)
    (cached,) = tmp_path.glob("labels.deepwalk.4d.10x40.w5.e5.weighted.npz")
    assert any("1/4 labels without a co-occurring label" in s for s in said)
    v = model.labels.detach()
    torch.testing.assert_close((v**2).sum(1).mean(), torch.tensor(1.0))  # RMS norm 1
    # logits start at the prior: f(x) is 0 until it learns
    tokens, mask = torch.tensor([[2, 3]]), torch.ones(1, 2, dtype=torch.bool)
    logits, _ = model(tokens, mask)
    torch.testing.assert_close(logits[0], model.label_bias.detach())
    # a second start reads the cached table: the same vectors without walking again
    said.clear()
    again = DXMLModel(config)
    again.init_from_data(data)
    assert torch.equal(again.labels, model.labels) and not any("DeepWalk" in s for s in said)
    assert cached.exists()


def test_bad_options_are_one_line() -> None:
    for bad, needle in (
        ({"pooling": "max"}, "pooling must be one of tfidf, mean"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"walk_length": 1}, "walk_length must be >= 2"),
        ({"regression_weight": -1.0}, "regression_weight must be >= 0"),
        ({"scale_init": 0.0}, "scale_init must be > 0"),
        ({"word_init": "/no/such/file.txt"}, "word_init must be one of"),
    ):
        with pytest.raises(HyperIMError, match=needle) as e:
            DXMLConfig(**bad).validate()
        assert "\n" not in str(e.value)


def test_trains_on_a_dataset_without_a_hierarchy(tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil

    from hyperim.train import train
    from tests.test_families import config

    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset, flat)
    (flat / "hierarchy.tsv").unlink()
    run = tmp_path / "run"
    train(flat, run, config("dxml", epochs=2), progress=False)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and log[-1]["valid"]["nDCG@3"] > 0
