"""Training-step time and peak memory of HyperIM with the fused interaction vs the naive
broadcast Möbius formula, at the RCV1 shape (batch 64, T 300, 103 labels, 75×2D).

Each case runs in its own process so its peak RSS is its own. Prints one JSON object per line:
``name, seconds_per_step, baseline_seconds_per_step, speedup, peak_mib, baseline_peak_mib``.

    python benchmarks/interaction.py [--steps 3] [--baseline-steps 2] [--dtype float32]

``--baseline-steps 0`` measures the fused model alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SHAPES = {"rcv1": dict(batch=64, tokens=300, labels=103, n_balls=75, ball_dim=2, vocab=30000)}


def one_case(shape: str, naive: bool, steps: int, dtype: str) -> dict:
    import torch

    from hyperim.config import TrainConfig
    from hyperim.models import HyperIMConfig, HyperIMModel
    from hyperim.train import optimisation_step

    s = SHAPES[shape]
    torch.manual_seed(0)
    cfg = HyperIMConfig(
        vocab_size=s["vocab"],
        n_labels=s["labels"],
        max_len=s["tokens"],
        n_balls=s["n_balls"],
        ball_dim=s["ball_dim"],
        phi="identity",  # the paper's model, as measured before model families existed
        label_bias=False,
    )
    model = HyperIMModel(cfg).to(getattr(torch, dtype))
    model.interaction.naive = naive
    opts = model.configure_optimizers(TrainConfig(lr=1e-3))
    tokens = torch.randint(2, s["vocab"], (s["batch"], s["tokens"]))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    targets = (torch.rand(s["batch"], s["labels"]) < 0.03).float()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        optimisation_step(model, opts, tokens, mask, None, targets)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds_per_step": min(times), "peak_mib": round(peak)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--baseline-steps", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # child process
        print(json.dumps(one_case(args.case, args.naive, args.steps, args.dtype)))
        return

    def child(shape: str, naive: bool, steps: int) -> dict:
        cmd = [
            sys.executable,
            __file__,
            "--case",
            shape,
            "--steps",
            str(steps),
            "--dtype",
            args.dtype,
        ]
        out = subprocess.run(
            cmd + (["--naive"] if naive else []), capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    for shape in SHAPES:
        fast = child(shape, False, args.steps)
        row = {
            "name": f"{shape}-train-step-{args.dtype}",
            "seconds_per_step": round(fast["seconds_per_step"], 3),
            "peak_mib": fast["peak_mib"],
        }
        if args.baseline_steps > 0:  # 0 skips the naive formula (it does not fit in float64)
            base = child(shape, True, args.baseline_steps)
            row |= {
                "baseline_seconds_per_step": round(base["seconds_per_step"], 3),
                "speedup": round(base["seconds_per_step"] / fast["seconds_per_step"], 2),
                "baseline_peak_mib": base["peak_mib"],
            }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
