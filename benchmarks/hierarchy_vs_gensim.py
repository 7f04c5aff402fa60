"""Our Poincaré hierarchy embedding (paper Eq. 2) against gensim's ``PoincareModel``.

Both embed the same WordNet noun transitive closure (Nickel & Kiela's mammal closure under
``mammal.n.01``, ~1,180 nodes / 6,540 pairs, or all nouns, ~82k nodes / 743k pairs) in the
same dimension for the same number of epochs, and both embeddings are scored by the same
function, :func:`hyperim.pretrain.hierarchy.reconstruction_metrics` (mean rank and MAP of each
node's true neighbours among its non-neighbours). Prints one JSON object per case::

    name, dim, epochs, burn_in, nodes, pairs, ours_seconds, ours_mean_rank, ours_map,
    gensim_seconds, gensim_mean_rank, gensim_map, ...

``*_seconds`` is the wall time of building the model and training it (ours: the whole
:func:`~hyperim.pretrain.hierarchy.train_hierarchy_embedding` call, transitive closure
included; gensim: ``PoincareModel(...)`` plus ``.train``), each in its own process with one
thread. Reading WordNet and evaluating are not timed.

Conventions, the same for both sides: the pairs are Nickel & Kiela's ``(hyponym, hypernym)``
(``--orientation nk``, default), so each trainer corrupts the hypernym with negatives and the
metric ranks each synset's hypernyms; ``--orientation eq2`` feeds ``(hypernym, hyponym)``
instead (the paper's Eq. 2 reading: negatives replace the child; the metric ranks each
synset's descendants). 10 negatives per pair; the first ``burn_in`` epochs run at a tenth of
the learning rate (gensim: ``burn_in`` extra epochs at ``burn_in_alpha = alpha / 10``, so it
trains ``epochs - burn_in`` more; ``epochs`` counts both). Each side otherwise keeps its own
default optimiser settings (gensim: lr 0.1, batch 10, negatives drawn in proportion to node
frequency; ours: :class:`~hyperim.pretrain.hierarchy.HierarchyEmbeddingConfig` defaults,
except that with ``--orientation nk`` negatives are drawn in proportion to frequency ** 0.75,
``sampling_power=0.75``, measured better there: mammal dim 5, 50 epochs, MAP 0.91 against
0.85 uniform; nouns dim 5, 10 epochs, 0.21 against 0.08. Uniform stays the library default
because it is better for the Eq. 2 orientation). Nickel & Kiela report
noun-closure mean rank 4.9 / MAP 0.823 at dim 5 and 4.02 / 0.851 at dim 10 (many more epochs).

gensim is a benchmark peer, not a dependency of hyperim: install it in a throwaway venv that
also sees hyperim (``--no-deps``, so the project's pins are untouched)::

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch==2.13.0 geoopt==0.5.1 gensim==4.4.0 numpy scipy
    /tmp/bench-venv/bin/pip install --no-deps -e /work/main

(always pin torch: an unpinned install pulls a multi-GB CUDA build). Then, from the project
venv::

    python benchmarks/hierarchy_vs_gensim.py --cases mammal-2,mammal-5,mammal-10 --epochs 100
    python benchmarks/hierarchy_vs_gensim.py --cases nouns-5 --epochs 5

The gensim side runs under ``--gensim-python`` (default ``/tmp/bench-venv/bin/python``);
``--no-gensim`` runs ours alone (gensim fields are ``null``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOTS = {"mammal": "mammal.n.01", "nouns": None}


def closure_pairs(name: str, wordnet: str, orientation: str) -> list[tuple[str, str]]:
    from hyperim.data.wordnet import WordNet

    pairs = WordNet.load(wordnet).closure_pairs(ROOTS[name])  # (ancestor, descendant)
    return [(d, a) for a, d in pairs] if orientation == "nk" else pairs


def burn_in_for(epochs: int, requested: int | None) -> int:
    """Nickel & Kiela's 10 burn-in epochs, but at most a fifth of a short run."""
    return requested if requested is not None else min(10, epochs // 5)


# --------------------------------------------------------------------------- workers


def worker_ours(args: argparse.Namespace) -> dict:
    import torch

    from hyperim.pretrain.hierarchy import HierarchyEmbeddingConfig, train_hierarchy_embedding
    from hyperim.pretrain.io import save_embeddings

    torch.set_num_threads(args.threads)
    pairs = closure_pairs(args.name, args.wordnet, args.orientation)
    overrides = json.loads(args.ours_config)
    cfg = HierarchyEmbeddingConfig(
        dim=args.dim,
        epochs=args.epochs,
        burn_in=args.burn_in,
        negatives=args.negatives,
        seed=args.seed,
        **overrides,
    )
    t0 = time.perf_counter()
    names, points, stats = train_hierarchy_embedding(pairs, cfg)
    seconds = time.perf_counter() - t0
    save_embeddings(args.out, names, points, cfg.aggregate)
    return {"seconds": seconds, "train_seconds": stats["seconds"], "config": stats["config"]}


def worker_gensim(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from gensim.models.poincare import PoincareModel

    from hyperim.pretrain.io import save_embeddings

    torch.set_num_threads(args.threads)
    pairs = closure_pairs(args.name, args.wordnet, args.orientation)
    t0 = time.perf_counter()
    model = PoincareModel(
        pairs, size=args.dim, negative=args.negatives, burn_in=args.burn_in, seed=args.seed
    )
    model.train(epochs=args.epochs - args.burn_in)
    seconds = time.perf_counter() - t0
    names = list(model.kv.index_to_key)
    points = torch.from_numpy(np.asarray(model.kv.vectors, dtype=np.float64)).unsqueeze(1)
    save_embeddings(args.out, names, points, "sum", model="poincare-gensim")
    return {"seconds": seconds, "alpha": model.train_alpha, "batch_size": 10}


# --------------------------------------------------------------------------- driver


def run_worker(python: str, side: str, args: argparse.Namespace, name: str, dim: int, out: Path):
    cmd = [
        python,
        __file__,
        "--worker",
        side,
        "--name",
        name,
        "--dim",
        str(dim),
        "--epochs",
        str(args.epochs),
        "--burn-in",
        str(args.burn_in),
        "--negatives",
        str(args.negatives),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
        "--wordnet",
        args.wordnet,
        "--orientation",
        args.orientation,
        "--ours-config",
        args.ours_config,
        "--out",
        str(out),
    ]
    n = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{side} worker failed for {name}-{dim} (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def evaluate(path: Path, pairs, max_queries: int | None) -> dict:
    from hyperim.pretrain.hierarchy import reconstruction_metrics
    from hyperim.pretrain.io import load_embeddings

    names, points = load_embeddings(path, dtype=__import__("torch").float64)
    return reconstruction_metrics(names, points, pairs, "sum", max_queries=max_queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="mammal-2,mammal-5,mammal-10", help="NAME-DIM,...")
    ap.add_argument("--epochs", type=int, default=100, help="total epochs, burn-in included")
    ap.add_argument("--burn-in", type=int, default=None, help="default: min(10, epochs // 5)")
    ap.add_argument("--negatives", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--orientation", choices=["nk", "eq2"], default="nk")
    ap.add_argument(
        "--ours-config",
        default=None,
        help="JSON HierarchyEmbeddingConfig overrides for ours (default: "
        "'{\"sampling_power\": 0.75}' with --orientation nk, else '{}')",
    )
    ap.add_argument("--gensim-python", default="/tmp/bench-venv/bin/python")
    ap.add_argument("--no-gensim", action="store_true")
    ap.add_argument(
        "--eval-queries",
        type=int,
        default=None,
        help="score a random subset of nodes (default all)",
    )
    # worker mode (internal)
    ap.add_argument("--worker", choices=["ours", "gensim"], help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    ap.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.ours_config is None:
        args.ours_config = json.dumps({"sampling_power": 0.75} if args.orientation == "nk" else {})
    if args.worker:
        args.burn_in = burn_in_for(args.epochs, args.burn_in)
        worker = worker_ours if args.worker == "ours" else worker_gensim
        print(json.dumps(worker(args)), flush=True)
        return

    import torch

    torch.set_num_threads(args.threads)
    args.burn_in = burn_in_for(args.epochs, args.burn_in)
    for case in args.cases.split(","):
        name, dim_text = case.rsplit("-", 1)
        if name not in ROOTS:
            raise SystemExit(f"unknown case {case!r}; expected mammal-DIM or nouns-DIM")
        dim = int(dim_text)
        pairs = closure_pairs(name, args.wordnet, args.orientation)
        row: dict = {
            "name": name,
            "dim": dim,
            "epochs": args.epochs,
            "burn_in": args.burn_in,
            "orientation": args.orientation,
            "nodes": len({x for p in pairs for x in p}),
            "pairs": len(pairs),
        }
        with tempfile.TemporaryDirectory() as tmp:
            ours = run_worker(sys.executable, "ours", args, name, dim, Path(tmp) / "ours.txt")
            t0 = time.perf_counter()
            m = evaluate(Path(tmp) / "ours.txt", pairs, args.eval_queries)
            row.update(
                ours_seconds=round(ours["seconds"], 2),
                ours_mean_rank=round(m["mean_rank"], 3),
                ours_map=round(m["map"], 4),
            )
            eval_seconds = time.perf_counter() - t0
            row.update(gensim_seconds=None, gensim_mean_rank=None, gensim_map=None)
            if not args.no_gensim:
                gs = run_worker(args.gensim_python, "gensim", args, name, dim, Path(tmp) / "g.txt")
                m = evaluate(Path(tmp) / "g.txt", pairs, args.eval_queries)
                row.update(
                    gensim_seconds=round(gs["seconds"], 2),
                    gensim_mean_rank=round(m["mean_rank"], 3),
                    gensim_map=round(m["map"], 4),
                )
        cfg = ours["config"]
        row["ours_config"] = {
            k: cfg[k] for k in ("lr", "batch_size", "sampling_power", "optimizer", "dtype")
        }
        row["eval_queries"] = m["n_queries"]
        row["eval_seconds"] = round(eval_seconds, 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
