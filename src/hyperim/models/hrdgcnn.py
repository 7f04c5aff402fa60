"""HR-DGCNN: Peng et al. 2018, "Large-Scale Hierarchical Text Classification with Recursively
Regularized Deep Graph-CNN" (WWW), one of the paper's baselines.

Our paper summarises it as a neural network "specifically designed for hierarchical
classification": "Taking advantage of the label hierarchy, HR-DGCNN adds a regularization term
on the weights of the fully-connected layer", with "word embedding dimension ... 50 and its
window size ... 5 to construct the graph of embeddings" (§"Baselines", §"Hyperparameters").

The model, following its own paper (and the authors' released code where the paper leaves a
choice open):

1. **Graph of words** (:func:`word_graph`). A document's nodes are its distinct words (``<pad>``
   and ``<unk>`` are not words); two words are joined when they occur within a sliding window
   of ``window`` tokens (positions ``t`` and ``t + o``, ``0 < o < window``), the edge weight
   being the number of such co-occurrences.
2. **Sub-graphs** (:func:`subgraph_grid`). Nodes are ranked by degree, ties by term frequency,
   then by first occurrence (the released code ranks by degree, then frequency); the top
   ``nodes`` ``N`` are kept. For each, a breadth-first search from it collects a neighbourhood
   of ``neighbours`` ``k`` nodes, the node first and then the neighbours of each visited node
   by edge weight, ties by rank — the normalised order the convolution reads. Missing nodes
   (short documents) and missing neighbours (small components) are padding, zero vectors.
   This gives an ``(N, k)`` grid of word ids per document.
3. **Graph-CNN** over the ``(N, k, d)`` grid of word vectors: the first convolution reads each
   node's ``k`` neighbours at once (width ``k``, stride ``k``: one vector per node), the next two
   run over nodes (width 5); each is followed by ReLU and max pooling of 2; then two fully
   connected layers with ReLU and dropout, and the output layer ``z_l = w_l · h + b_l``, one
   sigmoid per label, trained by binary cross-entropy on all labels (Eq. 7 with ``L-`` every
   non-label; ``scores_every_label``: the original's sigmoid output trains on every label, and
   all ``C`` logits are one ``(B, 96) × (96, C)`` product, cheap at thousands of labels, so no
   negatives are sampled and no logit offset is needed). Layer widths 64, 96, 96
   (convolutions) and 256, 96 (fully connected) and dropout 0.5 are the released code's RCV1
   network.
4. **Recursive regularisation** (Gopal & Yang 2013, as HR-DGCNN applies it to the output layer):

   .. math:: \\mathcal{L} = \\frac{1}{B} \\sum_{b} \\mathrm{BCE}_b
                + \\frac{\\lambda}{2} \\sum_{(p, c) \\in E} \\lVert w_p - w_c \\rVert^2

   over the hierarchy's (parent, child) edges ``E`` (a DAG is fine: a child with two parents
   is pulled towards both). The BCE is summed over labels and averaged over the batch's
   documents (:func:`hyperim.models.base.bce_loss`), and the penalty is added once per batch:
   ``λ`` is per document, i.e. Gopal & Yang's objective ``Σ_i loss_i + λ'/2 R`` divided by the
   ``n`` training documents, ``λ = λ'/n``. The released code adds ``5e-5 ‖·‖²`` per pair to
   the same per-document loss (label-summed, batch-averaged sigmoid cross-entropy), hence the
   default ``λ = 1e-4``. Without a hierarchy (``data.hierarchy`` None or without edges) there is
   no penalty and the model is a flat DGCNN.

Defaults and where they come from: ``word_dim`` 50 and ``window`` 5 (our paper); ``nodes`` 64
and ``neighbours`` 5, the layer widths, dropout 0.5 and ``λ`` (the released code's RCV1 setup:
an input 320 = 64 × 5 nodes wide of 50-d vectors). Words start from vanilla GloVe trained on the
training split (``glove``; HR-DGCNN trained word2vec on its corpus), from Stanford's GloVe 6B
50-d (``glove6b``), from a vectors file, or at random.

What differs, and why: the trainer's Adam at its ``lr`` replaces the released code's SGD with
momentum and step decay, and its optional ``weight_decay`` (AdamW) the code's L2 of 5e-4 on all
weights (one optimiser protocol for every family); the code's local response normalisation
after each convolution is left out (at its α = 0.001/9 it divides an activation by
``(1 + 1.1e-4 Σ a²)^0.75`` over 11 neighbouring channels: less than 1 % while those squares sum
to under 120); layers start at PyTorch's default initialisation, the output weights normal with
standard deviation 1/96 (the code's, truncated), the output bias at the label prior (the code
starts it at 0: the prior only spares the first steps learning the label frequencies). The
paper's recursive hierarchical segmentation (one network per sub-tree, for very large
hierarchies) is not built: one network over all labels fits this machine (debtags: 600 labels,
0.11 s per step of 64 documents on one CPU thread). Nothing was scaled down.

There is no honest per-word score (a word reaches a label through max pooling and three
nonlinear layers), so the family has no evidence words (``word_label_scores`` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from hyperim.data.vocab import Vocabulary
from hyperim.errors import HyperIMError, check_all
from hyperim.models.base import ModelConfig, TextModel, TrainingData, bce_loss, prior_logits
from hyperim.models.starts import WORD_INITS, copy_rows, euclidean_word_table, word_init_ok

#: Output channels of the convolutions: over each node's neighbourhood, then twice over nodes.
CONV_CHANNELS = (64, 96, 96)
#: Width of the convolutions over nodes, and of the max pooling after each convolution.
CONV_WIDTH, POOL = 5, 2
#: Widths of the fully connected layers before the output layer.
HIDDEN = (256, 96)
#: Documents whose graphs are built at a time: ``GRAPH_CHUNK × n × n`` co-occurrence counts
#: (33 MiB at 64 documents of 256 distinct words).
GRAPH_CHUNK = 64


def pooled_length(nodes: int) -> int:
    """Positions left after the three convolutions and poolings of ``nodes`` nodes (< 1: too
    few nodes for the network)."""
    length = nodes // POOL  # the first convolution keeps one position per node
    for _ in CONV_CHANNELS[1:]:
        length = (length - CONV_WIDTH + 1) // POOL
    return length


#: The fewest nodes :func:`pooled_length` accepts.
MIN_NODES = next(n for n in range(1, 1000) if pooled_length(n) >= 1)


@dataclass
class HRDGCNNConfig(ModelConfig):
    """Architecture of HR-DGCNN (its ``[model]`` table); ``n_edges`` is set from the data."""

    word_dim: int = 50  # our paper's word embedding dimension
    window: int = 5  # our paper's sliding window of the graph of words
    nodes: int = 64  # N: top-ranked nodes per document (the released code's RCV1 input)
    neighbours: int = 5  # k: nodes of each breadth-first neighbourhood (ditto)
    dropout: float = 0.5  # after each fully connected layer (the released code's)
    recursive_reg: float = 1e-4  # λ of the recursive regularisation, per document
    word_init: str = "glove"  # random | glove (training split) | glove6b | a vectors file
    word_init_scale: float = 0.1  # random starts: uniform in ±scale per coordinate
    pretrained_words: int = 50_000  # glove6b: GloVe's most frequent words join the vocabulary
    n_edges: int = 0  # (parent, child) edges of the hierarchy (config_for_data)

    DATA_FIELDS: ClassVar[tuple[str, ...]] = (*ModelConfig.DATA_FIELDS, "n_edges")

    def validate(self) -> HRDGCNNConfig:
        checks = [
            (self.word_dim >= 1, "word_dim must be >= 1"),
            (self.window >= 2, "window must be >= 2 (a window of 1 token joins no words)"),
            (
                self.nodes >= MIN_NODES,
                f"nodes must be >= {MIN_NODES} (the three convolutions and poolings need them)",
            ),
            (self.neighbours >= 1, "neighbours must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.recursive_reg >= 0, "recursive_reg must be >= 0"),
            (self.word_init_scale > 0, "word_init_scale must be > 0"),
            (self.pretrained_words >= 0, "pretrained_words must be >= 0"),
            (self.n_edges >= 0, "n_edges must be >= 0"),
            (
                word_init_ok(self.word_init),
                f"word_init must be one of {', '.join(WORD_INITS)} or a GloVe/word2vec file",
            ),
        ]
        check_all(checks)
        return self


# ---------------------------------------------------------------------- graph of words
@dataclass
class WordGraph:
    """The graphs of words of a batch; node ``j`` of document ``b`` is its ``j``-th distinct
    word in id order, ``n`` nodes at most (the batch's largest count)."""

    words: torch.Tensor  # (B, n) word id of each node, PAD past the document's nodes
    weights: torch.Tensor  # (B, n, n) co-occurrence counts, symmetric, 0 on the diagonal
    rank: torch.Tensor  # (B, n) position of each node in the ranking (0 = first)
    order: torch.Tensor  # (B, n) nodes by rank; -1 past the document's nodes


@torch.no_grad()
def word_graph(tokens: torch.Tensor, mask: torch.Tensor, window: int) -> WordGraph:
    """Graphs of words of a batch ``(B, T)``, vectorised over documents: nodes, co-occurrence
    weights within ``window`` tokens, and the ranking by (degree, frequency, first occurrence),
    higher first. ``<pad>`` and ``<unk>`` positions are not words."""
    b, t = tokens.shape
    real = mask.bool() & (tokens != Vocabulary.UNK)  # (B, T)
    past = int(tokens.max()) + 1 if tokens.numel() else 1  # sorts after every word
    key = torch.where(real, tokens, torch.full_like(tokens, past))
    ids, where = key.sort(dim=1, stable=True)  # (B, T) by word, then position
    first_of_word = torch.ones_like(real)
    first_of_word[:, 1:] = ids[:, 1:] != ids[:, :-1]
    first_of_word &= ids != past  # (B, T)
    node_sorted = first_of_word.long().cumsum(1) - 1  # (B, T)
    n = max(1, int(first_of_word.sum(1).max()) if b else 1)
    node = torch.empty_like(node_sorted).scatter_(1, where, node_sorted)  # (B, T) per position
    node = node.masked_fill(~real, -1)
    # per node: its word, frequency, first position (the sort is stable: a word's first entry)
    dump = torch.full_like(node_sorted, n)  # writes of non-first entries land in column n
    slot = torch.where(first_of_word, node_sorted, dump)
    words = torch.zeros(b, n + 1, dtype=tokens.dtype, device=tokens.device)
    words.scatter_(1, slot, torch.where(first_of_word, ids, torch.zeros_like(ids)))
    first = torch.full((b, n + 1), t, dtype=torch.long, device=tokens.device)
    first.scatter_(1, slot, torch.where(first_of_word, where, torch.full_like(where, t)))
    freq = torch.zeros(b, n + 1, dtype=torch.long, device=tokens.device)
    freq.scatter_add_(1, node.clamp(min=0).masked_fill(~real, n), real.long())
    words, first, freq = words[:, :n], first[:, :n], freq[:, :n]
    # co-occurrence counts: the pairs (i, i + o) of distinct words, both directions, counted
    # exactly (integers) in one bincount; pairs that are no edge go to a last, dropped bin
    rows = torch.arange(b, device=tokens.device)[:, None] * (n * n)  # (B, 1)
    flat = []
    for o in range(1, min(window, t)):
        u, v = node[:, :-o], node[:, o:]  # (B, T - o)
        edge = (u >= 0) & (v >= 0) & (u != v)
        for x, y in ((u, v), (v, u)):
            flat.append(torch.where(edge, rows + x * n + y, b * n * n).reshape(-1))
    if flat:
        counts = torch.bincount(torch.cat(flat), minlength=b * n * n + 1)[:-1]
    else:
        counts = torch.zeros(b * n * n, dtype=torch.long, device=tokens.device)
    weights = counts.view(b, n, n)
    degree = (weights > 0).sum(2)  # (B, n)
    exists = torch.arange(n, device=tokens.device)[None, :] < first_of_word.sum(1, keepdim=True)
    score = (degree * (t + 1) + freq) * (t + 1) + (t - first)  # unique among a document's nodes
    score = score.masked_fill(~exists, -1)
    order = score.argsort(dim=1, descending=True, stable=True)  # (B, n)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(n, device=tokens.device).expand(b, n).contiguous()
    )
    order = order.masked_fill(~exists.gather(1, order), -1)
    return WordGraph(words, weights, rank, order)


@torch.no_grad()
def subgraph_grid(graph: WordGraph, nodes: int, neighbours: int) -> torch.Tensor:
    """``(B, nodes, neighbours)`` node ids (-1 = padding): for each of the top ``nodes``
    ranked nodes, the breadth-first neighbourhood of ``neighbours`` nodes — the node, then the
    unvisited neighbours of each visited node in turn, by edge weight and then rank."""
    b, n = graph.words.shape
    device = graph.words.device
    top = graph.order[:, :nodes]  # (B, <= N)
    if top.shape[1] < nodes:
        top = torch.cat([top, top.new_full((b, nodes - top.shape[1]), -1)], dim=1)
    k = neighbours
    grid = top.new_full((b, nodes, k + 1), -1)  # column k: where the writes not taken go
    grid[:, :, 0] = top
    count = (top >= 0).long()  # (B, N) nodes found so far
    tie = (n - graph.rank)[:, None, :]  # (B, 1, n) in 1..n, higher for a better rank
    width = min(k - 1, n)
    steps = torch.arange(width, device=device)  # (width,)
    for j in range(k - 1):  # visiting grid[:, :, j]: a neighbourhood of k needs k - 1 visits
        q = grid[:, :, j]  # (B, N)
        active = (q >= 0) & (count < k)
        if width == 0 or not bool(active.any()):
            break
        w = graph.weights.gather(1, q.clamp(min=0)[:, :, None].expand(b, nodes, n))  # (B, N, n)
        seen = torch.zeros(b, nodes, n + 1, dtype=torch.bool, device=device)
        seen.scatter_(2, grid.masked_fill(grid < 0, n), True)
        score = w * (n + 1) + tie  # by edge weight, then rank: no ties among a node's row
        score = score.masked_fill((w == 0) | seen[:, :, :n] | ~active[:, :, None], -1)
        value, cand = score.topk(width, dim=2)  # (B, N, width), best first
        take = (value >= 0) & (steps < (k - count)[:, :, None])  # (B, N, width)
        at = torch.where(take, count[:, :, None] + steps, k)
        grid.scatter_(2, at, torch.where(take, cand, -1))
        grid[:, :, k] = -1
        count = count + take.sum(2)
    return grid[:, :, :k]


# ---------------------------------------------------------------------- the model
class HRDGCNNModel(TextModel):
    """``forward(tokens, mask, labels, targets, target_mask) -> (logits, loss)``: graph of
    words -> sub-graph grid -> Graph-CNN -> one sigmoid per label; BCE plus the recursive
    regularisation of the output layer over the hierarchy."""

    model_type = "hrdgcnn"
    config_class = HRDGCNNConfig
    scores_every_label = True  # the original trains every label's sigmoid on every document

    @classmethod
    def extra_vocabulary(cls, config: HRDGCNNConfig) -> list[str]:  # type: ignore[override]
        from hyperim.pretrain.vectors import glove6b_vocabulary

        return glove6b_vocabulary(config.word_init, config.pretrained_words)

    @classmethod
    def config_for_data(cls, config: ModelConfig, data: TrainingData) -> ModelConfig:
        """``n_edges``: the hierarchy's (parent, child) edges between known labels."""
        return replace(config, n_edges=len(_edge_ids(data)))

    def __init__(self, config: HRDGCNNConfig) -> None:
        super().__init__()
        c = self.config = config
        c1, c2, c3 = CONV_CHANNELS
        self.words = nn.Parameter(torch.empty(c.vocab_size, c.word_dim))
        # the convolution over each node's k neighbours (width k, stride k) is a linear map
        # of the node's k·d concatenated vectors
        self.node_conv = nn.Linear(c.neighbours * c.word_dim, c1)
        self.node_convs = nn.ModuleList(
            [nn.Conv1d(c1, c2, CONV_WIDTH), nn.Conv1d(c2, c3, CONV_WIDTH)]
        )
        h1, h2 = HIDDEN
        self.hidden = nn.Sequential(
            nn.Linear(c3 * pooled_length(c.nodes), h1),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Dropout(c.dropout),
        )
        self.label_weight = nn.Parameter(torch.empty(c.n_labels, h2))  # w_l, regularised
        self.label_bias = nn.Parameter(torch.zeros(c.n_labels))  # b_l
        self.register_buffer("hierarchy_edges", torch.zeros(c.n_edges, 2, dtype=torch.long))
        with torch.no_grad():
            self.words.uniform_(-c.word_init_scale, c.word_init_scale)
            self.label_weight.normal_(0.0, 1.0 / h2)  # the released code's start (truncated)

    # ---------------------------------------------------------------- encoding
    def grid(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, N, k)`` word ids of the sub-graph grid, PAD at padding; :data:`GRAPH_CHUNK`
        documents at a time (a graph of ``n`` nodes holds ``n × n`` weights)."""
        c = self.config
        parts = []
        for lo in range(0, tokens.shape[0], GRAPH_CHUNK):
            graph = word_graph(tokens[lo : lo + GRAPH_CHUNK], mask[lo : lo + GRAPH_CHUNK], c.window)
            nodes = subgraph_grid(graph, c.nodes, c.neighbours)  # (b, N, k) node ids
            words = graph.words.gather(1, nodes.clamp(min=0).flatten(1)).view_as(nodes)
            parts.append(words.masked_fill(nodes < 0, Vocabulary.PAD))
        if not parts:
            return tokens.new_zeros(0, c.nodes, c.neighbours)
        return torch.cat(parts)

    def features(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, 96)``: the document's representation before the output layer."""
        ids = self.grid(tokens, mask)  # (B, N, k)
        b, n = ids.shape[:2]
        x = nn.functional.embedding(ids, self.words)  # (B, N, k, d)
        x = x * (ids != Vocabulary.PAD).to(x.dtype)[..., None]  # padding: zero vectors
        x = torch.relu(self.node_conv(x.reshape(b, n, -1))).transpose(1, 2)  # (B, 64, N)
        x = _max_pool(x)
        for conv in self.node_convs:
            x = _max_pool(torch.relu(conv(x)))  # (B, 96, N')
        return self.hidden(x.flatten(1))  # (B, 96)

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> Any:
        return self.features(tokens, mask)

    # ---------------------------------------------------------------- scoring
    def score_chunk(self, encoded: Any, lo: int, hi: int) -> torch.Tensor:
        return encoded @ self.label_weight[lo:hi].T + self.label_bias[lo:hi]  # (B, hi - lo)

    def score_subset(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        w = self.label_weight[labels]  # (B, L, h)
        return (w @ encoded[:, :, None]).squeeze(2) + self.label_bias[labels]  # (B, L)

    def recursive_penalty(self) -> torch.Tensor:
        """``λ/2 Σ_(p, c) ‖w_p − w_c‖²`` over the hierarchy's edges (0 without edges)."""
        e = self.hierarchy_edges
        if e.shape[0] == 0 or self.config.recursive_reg == 0:
            return self.label_weight.new_zeros(())
        diff = self.label_weight[e[:, 0]] - self.label_weight[e[:, 1]]  # (E, h)
        return 0.5 * self.config.recursive_reg * diff.pow(2).sum()

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.features(tokens, mask)  # (B, 96)
        logits = (
            self.score_chunk(h, 0, self.n_labels)
            if labels is None
            else self.score_subset(h, labels)
        )  # (B, C | L)
        if targets is None:
            return logits, None
        return logits, bce_loss(logits, targets, target_mask) + self.recursive_penalty()

    def label_points(self) -> tuple[str, torch.Tensor]:
        """The output layer's per-label weights ``w_l``, the ones the hierarchy ties."""
        return "euclidean", self.label_weight

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        """Adam for everything: the word table at ``word_lr`` (default ``lr``), the rest at
        ``lr``."""
        from hyperim.optim import euclidean_optimizers

        return euclidean_optimizers(self, train_config, self.words)

    # ---------------------------------------------------------------- starts
    def init_from_data(self, data: TrainingData) -> None:
        c = self.config
        with torch.no_grad():
            self.label_bias.copy_(prior_logits(data.label_lists, c.n_labels, c.logit_offset))
            edges = _edge_ids(data)
            if len(edges) != c.n_edges:
                raise HyperIMError(
                    f"the hierarchy has {len(edges)} edges between known labels, the model "
                    f"{c.n_edges}"
                )
            if edges:
                self.hierarchy_edges.copy_(torch.tensor(edges, dtype=torch.long))
        table = euclidean_word_table(c.word_init, c.word_dim, data, "word_dim")
        if table is not None:
            copy_rows(self.words, *table)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, L) -> (B, C, L // 2)``: max over non-overlapping pairs (the last of an odd
    length dropped, as a VALID pooling)."""
    b, ch, length = x.shape
    return x[:, :, : length - length % POOL].reshape(b, ch, -1, POOL).amax(3)


def _edge_ids(data: TrainingData) -> list[tuple[int, int]]:
    """The hierarchy's (parent, child) edges as label ids, those between known labels only."""
    hierarchy = data.hierarchy
    if hierarchy is None:
        return []
    known = {name: i for i, name in enumerate(data.labels.labels)}
    return [
        (known[p], known[c]) for p, c in hierarchy.edges if p in known and c in known and p != c
    ]
