"""Where a training step's time goes, HyperIM against EuclideanIM at the same shapes.

For each model: the whole optimisation step (as ``make bench``'s ``*-hyperbolic-price``
cases), and the word encoder alone (forward + backward of its output summed: the hyperbolic
GRU of Eq. 5, or ``torch.nn.GRU``); the rest of the step is the interaction, the prediction
layers, the loss and the optimisers. Fastest of ``--steps`` after ``--warmup`` untimed ones
(compilation). One JSON line per model and shape.

Usage::

    python benchmarks/price.py [--shapes rcv1,debtags] [--steps 3] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import BALL_DIM, N_BALLS, QUICK_SHAPES, SHAPES


def _encoder(model, tokens, mask) -> None:
    """Forward and backward of the word encoder alone."""
    model.zero_grad(set_to_none=True)
    model.encode(tokens, mask).sum().backward()


def _fastest(fn, warmup: int, steps: int) -> float:
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="rcv1,debtags")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch

    from hyperim.config import TrainConfig
    from hyperim.data.batching import label_targets
    from hyperim.models import HyperIMConfig, HyperIMModel
    from hyperim.models.euclidean import EuclideanIMConfig, EuclideanIMModel
    from hyperim.train import optimisation_step

    torch.set_num_threads(args.threads)
    for shape in args.shapes.split(","):
        s = (QUICK_SHAPES if args.quick else SHAPES)[shape]
        sizes = dict(vocab_size=s["vocab"], n_labels=s["labels"], max_len=s["tokens"])
        rng = np.random.default_rng(0)
        lists = [
            rng.choice(s["labels"], size=int(rng.integers(1, s["positives"] + 1)), replace=False)
            for _ in range(s["batch"])
        ]
        labels, targets, tmask = label_targets(
            lists, s["labels"], s["negatives"], torch.Generator().manual_seed(0)
        )
        tokens = torch.randint(2, s["vocab"], (s["batch"], s["tokens"]))
        mask = torch.ones_like(tokens, dtype=torch.bool)
        for name, model in (
            ("hyperim", HyperIMModel(HyperIMConfig(**sizes, n_balls=N_BALLS, ball_dim=BALL_DIM))),
            ("euclidean", EuclideanIMModel(EuclideanIMConfig(**sizes, dim=N_BALLS * BALL_DIM))),
        ):
            torch.manual_seed(0)
            opts = model.configure_optimizers(TrainConfig(lr=1e-3))
            step = partial(optimisation_step, model, opts, tokens, mask, labels, targets, tmask)
            row = {"model": name, "shape": shape, "threads": args.threads}
            for what, fn in (("step", step), ("encoder", partial(_encoder, model, tokens, mask))):
                row[f"{what}_s"] = round(_fastest(fn, args.warmup, args.steps), 4)
            row["rest_s"] = round(row["step_s"] - row["encoder_s"], 4)
            row["encoder_share"] = round(row["encoder_s"] / row["step_s"], 3)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
