"""HMCN-F: levels of unequal paths and DAGs, its loss terms, P_F, no hierarchy, XML-CNN."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperim.api import HyperIM
from hyperim.config import TrainConfig
from hyperim.data.hierarchy import Hierarchy
from hyperim.data.vocab import LabelIndex
from hyperim.errors import HyperIMError
from hyperim.models.base import TrainingData, bce_loss
from hyperim.models.hmcnf import (
    HMCNFConfig,
    HMCNFModel,
    hierarchy_edges,
    hierarchy_levels,
    mixed_logits,
    violation_penalty,
)
from hyperim.nn.xmlcnn import XMLCNNEncoder, chunk_members, dynamic_max_pool
from hyperim.train import train

# a path of 4 levels (a > b > c > d), a short one (a > e), a DAG child (d under c and the
# root x, at depths 3 and 1), and z outside the hierarchy
EDGES = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "e"), ("x", "d")]
NAMES = ["a", "b", "c", "d", "e", "x", "z"]
HIERARCHY = Hierarchy(["a", "b", "c", "d", "e", "x"], sorted(EDGES), ["a", "x"])


def data(hierarchy=HIERARCHY, names=NAMES, n_docs: int = 6) -> TrainingData:
    rng = np.random.default_rng(0)
    lists = [np.sort(rng.choice(len(names), 2, replace=False)) for _ in range(n_docs)]
    return TrainingData([], lists, None, LabelIndex(names), hierarchy, log=lambda m: None)


def model(d: TrainingData | None = None, **kw) -> HMCNFModel:
    d = d or data()
    torch.manual_seed(0)
    options = dict(word_dim=6, filters=4, bottleneck=8, hidden=8, word_init="random")
    cfg = HMCNFConfig(vocab_size=20, n_labels=len(d.labels), max_len=16, **{**options, **kw})
    m = HMCNFModel(HMCNFModel.config_for_data(cfg, d).validate())
    m.init_from_data(d)
    return m.double().eval()


def test_levels_are_longest_paths_and_every_parent_comes_before_its_children() -> None:
    levels = dict(zip(NAMES, hierarchy_levels(HIERARCHY, NAMES).tolist(), strict=True))
    assert levels == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 1, "x": 0, "z": 0}
    edges = hierarchy_edges(HIERARCHY, NAMES)
    assert edges.tolist() == [[0, 1], [0, 4], [1, 2], [2, 3], [5, 3]]  # d once per parent
    assert all(levels[NAMES[p]] < levels[NAMES[c]] for p, c in edges)
    # a level no known label uses is dropped, the order kept: without b and e, c is level 1
    names = ["a", "c", "d", "x"]
    assert hierarchy_levels(HIERARCHY, names).tolist() == [0, 1, 2, 0]
    assert hierarchy_edges(HIERARCHY, names).tolist() == [[1, 2], [3, 2]]
    cfg = HMCNFModel.config_for_data(HMCNFConfig(n_labels=7), data())
    assert (cfg.n_levels, cfg.level_sizes, cfg.n_edges) == (4, [3, 2, 1, 1], 5)


def test_no_hierarchy_is_one_level_and_no_penalty() -> None:
    for hierarchy in (None, Hierarchy(["a", "b"], [], ["a", "b"])):
        assert hierarchy_levels(hierarchy, NAMES).tolist() == [0] * 7
        assert hierarchy_edges(hierarchy, NAMES).shape == (0, 2)
        m = model(data(hierarchy))
        assert (m.config.n_levels, m.config.level_sizes, m.edges.shape) == (1, [7], (0, 2))
        assert len(m.hmcn.local_outs) == 1 and len(m.hmcn.global_layers) == 1
    assert violation_penalty(torch.rand(3, 7), torch.zeros(0, 2, dtype=torch.long)) == 0


def test_violation_penalty_on_hand_made_probabilities() -> None:
    edges = torch.tensor([[0, 1], [0, 2], [3, 2]])  # label 2 has two parents, 0 and 3
    consistent = torch.tensor([[0.9, 0.5, 0.2, 0.3], [0.4, 0.4, 0.1, 0.1]])
    assert violation_penalty(consistent, edges) == 0
    p = torch.tensor([[0.4, 0.7, 0.5, 0.1], [0.5, 0.1, 0.2, 0.9]], dtype=torch.float64)
    # doc 1: (0.7-0.4)^2 + (0.5-0.4)^2 + (0.5-0.1)^2; doc 2: nothing; mean over documents
    want = (0.3**2 + 0.1**2 + 0.4**2) / 2
    assert violation_penalty(p, edges).item() == pytest.approx(want)
    q = p.clone().requires_grad_()
    violation_penalty(q, edges).backward()
    assert q.grad is not None
    assert q.grad[0, 2].item() == pytest.approx((2 * 0.1 + 2 * 0.4) / 2)  # both parents
    assert q.grad[1].abs().sum() == 0


def test_final_probability_mixes_local_and_global_outputs() -> None:
    z_local = torch.tensor([[-60.0, -3.0, 0.0, 2.0, 60.0]], dtype=torch.float64)
    z_global = torch.tensor([[40.0, 1.0, -1.0, 2.0, 40.0]], dtype=torch.float64)
    for beta in (0.0, 0.3, 0.5, 1.0):
        logits = mixed_logits(z_global, z_local, beta)
        p = beta * torch.sigmoid(z_local) + (1 - beta) * torch.sigmoid(z_global)
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(torch.sigmoid(logits), p, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(mixed_logits(z_global, z_local, 1.0), z_local)
    torch.testing.assert_close(mixed_logits(z_global, z_local, 0.0), z_global)
    # where both flows are sure, P_F's logit stays exact (1 - P_F = e^-40 / 2 + e^-60 / 2,
    # while P_F itself rounds to 1 in float64)
    want = -math.log(0.5 * math.exp(-40) + 0.5 * math.exp(-60))
    assert mixed_logits(z_global, z_local, 0.5)[0, 4].item() == pytest.approx(want, rel=1e-12)


def test_loss_is_global_plus_local_plus_weighted_penalty() -> None:
    m = model(violation_weight=0.25)
    tokens, mask = torch.randint(2, 20, (5, 9)), torch.ones(5, 9, dtype=torch.bool)
    targets = (torch.rand(5, 7) < 0.4).double()
    logits, loss = m(tokens, mask, targets=targets)
    z_global, z_local = m.outputs(tokens, mask)
    p = 0.5 * torch.sigmoid(z_local) + 0.5 * torch.sigmoid(z_global)
    want = bce_loss(z_global, targets, None) + bce_loss(z_local, targets, None)
    want = want + 0.25 * violation_penalty(p, m.edges)
    assert loss is not None
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(torch.sigmoid(logits), p)
    torch.testing.assert_close(m.score_all(tokens, mask), logits)
    with pytest.raises(ValueError, match="every label"):
        m(tokens, mask, torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2))


def test_each_level_has_its_own_local_output() -> None:
    """Level h's labels are scored by W_L^h (rows in label-id order), placed back by label."""
    m = model()
    tokens, mask = torch.randint(2, 20, (3, 9)), torch.ones(3, 9, dtype=torch.bool)
    levels = m.hmcn.label_level.tolist()
    assert levels == [0, 1, 2, 3, 1, 0, 0]
    before = m.outputs(tokens, mask)[1]
    with torch.no_grad():
        m.hmcn.local_outs[1].bias += torch.tensor([1.0, 2.0], dtype=torch.float64)
    moved = m.outputs(tokens, mask)[1] - before
    torch.testing.assert_close(moved[:, 1], torch.ones(3, dtype=torch.float64))  # b
    torch.testing.assert_close(moved[:, 4], torch.full((3,), 2.0, dtype=torch.float64))  # e
    assert moved[:, [0, 2, 3, 5, 6]].abs().max() == 0
    # the output biases start at each label's prior logit, global and local alike
    fresh = model()
    z_global, z_local = fresh.hmcn.global_out.bias, fresh.hmcn.local_outs[2].bias
    assert z_local.item() == pytest.approx(z_global[2].item())  # c, alone at level 2
    cfg = HMCNFConfig(vocab_size=20, n_labels=7, word_init="random").validate()
    with pytest.raises(HyperIMError, match="levels do not match"):
        HMCNFModel(cfg).init_from_data(data())  # sized without config_for_data


def test_xmlcnn_features_ignore_padding_and_the_batch() -> None:
    torch.manual_seed(0)
    enc = XMLCNNEncoder(5, widths=(2, 4, 8), filters=3, chunks=3, hidden=6).double().eval()
    words = torch.randn(2, 10, 5, dtype=torch.float64)
    mask = torch.arange(10)[None, :] < torch.tensor([[10], [4]])
    base = enc(words, mask)
    padded = torch.cat([words, 100 * torch.randn(2, 7, 5, dtype=torch.float64)], dim=1)
    wide = torch.cat([mask, torch.zeros(2, 7, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(enc(padded, wide), base, rtol=0, atol=0)
    torch.testing.assert_close(enc(words[1:, :4], mask[1:, :4]), base[1:])  # alone = batched


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 13])
def test_dynamic_max_pooling_of_short_and_long_texts(n: int) -> None:
    """Chunks of the text's own length, those of adaptive max pooling; none empty for n >= 1,
    also below p chunks and below the widest filter."""
    p = 3
    mask = torch.arange(13)[None, :] < n
    members = chunk_members(mask, p)[0]
    if n:
        assert members.any(-1).all() and not members[:, n:].any()
    feats = torch.rand(1, 4, 13)
    pooled = dynamic_max_pool(feats, mask, p)
    want = (
        torch.nn.functional.adaptive_max_pool1d(feats[..., :n], p).flatten(1)
        if n
        else torch.zeros(1, 4 * p)
    )
    torch.testing.assert_close(pooled, want)
    enc = XMLCNNEncoder(5, widths=(2, 4, 8), filters=3, chunks=p, hidden=6).eval()
    out = enc(torch.randn(1, 13, 5), mask)
    assert out.shape == (1, 6) and torch.isfinite(out).all()


def test_bad_options_are_one_line() -> None:
    for options, needle in (
        ({"beta": 1.5}, "beta must be in"),
        ({"filter_widths": "2,x"}, "filter_widths must be"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"violation_weight": -1.0}, "violation_weight"),
        ({"n_labels": 3, "n_levels": 2, "level_sizes": [1, 1]}, "level_sizes"),
    ):
        with pytest.raises(HyperIMError, match=needle) as e:
            HMCNFConfig(**options).validate()
        assert "\n" not in str(e.value)


def test_trains_and_loads_without_a_hierarchy(tiny_dataset: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset, flat)
    (flat / "hierarchy.tsv").unlink()
    cfg = TrainConfig.of(
        model="hmcnf",
        max_len=24,
        batch_size=16,
        epochs=1,
        word_dim=6,
        filters=4,
        hidden=8,
        word_init="random",
    )
    train(flat, tmp_path / "run", cfg, progress=False)
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["model"]
    assert (saved["n_levels"], saved["level_sizes"], saved["n_edges"]) == (1, [6], 0)
    m = HyperIM.from_pretrained(tmp_path / "run")
    assert m.model.edges.shape == (0, 2)
    probs = m.predict_proba(["cat kitten", "drill bit"])
    assert probs.shape == (2, 6) and np.isfinite(probs).all()
