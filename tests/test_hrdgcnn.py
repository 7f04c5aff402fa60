"""HR-DGCNN's own parts: the graph of words, the sub-graph grid, the recursive regularisation,
short and padded documents, and a dataset without a hierarchy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperim.config import TrainConfig
from hyperim.data import Hierarchy, LabelIndex
from hyperim.errors import HyperIMError
from hyperim.models.base import TrainingData, bce_loss
from hyperim.models.hrdgcnn import (
    MIN_NODES,
    HRDGCNNConfig,
    HRDGCNNModel,
    subgraph_grid,
    word_graph,
)
from hyperim.train import train

A, B, C, D, E = 2, 3, 4, 5, 6  # word ids (0 is <pad>, 1 is <unk>)


def batch(*docs: list[int], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    t = length or max(len(d) for d in docs)
    tokens = torch.zeros(len(docs), t, dtype=torch.long)
    for i, d in enumerate(docs):
        tokens[i, : len(d)] = torch.tensor(d, dtype=torch.long)
    return tokens, tokens != 0


def model(n_labels: int = 3, n_edges: int = 0, **options) -> HRDGCNNModel:
    options = {"word_dim": 4, "nodes": MIN_NODES, "word_init": "random", **options}
    cfg = HRDGCNNConfig(vocab_size=10, n_labels=n_labels, n_edges=n_edges, **options)
    return HRDGCNNModel(cfg.validate())


def data(labels: list[str], edges: list[tuple[str, str]] | None) -> TrainingData:
    hierarchy = None
    if edges is not None:
        children = {c for _, c in edges}
        hierarchy = Hierarchy(sorted(labels), sorted(edges), sorted(set(labels) - children))
    return TrainingData([], [np.array([0])], None, LabelIndex(labels), hierarchy)


def test_graph_of_words_weights_and_ranking() -> None:
    # a b a c d e with a window of 3 tokens: pairs at distance 1 and 2, a-a is no edge
    g = word_graph(*batch([A, B, A, C, D, E]), window=3)
    assert g.words.tolist() == [[A, B, C, D, E]]  # nodes in word-id order
    want = torch.zeros(5, 5, dtype=torch.long)
    pairs = {(0, 1): 2, (0, 2): 1, (0, 3): 1, (1, 2): 1, (2, 3): 1, (2, 4): 1, (3, 4): 1}
    for (u, v), w in pairs.items():
        want[u, v] = want[v, u] = w
    assert torch.equal(g.weights[0], want)
    # degree c 4; a, d 3 (a more frequent); b, e 2 (b first)
    assert g.order.tolist() == [[2, 0, 3, 1, 4]]
    assert g.rank.tolist() == [[1, 3, 0, 2, 4]]
    # a window of 2 tokens joins neighbours only
    g2 = word_graph(*batch([A, B, A, C, D, E]), window=2)
    assert int(g2.weights[0, 0, 3]) == 0 and int(g2.weights[0, 0, 1]) == 2


def test_subgraph_grid_ranks_neighbours_by_weight_then_rank() -> None:
    g = word_graph(*batch([A, B, A, C, D, E]), window=3)
    grid = subgraph_grid(g, nodes=6, neighbours=3)
    # c: its neighbours all weigh 1 -> by rank a, d; a: b (weight 2), then c (best rank)
    assert grid[0].tolist() == [[2, 0, 3], [0, 1, 2], [3, 2, 0], [1, 0, 2], [4, 2, 3], [-1] * 3]


def test_breadth_first_search_goes_past_the_direct_neighbours() -> None:
    # a path a - b - c - d - e (window 2): ranking b, c, d (degree 2, by first position), a, e
    g = word_graph(*batch([A, B, C, D, E]), window=2)
    assert g.order.tolist() == [[1, 2, 3, 0, 4]]
    grid = subgraph_grid(g, nodes=5, neighbours=4)
    assert grid[0, 0].tolist() == [1, 2, 0, 3]  # b; c before a (rank); then c's d
    assert grid[0, 3].tolist() == [0, 1, 2, 3]  # a; b; b's c; c's d
    assert grid[0, 4].tolist() == [4, 3, 2, 1]
    # a component smaller than k is padded
    g = word_graph(*batch([A, B, 1, 1, D, E]), window=2)
    assert subgraph_grid(g, nodes=4, neighbours=3)[0, 0].tolist() == [0, 1, -1]


def test_padding_unknown_words_and_short_documents() -> None:
    m = model().eval()
    doc = [A, B, A, C, D, E]
    tokens, mask = batch(doc, [1, 1], [], length=6)
    grid = m.grid(tokens, mask)
    assert grid.shape == (3, MIN_NODES, 5)
    assert (grid[0, 5:] == 0).all() and (grid[0, :5, 0] != 0).all()  # 5 nodes, then padding
    assert (grid[1:] == 0).all()  # <unk> and nothing are no words
    h = m.encode_batch(tokens, mask)
    assert torch.isfinite(h).all()
    assert torch.equal(h[1], h[2])  # both an empty graph: zero vectors only
    # more padding changes nothing, nor does another document with more words
    long_tokens, long_mask = batch(doc, list(range(2, 10)) * 3, length=30)
    torch.testing.assert_close(m.encode_batch(long_tokens, long_mask)[0], h[0])
    assert torch.equal(m.grid(long_tokens, long_mask)[0], grid[0])


def test_recursive_penalty_value_and_gradient() -> None:
    m = model(n_labels=3, n_edges=2, recursive_reg=0.5)
    with torch.no_grad():
        m.label_weight.zero_()
        m.label_weight[0, :2] = torch.tensor([1.0, 2.0])  # parent
        m.label_weight[1, :2] = torch.tensor([1.0, 0.0])  # child: ‖w_p - w_c‖² = 4
        m.label_weight[2, :2] = torch.tensor([0.0, 2.0])  # child: ‖w_p - w_c‖² = 1
        m.hierarchy_edges.copy_(torch.tensor([[0, 1], [0, 2]]))
    penalty = m.recursive_penalty()
    assert penalty.item() == pytest.approx(0.5 / 2 * (4 + 1))
    penalty.backward()
    g = m.label_weight.grad
    assert g is not None
    # ∂/∂w_c = λ (w_c - w_p), ∂/∂w_p = λ Σ_c (w_p - w_c)
    torch.testing.assert_close(g[1, :2], 0.5 * torch.tensor([0.0, -2.0]))
    torch.testing.assert_close(g[0, :2], 0.5 * torch.tensor([1.0, 2.0]))
    before = (m.label_weight[0] - m.label_weight[1]).norm()
    with torch.no_grad():
        m.label_weight -= 0.1 * g  # a gradient step pulls parent and child together
    assert (m.label_weight[0] - m.label_weight[1]).norm() < before
    # the loss is the documents' BCE plus the penalty
    tokens, mask = batch([A, B, C], [D, E])
    targets = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    m.eval()
    logits, loss = m(tokens, mask, None, targets)
    torch.testing.assert_close(loss, bce_loss(logits, targets, None) + m.recursive_penalty())


def test_edges_from_the_hierarchy_dag_and_none_without_one() -> None:
    labels = ["a", "a::x", "b", "b::x"]
    dag = data(labels, [("a", "a::x"), ("b", "a::x"), ("b", "b::x"), ("b", "gone")])
    cfg = HRDGCNNModel.config_for_data(
        HRDGCNNConfig(n_labels=4, vocab_size=10, word_init="random"), dag
    )
    assert cfg.n_edges == 3  # a child with two parents; an unknown label's edge dropped
    m = HRDGCNNModel(cfg.validate())
    m.init_from_data(dag)
    assert m.hierarchy_edges.tolist() == [[0, 1], [2, 1], [2, 3]]
    for flat in (data(labels, None), data(labels, [])):
        cfg = HRDGCNNModel.config_for_data(
            HRDGCNNConfig(n_labels=4, vocab_size=10, word_init="random"), flat
        )
        assert cfg.n_edges == 0
        m = HRDGCNNModel(cfg.validate())
        m.init_from_data(flat)
        assert m.recursive_penalty().item() == 0.0
    with pytest.raises(HyperIMError, match="3 edges between known labels, the model 0"):
        HRDGCNNModel(HRDGCNNConfig(n_labels=4, vocab_size=10, word_init="random")).init_from_data(
            dag
        )


def test_bad_options_are_one_line() -> None:
    for options, needle in (
        ({"nodes": MIN_NODES - 1}, f"nodes must be >= {MIN_NODES}"),
        ({"window": 1}, "window must be >= 2"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"recursive_reg": -1.0}, "recursive_reg must be >= 0"),
        ({"word_init": "nope.txt"}, "word_init must be one of"),
    ):
        with pytest.raises(HyperIMError, match=needle) as e:
            HRDGCNNConfig(**options).validate()
        assert "\n" not in str(e.value)


def test_trains_without_a_hierarchy(tiny_dataset: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset, flat)
    (flat / "hierarchy.tsv").unlink()
    cfg = TrainConfig.of(
        model="hrdgcnn", max_len=24, min_count=1, batch_size=16, epochs=1, nodes=MIN_NODES,
        word_dim=8, word_init="random",
    )  # fmt: skip
    train(flat, tmp_path / "run", cfg, progress=False)
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["model"]
    assert saved["n_edges"] == 0 and saved["logit_offset"] == 0.0  # every label, no sampling
