"""Poincaré GloVe (Eq. 3) and WordNet refinement (Eq. 4) on the bundled debtags training split.

Builds the model's vocabulary exactly as ``hyperim train`` does (``Vocabulary.build`` on the
training documents with ``TrainConfig``'s ``min_count`` and ``max_vocab``), counts windowed
co-occurrences, trains 75×2D Poincaré GloVe, refines it with WordNet hypernym pairs, and prints
nearest neighbours of a few words after each stage. The neighbour lists leave out the 100 most
frequent words (ids 2-101: "the", "for", "is", ...), which sit near the origin of every ball
and so are close to everything. The last line is a JSON summary.

    OMP_NUM_THREADS=1 python benchmarks/glove_debtags.py [--epochs 8] [--lr 0.2] \\
        [--refine-epochs 3] [--refine-lr 1e-3] [--senses all] [--save DIR]

``--save DIR`` writes both tables in the word2vec text format of :mod:`hyperim.pretrain.io`.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import torch

from hyperim.config import TrainConfig
from hyperim.data.reader import bundled_dataset_path, load_dataset
from hyperim.data.vocab import Vocabulary
from hyperim.pretrain.cooccurrence import cooccurrence_matrix, encode_corpus
from hyperim.pretrain.glove import GloveConfig, nearest_neighbours, product_distance, train_glove
from hyperim.pretrain.wordnet_refine import (
    RefineConfig,
    hypernym_pairs,
    pair_ids,
    refine_embeddings,
)

WORDS = [
    "python",
    "game",
    "library",
    "kernel",
    "font",
    "audio",
    "server",
    "perl",
    "editor",
    "network",
]
SKIP_TOP = 100


def neighbours(points: torch.Tensor, vocab: Vocabulary, aggregate: str, k: int = 8) -> dict:
    ids = [vocab.token_to_id(w) for w in WORDS]
    cand = torch.arange(2 + SKIP_TOP, len(vocab))
    nb, _ = nearest_neighbours(points, ids, k, aggregate, candidates=cand)
    out = {w: [vocab.tokens[i] for i in row] for w, row in zip(WORDS, nb.tolist(), strict=True)}
    for w, ns in out.items():
        print(f"  {w:>8}: {', '.join(ns)}")
    return out


def pair_distances(points: torch.Tensor, pairs: list[tuple[int, int]], aggregate: str) -> dict:
    """Mean distance of true (hypernym, hyponym) pairs and of the hypernyms to shuffled words."""
    p = torch.tensor(pairs)
    shuffled = p[torch.randperm(len(p), generator=torch.Generator().manual_seed(0)), 1]
    true_d = product_distance(points[p[:, 0]], points[p[:, 1]], aggregate).mean()
    rand_d = product_distance(points[p[:, 0]], points[shuffled], aggregate).mean()
    return {"pairs": round(float(true_d), 4), "random": round(float(rand_d), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=GloveConfig.epochs)
    ap.add_argument("--lr", type=float, default=GloveConfig.lr)
    ap.add_argument("--batch-size", type=int, default=GloveConfig.batch_size)
    ap.add_argument("--optimizer", default=GloveConfig.optimizer)
    ap.add_argument("--window", type=int, default=GloveConfig.window)
    ap.add_argument("--dtype", default=GloveConfig.dtype)
    ap.add_argument("--refine-epochs", type=int, default=RefineConfig.epochs)
    ap.add_argument("--refine-lr", type=float, default=RefineConfig.lr)
    ap.add_argument("--senses", default="all", choices=["all", "first"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    tc = TrainConfig()
    ds = load_dataset(bundled_dataset_path())
    vocab = Vocabulary.build((d.tokens for d in ds.train), tc.min_count, tc.max_vocab)
    print(f"vocabulary: {len(vocab):,} tokens from {len(ds.train):,} training documents")

    tracemalloc.start()
    t0 = time.perf_counter()
    cooc = cooccurrence_matrix(
        encode_corpus((d.tokens for d in ds.train), vocab), len(vocab), window=args.window
    )
    cooc_s = time.perf_counter() - t0
    cooc_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(
        f"co-occurrences (window {args.window}, 1/d): nnz {cooc.nnz:,}, {cooc_s:.1f}s, "
        f"peak {cooc_peak:.0f} MiB (numpy/scipy allocations while counting)"
    )

    gcfg = GloveConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        window=args.window,
        dtype=args.dtype,
        aggregate=tc.aggregate,
        n_balls=tc.n_balls,
        ball_dim=tc.ball_dim,
    )
    print(f"Poincaré GloVe: {gcfg}")
    t0 = time.perf_counter()

    def glove_progress(epoch: int, loss: float) -> None:
        print(
            f"  epoch {epoch}: Eq.3 loss {loss:,.0f} ({loss / cooc.nnz:.5f} per nonzero), "
            f"{time.perf_counter() - t0:.0f}s",
            flush=True,
        )

    points, gstats = train_glove(cooc, gcfg, glove_progress)
    glove_s = time.perf_counter() - t0
    norms = points[2:].norm(dim=-1)
    print(f"  norms per ball: mean {norms.mean():.3f}, max {norms.max():.3f}")
    print(f"neighbours after GloVe (top {SKIP_TOP} frequent words excluded):")
    nb_glove = neighbours(points, vocab, gcfg.aggregate)

    from hyperim.data.wordnet import WordNet

    t0 = time.perf_counter()
    wn = WordNet.load()
    counts = {s: len(hypernym_pairs(vocab.tokens, wn, senses=s)) for s in ("first", "all")}
    words = hypernym_pairs(vocab.tokens, wn, senses=args.senses)
    pairs = pair_ids(words, vocab)
    n_words = len({w for pair in pairs for w in pair})
    print(
        f"WordNet pairs: first sense {counts['first']:,}, all senses {counts['all']:,}; "
        f"using {args.senses}: {len(pairs):,} pairs over {n_words:,} words "
        f"({time.perf_counter() - t0:.1f}s incl. loading WordNet)"
    )
    rcfg = RefineConfig(epochs=args.refine_epochs, lr=args.refine_lr, aggregate=gcfg.aggregate)
    t0 = time.perf_counter()

    def refine_progress(epoch: int, loss: float) -> None:
        print(f"  epoch {epoch}: Eq.4 loss {loss:.4f}, {time.perf_counter() - t0:.0f}s", flush=True)

    refined, rstats = refine_embeddings(points, pairs, rcfg, refine_progress)
    refine_s = time.perf_counter() - t0
    d_before = pair_distances(points, pairs, gcfg.aggregate)
    d_after = pair_distances(refined, pairs, gcfg.aggregate)
    print(
        f"  Eq.4 loss (fixed negatives) {rstats.loss_before:.4f} -> {rstats.loss_after:.4f}; "
        f"mean distance pairs/random {d_before['pairs']}/{d_before['random']} -> "
        f"{d_after['pairs']}/{d_after['random']}"
    )
    in_pairs = torch.zeros(len(vocab), dtype=torch.bool)
    in_pairs[torch.tensor(pairs).flatten()] = True
    assert torch.equal(refined[~in_pairs], points[~in_pairs])  # words outside the pairs
    print(f"neighbours after WordNet refinement (top {SKIP_TOP} frequent words excluded):")
    nb_refined = neighbours(refined, vocab, gcfg.aggregate)

    if args.save is not None:
        from hyperim.pretrain.io import save_embeddings

        args.save.mkdir(parents=True, exist_ok=True)
        save_embeddings(args.save / "glove.txt", vocab.tokens, points, gcfg.aggregate)
        save_embeddings(args.save / "glove_wordnet.txt", vocab.tokens, refined, gcfg.aggregate)

    summary = {
        "vocab": len(vocab),
        "cooc_nnz": int(cooc.nnz),
        "cooc_seconds": round(cooc_s, 2),
        "cooc_peak_mib": round(cooc_peak, 1),
        "glove": {
            "config": asdict(gcfg),
            "seconds": round(glove_s, 1),
            "seconds_per_epoch": [round(s, 1) for s in gstats.seconds],
            "loss_per_nonzero": [round(x, 5) for x in gstats.mean_loss],
        },
        "wordnet": {
            "pairs_first_sense": counts["first"],
            "pairs_all_senses": counts["all"],
            "senses": args.senses,
            "pairs": len(pairs),
            "words": n_words,
            "loss_before": round(rstats.loss_before, 4),
            "loss_after": round(rstats.loss_after, 4),
            "loss_per_epoch": [round(x, 4) for x in rstats.loss],
            "distance_before": d_before,
            "distance_after": d_after,
            "seconds": round(refine_s, 1),
        },
        "neighbours_glove": {w: nb_glove[w][:5] for w in WORDS},
        "neighbours_refined": {w: nb_refined[w][:5] for w in WORDS},
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
