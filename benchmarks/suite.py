"""The benchmark suite (``make bench``): HyperIM's fused interaction against the naive broadcast
formula, and inference over up to 36,504 labels, exact and shortlisted.

Every case runs in its own subprocess (each variant of it too: fused and naive), so the
``peak_mib`` of a row is the peak RSS of the process that did that work alone, measured over the
timed work (``VmHWM``, reset after the untimed warm-up, which compiles; Linux). The whole
process's peak, compilation included, is in ``process_peak_mib`` (``baseline_process_peak_mib``).

One JSON object per case is printed per line, with the keys

``name, seconds_per_step, baseline_seconds_per_step, speedup, docs_per_s, baseline_docs_per_s,
peak_mib, baseline_peak_mib, memory_ratio, flops_per_step, gflops_per_s,
matmul_gflops_per_s, fraction_of_matmul, threads, shape, note``

(``null`` where a key does not apply) plus case-specific keys (``p5_drop``, ``recall``, ...)
and ``targets``: the issue's targets for that case, true/false. Training cases time ``--steps``
steps after ``--warmup`` untimed ones (compilation) and report the fastest
(``mean_seconds_per_step`` too); inference cases time every batch after compiling on one, and
their ``seconds_per_step`` is seconds per batch. ``speedup`` is naive time over fused time
(inference: fused docs/s over naive docs/s); ``memory_ratio`` is naive peak over fused peak.

Cases (shapes of the issue; ``--quick`` scales every one down for a smoke test):

``rcv1-train-step``
    One optimisation step (GRU over T tokens, interaction, Eq. 6, loss, backward, Riemannian
    Adam + Adam): batch 64, T 300, all 103 labels, 75×2D; fused vs naive.
``debtags-train-step``
    Batch 64, T 256, 608 labels, 100 sampled negatives per document (+ 1-5 positives).
``rcv1-hyperbolic-price``, ``debtags-hyperbolic-price``
    The price of hyperbolic geometry: the training step of HyperIM (its training defaults:
    ϕ = tanh, per-label bias; 75×2D) and of EuclideanIM (its defaults, k = 150, a standard
    GRU, the fused Euclidean interaction) at the same shapes, one after the other in one run;
    ``seconds_per_step`` is HyperIM's, ``baseline_seconds_per_step`` EuclideanIM's, and
    ``hyperbolic_over_euclidean`` their ratio (target <= 2).
``debtags-inference``
    Top-5 over all 608 labels for the bundled debtags test split (5,999 documents, length-
    sorted windows of 16 batches of 64 as ``predict_file``), with a model of the default shape
    (untrained: speed does not depend on the weights). The naive formula runs on every
    ``--baseline-stride``-th document, its labels chunked so one ``(B, T, chunk, n, d)``
    temporary stays under 2^26 elements (without that it does not fit).
``wikilshtc-train-step``
    Batch 64, T 150, 36,504 labels, 50 sampled negatives per document (+ 1-3 positives).
``wikilshtc-inference``
    Exact top-5 over all 36,504 labels with :func:`hyperim.inference.topk_labels` (streaming
    top-k over 2,048-label chunks) for ``--wiki-docs`` synthetic test documents.
``wikilshtc-shortlist``
    :func:`hyperim.shortlist.shortlist_topk` (``--candidates`` per document, ``--method``)
    on ``--shortlist-docs`` synthetic test documents: docs/s and peak of the shortlist alone,
    then exact top-5 on the same documents for ``p5_drop`` (exact P@5 minus shortlist P@5,
    points), ``recall`` (share of the exact top-5 among the candidates), and a ``sweep`` over
    other methods and candidate counts.

The WikiLSHTC cases read a synthetic WikiLSHTC-shaped dataset (``hyperim.data.synthetic``
preset ``wikilshtc``: 36,504 labels on 5 levels, ~1.86 leaf labels and ~118 words per
document; 20,000 documents, of which 64 validation and 1,000 test) generated once into
``runs/bench/wikilshtc/data``. With ``--train-steps N`` a model is first trained on it
(``TrainConfig.of(negatives=50, max_len=150)``, random initial embeddings, with
``--train-config`` JSON overrides, about N steps of batch 64 over ceil(N / 296) epochs,
validation at each epoch end keeping the best model; kept in
``runs/bench/wikilshtc/train-sN[-hash]`` and reused); with 0 an untrained model is used,
and ``p5_drop`` then means nothing (the row says so). Exact scoring runs at a few
documents per second at 36,504 labels, hence the documented document counts
(``--wiki-docs`` 128, ``--shortlist-docs`` 200: the first test documents, the same for exact
and shortlist).

FLOP estimate (``flops_per_step``; per training step, or per inference batch), the main terms
only, with ``k = n·d`` (150), ``q = d + 2`` (4), ``h = max_len // 2``:

* interaction: ``B·T·L·n`` ball distances (``L`` labels scored per document) × ``(2q + 7)``
  forward (lifted inner product, clamp, √(u(u+2)), log1p, square-and-sum over balls), plus
  ``(6q + 8)`` backward (recomputed inner product, elementwise chain, two q-wide gradient
  accumulations): ``47`` per distance for a training step, ``15`` at inference;
* GRU: ``B·T·(12k² + 80k)`` forward (input projection 3k×k and recurrent 3k×k, as
  multiply-adds, plus the Möbius operations), ×3 with backward;
* head (Eq. 6): ``B·L·(2·T·h + 2h)`` forward, ×3 with backward;
* optimisers: ``20`` per parameter (the embedding tables get dense gradients, so every
  parameter is updated every step).

``gflops_per_s`` divides that by the measured time; ``fraction_of_matmul`` compares it with this
machine's float32 matrix-multiply throughput (``matmul_gflops_per_s``: 1024×1024 ``torch.mm``
in a loop for about a second, best of 3, at the same thread count). Most of the interaction's
work is elementwise (square roots, logarithms), so the fraction is well below 1 by nature.

Usage::

    python benchmarks/suite.py [--cases a,b] [--steps 3] [--threads N] [--quick]
                               [--train-steps N] [--train-config JSON]
                               [--candidates 64] [--method midpoint]

A failing case prints ``{"name": ..., "error": ...}`` and the suite exits 1 after the others.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "runs" / "bench"

CASES = (
    "rcv1-train-step",
    "debtags-train-step",
    "rcv1-hyperbolic-price",
    "debtags-hyperbolic-price",
    "debtags-inference",
    "wikilshtc-train-step",
    "wikilshtc-inference",
    "wikilshtc-shortlist",
)

# batch, T, labels, sampled negatives (0 = every label), vocabulary, most positives per doc
SHAPES = {
    "rcv1": dict(batch=64, tokens=300, labels=103, negatives=0, vocab=30_000, positives=6),
    "debtags": dict(batch=64, tokens=256, labels=608, negatives=100, vocab=50_000, positives=5),
    "wikilshtc": dict(batch=64, tokens=150, labels=36_504, negatives=50, vocab=50_000, positives=3),
}
QUICK_SHAPES = {
    "rcv1": dict(batch=8, tokens=40, labels=103, negatives=0, vocab=2_000, positives=6),
    "debtags": dict(batch=8, tokens=32, labels=608, negatives=20, vocab=2_000, positives=5),
    "wikilshtc": dict(batch=8, tokens=30, labels=3_000, negatives=10, vocab=5_000, positives=3),
}
N_BALLS, BALL_DIM = 75, 2
#: Synthetic WikiLSHTC data: documents in all, validation and test documents.
WIKI_DOCS = dict(full=(20_000, 64, 1_000), quick=(3_000, 16, 200))
#: Elements of one naive (B, T, chunk, n, d) temporary at inference (chooses its label chunk).
NAIVE_INFERENCE_ELEMENTS = 1 << 26
#: (method, candidates, options) measured besides the main setting in ``wikilshtc-shortlist``.
SWEEP = (
    ("midpoint", 16, {}),
    ("midpoint", 32, {}),
    ("midpoint", 64, {}),
    ("midpoint", 128, {}),
    ("midpoint", 256, {}),
    ("midpoint", 64, {"metric": "distance"}),
    ("midpoint", 64, {"weighting": "head"}),
    ("last", 64, {}),
    ("lifted-mean", 64, {}),
    ("beam", 64, {}),
)
#: Issue targets (full shapes only).
TARGETS = {
    "rcv1-train-step": {
        "speedup>=20": ("speedup", ">=", 20),
        "memory_ratio>=10": ("memory_ratio", ">=", 10),
    },
    "wikilshtc-train-step": {"seconds_per_step<=2": ("seconds_per_step", "<=", 2.0)},
    "wikilshtc-inference": {"peak_mib<=4096": ("peak_mib", "<=", 4096)},
    "wikilshtc-shortlist": {
        "docs_per_s>=100": ("docs_per_s", ">=", 100),
        "p5_drop<=1": ("p5_drop", "<=", 1.0),
        "peak_mib<=4096": ("peak_mib", "<=", 4096),
    },
}


# ============================================================================ FLOP estimate
def interaction_flops(pairs: float, train: bool, q: int = BALL_DIM + 2) -> float:
    """``pairs`` = B·T·L·n ball distances."""
    return pairs * ((2 * q + 7) + ((6 * q + 8) if train else 0))


def gru_flops(tokens: float, train: bool, k: int = N_BALLS * BALL_DIM) -> float:
    """``tokens`` = B·T positions encoded."""
    return tokens * (12 * k * k + 80 * k) * (3 if train else 1)


def head_flops(rows: float, t: int, max_len: int, train: bool) -> float:
    """``rows`` = B·L (document, label) pairs; the batch is padded to ``t`` tokens."""
    h = max(1, max_len // 2)
    return rows * (2 * t * h + 2 * h) * (3 if train else 1)


def step_flops(b: int, t: int, labels: int, max_len: int, params: int) -> float:
    return (
        interaction_flops(b * t * labels * N_BALLS, True)
        + gru_flops(b * t, True)
        + head_flops(b * labels, t, max_len, True)
        + 20 * params
    )


def inference_flops(b: int, t: int, labels: int, max_len: int) -> float:
    return (
        interaction_flops(b * t * labels * N_BALLS, False)
        + gru_flops(b * t, False)
        + head_flops(b * labels, t, max_len, False)
    )


# ============================================================================ child side
def _process_peak_mib() -> int:
    """Peak RSS of the whole process, compilation included."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _reset_peak() -> None:
    """Start the measured peak afresh (Linux: ``/proc/self/clear_refs`` resets ``VmHWM`` to the
    current RSS), so that ``peak_mib`` covers the timed work, not compilation before it."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mib() -> int:
    """Peak RSS since the last :func:`_reset_peak` (``VmHWM``), else of the whole process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return _process_peak_mib()


def _setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def child_matmul(args) -> dict:
    torch = _setup(args.threads)
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < (0.3 if args.quick else 1.0):
            torch.mm(a, b)
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return {"matmul_gflops_per_s": round(best, 2)}


def child_train_step(args, shape_name: str) -> dict:
    import numpy as np

    torch = _setup(args.threads)
    from hyperim.config import TrainConfig
    from hyperim.data.batching import label_targets
    from hyperim.models import HyperIMConfig, HyperIMModel
    from hyperim.models.euclidean import EuclideanIMConfig, EuclideanIMModel
    from hyperim.train import optimisation_step

    s = (QUICK_SHAPES if args.quick else SHAPES)[shape_name]
    torch.manual_seed(0)
    sizes = dict(vocab_size=s["vocab"], n_labels=s["labels"], max_len=s["tokens"])
    if args.family == "euclidean":  # EuclideanIM with its defaults, k = n·d coordinates
        model = EuclideanIMModel(EuclideanIMConfig(**sizes, dim=N_BALLS * BALL_DIM))
    elif args.family == "hyperim":  # HyperIM with the training defaults (ϕ = tanh, label bias)
        model = HyperIMModel(HyperIMConfig(**sizes, n_balls=N_BALLS, ball_dim=BALL_DIM))
    else:  # the paper's model (ϕ = identity, no label bias), as the fused/naive cases
        cfg = HyperIMConfig(
            **sizes, n_balls=N_BALLS, ball_dim=BALL_DIM, phi="identity", label_bias=False
        )
        model = HyperIMModel(cfg)
        model.interaction.naive = args.naive
    opts = model.configure_optimizers(TrainConfig(lr=1e-3))
    rng = np.random.default_rng(0)
    tokens = torch.randint(2, s["vocab"], (s["batch"], s["tokens"]))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    label_lists = [
        rng.choice(s["labels"], size=int(rng.integers(1, s["positives"] + 1)), replace=False)
        for _ in range(s["batch"])
    ]
    labels, targets, tmask = label_targets(
        label_lists, s["labels"], s["negatives"], torch.Generator().manual_seed(0)
    )
    times = []
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            _reset_peak()
        t0 = time.perf_counter()
        loss = optimisation_step(model, opts, tokens, mask, labels, targets, tmask)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    if not torch.isfinite(loss):
        raise RuntimeError("non-finite loss")
    scored = s["labels"] if labels is None else labels.shape[1]
    params = sum(p.numel() for p in model.parameters())
    return {
        "seconds_per_step": min(times),
        "mean_seconds_per_step": sum(times) / len(times),
        "peak_mib": _peak_mib(),
        "process_peak_mib": _process_peak_mib(),
        "labels_scored": scored,
        "flops_per_step": step_flops(s["batch"], s["tokens"], scored, s["tokens"], params),
    }


def _windows(lengths, batch: int, window_batches: int = 16) -> list[list[int]]:
    """Batches as ``predict_file`` makes them: windows of 16 batches, length-sorted inside."""
    import numpy as np

    out = []
    window = batch * window_batches
    for lo in range(0, len(lengths), window):
        idx = np.arange(lo, min(lo + window, len(lengths)))
        idx = idx[np.argsort(np.asarray(lengths)[idx], kind="stable")]
        out += [idx[i : i + batch].tolist() for i in range(0, len(idx), batch)]
    return out


def _warm_up(model, tokens, mask, label_chunk: int, per_doc: int = 0) -> None:
    """Compile (untimed) what scoring a batch runs, without scoring every label: the GRU cell
    over a whole batch (it compiles twice: the first step specialises), the interaction on
    one label chunk shared by all documents and, with ``per_doc``, on per-document label sets."""
    import torch

    with torch.no_grad():
        encoded = model.encode_batch(tokens, mask)
        model.score_chunk(encoded, 0, min(label_chunk, model.config.n_labels))
        if per_doc:
            ids = torch.arange(per_doc).expand(tokens.shape[0], -1) % model.config.n_labels
            model.score_subset(encoded, ids)


def _inference_row(
    seqs: list, seconds: float, flops: float, n_batches: int, batch: int, max_len: int, labels: int
) -> dict:
    """The JSON fields of an inference case."""
    return {
        "docs": len(seqs),
        "docs_per_s": len(seqs) / seconds,
        "seconds_per_step": seconds / n_batches,
        "peak_mib": _peak_mib(),
        "flops_per_step": flops / n_batches,
        "batch": batch,
        "mean_tokens": sum(len(x) for x in seqs) / len(seqs),
        "shape": {"batch": batch, "max_len": max_len, "labels": labels},
    }


def _timed_topk(model, seqs, batch: int, label_chunk_for, k: int = 5):
    """Top-k of every sequence with ``topk_labels``: (seconds, flops, ids per seq, batches)."""
    from hyperim.data.batching import pad_tokens
    from hyperim.inference import topk_labels

    c, max_len = model.config.n_labels, model.config.max_len
    batches = _windows([len(x) for x in seqs], batch)
    tokens, mask = pad_tokens([seqs[i] for i in max(batches, key=len)])
    _warm_up(model, tokens, mask, label_chunk_for(tokens.shape))
    _reset_peak()
    flops, seconds = 0.0, 0.0
    ranked: list = [None] * len(seqs)
    for idx in batches:
        tokens, mask = pad_tokens([seqs[i] for i in idx])
        t0 = time.perf_counter()
        _, top = topk_labels(model, tokens, mask, k, label_chunk=label_chunk_for(tokens.shape))
        seconds += time.perf_counter() - t0
        flops += inference_flops(len(idx), tokens.shape[1], c, max_len)
        for i, row in zip(idx, top.tolist(), strict=True):
            ranked[i] = row
    return seconds, flops, ranked, len(batches)


def child_debtags_inference(args) -> dict:
    torch = _setup(args.threads)
    from hyperim.config import TrainConfig
    from hyperim.data import LabelIndex, Vocabulary, bundled_dataset_path, load_dataset
    from hyperim.data.batching import encode_documents
    from hyperim.inference import LABEL_CHUNK
    from hyperim.train import build_model

    ds = load_dataset(bundled_dataset_path())
    cfg = TrainConfig()
    vocab = Vocabulary.build((d.tokens for d in ds.train), cfg.min_count, cfg.max_vocab)
    labels = LabelIndex(ds.labels)
    docs = ds.test[:: args.baseline_stride] if args.naive else ds.test
    if args.quick:
        docs = docs[: (16 if args.naive else 64)]
    seqs = encode_documents(docs, vocab, labels, cfg.max_len).tokens
    del ds
    torch.manual_seed(0)
    model = build_model(cfg, len(vocab), len(labels)).eval()
    model.interaction.naive = args.naive
    batch = 16 if args.quick else 64

    def chunk(shape) -> int:
        if not args.naive:
            return LABEL_CHUNK
        b, t = shape
        return max(1, min(len(labels), NAIVE_INFERENCE_ELEMENTS // (b * t * N_BALLS * BALL_DIM)))

    seconds, flops, _, n_batches = _timed_topk(model, seqs, batch, chunk)
    return _inference_row(seqs, seconds, flops, n_batches, batch, cfg.max_len, len(labels))


def _wiki_paths(args) -> dict:
    base = CACHE / ("wikilshtc-quick" if args.quick else "wikilshtc")
    name = f"train-s{args.train_steps}" if args.train_steps else "untrained"
    if args.train_steps and args.train_config:
        name += "-" + hashlib.sha1(args.train_config.encode()).hexdigest()[:8]
    model = base / name / "model"
    return {"data": base / "data", "model": model}


def child_prepare(args) -> dict:
    """Generate the synthetic WikiLSHTC data and train (or initialise) the model, if missing."""
    _setup(args.threads)
    from hyperim.data.synthetic import PRESETS, generate_synthetic

    paths = _wiki_paths(args)
    data, model_dir = paths["data"], paths["model"]
    docs, n_valid, n_test = WIKI_DOCS["quick" if args.quick else "full"]
    syn = PRESETS["wikilshtc"].updated(
        docs=docs, valid_fraction=n_valid / docs, test_fraction=n_test / docs
    )
    if args.quick:
        syn = syn.updated(labels=QUICK_SHAPES["wikilshtc"]["labels"], vocab_size=20_000)
        syn = syn.updated(doc_length=QUICK_SHAPES["wikilshtc"]["tokens"] * 0.8)
    out: dict = {"data": str(data), "model": str(model_dir)}
    meta = data / "synthetic.json"
    if not (meta.exists() and json.loads(meta.read_text())["config"] == syn.to_dict()):
        t0 = time.perf_counter()
        shutil.rmtree(data, ignore_errors=True)
        generate_synthetic(data, syn)
        out["generate_seconds"] = round(time.perf_counter() - t0, 1)
    if (model_dir / "config.json").exists():
        return out
    run_dir = model_dir.parent
    shutil.rmtree(run_dir, ignore_errors=True)
    shape = (QUICK_SHAPES if args.quick else SHAPES)["wikilshtc"]
    from hyperim.config import TrainConfig

    # random initial embeddings: the default pre-training (Eq. 2 over 36,504 labels, GloVe and
    # WordNet over synthetic words) would take longer than the training; --train-config
    # '{"label_init": "hierarchy"}' asks for it
    cfg = TrainConfig(
        negatives=shape["negatives"],
        max_len=shape["tokens"],
        eval_batch_size=64,
        label_init="random",
        word_init="random",
    )
    t0 = time.perf_counter()
    if args.train_steps:
        from hyperim.train import train

        per_epoch = math.ceil((docs - n_valid - n_test) / cfg.batch_size)
        epochs = math.ceil(args.train_steps / per_epoch)  # about train_steps steps in all
        cfg = cfg.updated(
            epochs=epochs,
            max_steps_per_epoch=math.ceil(args.train_steps / epochs),
            patience=10_000,
        )
        cfg = cfg.updated(**json.loads(args.train_config or "{}"))
        summary = train(data, run_dir, cfg, progress=False)
        out["train"] = {k: v for k, v in summary.items() if k != "model"}
    else:  # an untrained model of the same shape, saved like a trained one
        import torch

        from hyperim.api import HyperIM
        from hyperim.data import LabelIndex, Vocabulary, load_dataset
        from hyperim.train import build_model

        ds = load_dataset(data)
        vocab = Vocabulary.build((d.tokens for d in ds.train), cfg.min_count, cfg.max_vocab)
        torch.manual_seed(0)
        model = build_model(cfg, len(vocab), len(ds.labels))
        HyperIM(model, vocab, LabelIndex(ds.labels)).save_pretrained(model_dir)
    out["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _load_wiki(args, n_docs: int):
    """(HyperIM, encoded token arrays, gold label-id sets, hierarchy) of the first test docs."""
    from hyperim.api import HyperIM
    from hyperim.data import find_dataset_files, read_documents, read_hierarchy
    from hyperim.data.batching import encode_documents

    paths = _wiki_paths(args)
    net = HyperIM.from_pretrained(paths["model"])
    files = find_dataset_files(paths["data"])
    docs = read_documents(files.test)[:n_docs]
    split = encode_documents(docs, net.vocab, net.labels, net.max_len)
    hierarchy = read_hierarchy(files.hierarchy) if files.hierarchy else None
    return net, split.tokens, [set(x.tolist()) for x in split.labels], hierarchy


def child_wiki_inference(args) -> dict:
    _setup(args.threads)
    from hyperim.inference import LABEL_CHUNK

    net, seqs, _, _ = _load_wiki(args, args.wiki_docs)
    batch = 16 if args.quick else 64
    seconds, flops, _, n_batches = _timed_topk(net.model, seqs, batch, lambda _: LABEL_CHUNK)
    return _inference_row(seqs, seconds, flops, n_batches, batch, net.max_len, len(net.labels))


def child_wiki_shortlist(args) -> dict:
    torch = _setup(args.threads)
    from hyperim.data.batching import pad_tokens
    from hyperim.metrics import ranking_metrics
    from hyperim.models.hyperim.shortlist import (
        candidate_labels,
        candidate_recall,
        exact_scores,
        label_tree,
        shortlist_topk_encoded,
    )

    net, seqs, truth, hierarchy = _load_wiki(args, args.shortlist_docs)
    model = net.model
    tree = label_tree(hierarchy, net.labels.labels) if hierarchy is not None else None
    batch = 16 if args.quick else 64
    batches = [
        [pad_tokens([seqs[i] for i in idx]), idx] for idx in _windows([len(x) for x in seqs], batch)
    ]
    opts = dict(hierarchy=tree) if args.method == "beam" else {}

    def run(method: str, m: int, theta=None, **options):
        """Top-5 and candidates of every document; seconds without encoding if ``theta``."""
        ranked: list = [None] * len(seqs)
        cands: list = [None] * len(seqs)
        seconds = 0.0
        for j, ((tokens, mask), idx) in enumerate(batches):
            t0 = time.perf_counter()
            th = model.encode(tokens, mask) if theta is None else theta[j]
            extra = dict(hierarchy=tree) if method == "beam" else {}
            _, top, cand = shortlist_topk_encoded(model, th, mask, 5, m, method, **extra, **options)
            seconds += time.perf_counter() - t0
            for i, r, c in zip(idx, top.tolist(), cand, strict=True):
                ranked[i], cands[i] = r, c
        return seconds, ranked, cands

    with torch.no_grad():
        run(args.method, args.candidates)  # untimed: compiles the GRU cell and both stages
        _reset_peak()
        seconds, ranked, cands = run(args.method, args.candidates)
        peak = _peak_mib()
        # exact top-5 on the same documents (every label), then the comparisons
        exact_seconds, _, exact_ranked, _ = _timed_topk(model, seqs, batch, lambda _: 2048)
        exact_ids = torch.tensor(exact_ranked)
        p5_exact = ranking_metrics(exact_ranked, truth, ks=(5,))["P@5"]
        p5_short = ranking_metrics(ranked, truth, ks=(5,))["P@5"]
        recall = candidate_recall(torch.stack(cands), exact_ids)
        # sweep: encode once, time the two stages alone, add the encoding time back
        t0 = time.perf_counter()
        theta = [model.encode(tok, msk) for (tok, msk), _ in batches]
        encode_seconds = time.perf_counter() - t0
        sweep = []
        for method, m, options in SWEEP:
            if method == "beam" and tree is None:
                continue
            s, r, c = run(method, m, theta, **options)
            sweep.append(
                {
                    "method": method,
                    "candidates": m,
                    **options,
                    "docs_per_s": round(len(seqs) / (s + encode_seconds), 1),
                    "p5": round(ranking_metrics(r, truth, ks=(5,))["P@5"], 2),
                    "recall": round(candidate_recall(torch.stack(c), exact_ids), 4),
                }
            )
        # where the main setting's time goes (encoding measured above)
        t0 = time.perf_counter()
        stage_cands = [
            candidate_labels(model, theta[j], msk, args.candidates, args.method, **opts)
            for j, ((_, msk), _) in enumerate(batches)
        ]
        stage1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        for j, ((_, msk), _) in enumerate(batches):
            exact_scores(model, theta[j], msk, stage_cands[j]).topk(5, dim=1)
        stage2 = time.perf_counter() - t0
    n_pos = sum(len(x) for x in seqs)
    flops_exact = sum(
        inference_flops(len(idx), tok.shape[1], model.config.n_labels, model.config.max_len)
        for (tok, _), idx in batches
    )
    flops = sum(
        inference_flops(len(idx), tok.shape[1], args.candidates, model.config.max_len)
        + len(idx) * model.config.n_labels * N_BALLS * BALL_DIM * 2 * (BALL_DIM + 2)  # stage 1
        for (tok, _), idx in batches
    )
    return {
        "docs": len(seqs),
        "docs_per_s": len(seqs) / seconds,
        "seconds_per_step": seconds / len(batches),
        "peak_mib": peak,
        "flops_per_step": flops / len(batches),
        "batch": batch,
        "mean_tokens": n_pos / len(seqs),
        "shape": {"batch": batch, "max_len": net.max_len, "labels": len(net.labels)},
        "method": args.method,
        "candidates": args.candidates,
        "p5_exact": round(p5_exact, 2),
        "p5_shortlist": round(p5_short, 2),
        "p5_drop": round(p5_exact - p5_short, 2),
        "recall": round(recall, 4),
        "exact_docs_per_s": round(len(seqs) / exact_seconds, 2),
        "exact_flops_per_doc": flops_exact / len(seqs),
        "seconds_split": {
            "encode": round(encode_seconds, 3),
            "candidates": round(stage1, 3),
            "exact_on_candidates": round(stage2, 3),
        },
        "sweep": sweep,
    }


CHILDREN = {
    "matmul": child_matmul,
    "prepare": child_prepare,
    "rcv1-train-step": lambda a: child_train_step(a, "rcv1"),
    "debtags-train-step": lambda a: child_train_step(a, "debtags"),
    "debtags-inference": child_debtags_inference,
    "wikilshtc-train-step": lambda a: child_train_step(a, "wikilshtc"),
    "wikilshtc-inference": child_wiki_inference,
    "wikilshtc-shortlist": child_wiki_shortlist,
}


# ============================================================================ parent side
class ChildError(RuntimeError):
    pass


def run_child(
    args, what: str, naive: bool = False, steps: int | None = None, family: str = "paper"
) -> dict:
    """Run one case (or helper) in a fresh process; its last stdout line is its JSON result."""
    cmd = [sys.executable, __file__, "--child", what, "--threads", str(args.threads)]
    cmd += ["--steps", str(steps if steps is not None else args.steps)]
    cmd += ["--warmup", str(args.warmup), "--train-steps", str(args.train_steps)]
    cmd += ["--candidates", str(args.candidates), "--method", args.method]
    cmd += ["--wiki-docs", str(args.wiki_docs), "--shortlist-docs", str(args.shortlist_docs)]
    cmd += ["--baseline-stride", str(args.baseline_stride)]
    cmd += ["--train-config", args.train_config] if args.train_config else []
    cmd += ["--quick"] if args.quick else []
    cmd += ["--naive"] if naive else []
    cmd += ["--family", family]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise ChildError(
            f"{what}{' (naive)' if naive else ''} exited {out.returncode}: " + " | ".join(tail)
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _r(x, digits: int = 3):
    return None if x is None else round(x, digits)


def _targets(name: str, row: dict) -> dict | None:
    checks = TARGETS.get(name)
    if not checks:
        return None
    out = {}
    for label, (key, op, bound) in checks.items():
        v = row.get(key)
        out[label] = None if v is None else (v >= bound if op == ">=" else v <= bound)
    return out


def build_row(name: str, args, matmul: float, fast: dict, base: dict | None, note: str | None):
    shape_name = name.split("-")[0]
    shape = dict((QUICK_SHAPES if args.quick else SHAPES)[shape_name])
    inference = "seconds_per_step" in fast and "docs_per_s" in fast
    row: dict = {"name": name + ("-quick" if args.quick else "")}
    s, bs = fast.get("seconds_per_step"), (base or {}).get("seconds_per_step")
    row["seconds_per_step"] = _r(s, 4)
    row["baseline_seconds_per_step"] = _r(bs, 4)
    row["docs_per_s"] = _r(fast.get("docs_per_s"), 2) if inference else None
    row["baseline_docs_per_s"] = _r((base or {}).get("docs_per_s"), 3) if inference else None
    if inference and row["docs_per_s"] and row["baseline_docs_per_s"]:
        row["speedup"] = round(fast["docs_per_s"] / base["docs_per_s"], 2)
    else:
        row["speedup"] = round(bs / s, 2) if s and bs else None
    row["peak_mib"] = fast.get("peak_mib")
    row["baseline_peak_mib"] = (base or {}).get("peak_mib")
    row["memory_ratio"] = (
        round(row["baseline_peak_mib"] / row["peak_mib"], 2) if row["baseline_peak_mib"] else None
    )
    flops = fast.get("flops_per_step")
    row["flops_per_step"] = float(f"{flops:.4g}") if flops else None
    gflops = flops / s / 1e9 if flops and s else None
    row["gflops_per_s"] = _r(gflops, 2)
    row["matmul_gflops_per_s"] = matmul
    row["fraction_of_matmul"] = _r(gflops / matmul, 4) if gflops and matmul else None
    row["threads"] = args.threads
    row["shape"] = {**fast.pop("shape", shape), "n_balls": N_BALLS, "ball_dim": BALL_DIM}
    extra = {k: v for k, v in fast.items() if k not in row and k not in ("flops_per_step",)}
    if base:
        extra |= {
            f"baseline_{k}": v
            for k, v in base.items()
            if k in ("docs", "batch", "process_peak_mib")
        }
    row |= {k: (_r(v, 4) if isinstance(v, float) else v) for k, v in extra.items()}
    row["note"] = note
    row["targets"] = None if args.quick else _targets(name, row)
    return row


def run_case(name: str, args, matmul: float) -> dict:
    note = None
    if name.endswith("hyperbolic-price"):
        shape = name.split("-")[0]
        hyper = run_child(args, f"{shape}-train-step", family="hyperim")
        eucl = run_child(args, f"{shape}-train-step", family="euclidean")
        row = build_row(name, args, matmul, hyper, eucl, "baseline = EuclideanIM, same shapes")
        row["speedup"] = None
        row["hyperbolic_over_euclidean"] = round(
            hyper["seconds_per_step"] / eucl["seconds_per_step"], 2
        )
        row["targets"] = (
            None
            if args.quick
            else {"hyperbolic_over_euclidean<=2": row["hyperbolic_over_euclidean"] <= 2}
        )
        return row
    if name.endswith("train-step"):
        fast = run_child(args, name)
        if args.baseline_steps == 0:
            base, note = None, "naive baseline skipped (--baseline-steps 0)"
        else:
            base = run_child(args, name, naive=True, steps=args.baseline_steps)
        return build_row(name, args, matmul, fast, base, note)
    if name == "debtags-inference":
        fast = run_child(args, name)
        base = run_child(args, name, naive=True)
        note = (
            f"naive scored every {args.baseline_stride}th test document, labels chunked so a "
            f"(B, T, chunk, n, d) temporary holds <= {NAIVE_INFERENCE_ELEMENTS} elements"
        )
        return build_row(name, args, matmul, fast, base, note)
    prep = run_child(args, "prepare")
    if name == "wikilshtc-inference":
        fast = run_child(args, name)
        s = (QUICK_SHAPES if args.quick else SHAPES)["wikilshtc"]
        per_temp = 64 * s["tokens"] * 2048 * N_BALLS * BALL_DIM * 4 / 2**30
        note = (
            "naive baseline not run: at batch 64 one (B, T, 2048-label chunk, n, d) float32 "
            f"temporary of the broadcast Mobius sum is {per_temp:.1f} GiB (several are live at "
            f"once), and chunked to fit it runs at the naive rate of debtags-inference over "
            f"{s['labels']} labels: hours for these documents"
        )
        row = build_row(name, args, matmul, fast, None, note)
    else:
        fast = run_child(args, name)
        note = None if args.train_steps else "untrained model (--train-steps 0): p5_drop is moot"
        row = build_row(name, args, matmul, fast, None, note)
    row["model"] = prep["model"]
    if "train" in prep:
        row["trained"] = prep["train"] | {"seconds": prep.get("prepare_seconds")}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated; default: all")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps (fused)")
    ap.add_argument("--baseline-steps", type=int, default=2, help="timed naive steps; 0: skip")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="every shape scaled down (smoke test)")
    ap.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="train the WikiLSHTC model this many steps first (default: one epoch, "
        "296 steps; quick: 15; 0: untrained)",
    )
    ap.add_argument(
        "--train-config",
        default="",
        help="JSON TrainConfig overrides for that training, e.g. '{\"lr\": 1e-4}'",
    )
    ap.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="shortlist candidates per document (default 64)",
    )
    ap.add_argument("--method", default="midpoint", help="shortlist first stage")
    ap.add_argument(
        "--wiki-docs",
        type=int,
        default=None,
        help="documents for wikilshtc-inference (default 128; quick 32)",
    )
    ap.add_argument(
        "--shortlist-docs",
        type=int,
        default=None,
        help="documents for wikilshtc-shortlist (default 200; quick 64)",
    )
    ap.add_argument(
        "--baseline-stride",
        type=int,
        default=6,
        help="debtags-inference: the naive formula scores every Nth test document",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--family", default="paper", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.train_steps is None:
        args.train_steps = 15 if args.quick else 296
    if args.candidates is None:
        args.candidates = 64
    if args.wiki_docs is None:
        args.wiki_docs = 32 if args.quick else 128
    if args.shortlist_docs is None:
        args.shortlist_docs = 64 if args.quick else 200
    if args.child:  # one case, in this fresh process
        print(json.dumps(CHILDREN[args.child](args)), flush=True)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    matmul = run_child(args, "matmul")["matmul_gflops_per_s"]
    failed = False
    for name in cases:
        t0 = time.perf_counter()
        try:
            row = run_case(name, args, matmul)
        except ChildError as e:
            failed = True
            row = {"name": name + ("-quick" if args.quick else ""), "error": str(e)}
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
