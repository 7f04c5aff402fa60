"""Check that hyperim runs on CUDA (run on a GPU machine; CI never needs one).

    python scripts/cuda_check.py

1. the fused interaction equals the naive formula on CUDA in float64 (eager and compiled);
2. a training step at the RCV1 shape, fused vs naive, with time and peak GPU memory;
3. a short training run on the bundled debtags data with device=cuda, then evaluation.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from hyperim.config import TrainConfig
from hyperim.geometry import pairwise_dist, pairwise_dist_naive, project
from hyperim.geometry.pairwise import set_compile
from hyperim.models import HyperIMModel, ModelConfig
from hyperim.train import make_optimizers, optimisation_step, train


def equality() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    x = project(
        torch.randn(3, 9, 5, 2, device="cuda", dtype=torch.float64, generator=g) * 0.4, 0.95
    )
    y = project(torch.randn(13, 5, 2, device="cuda", dtype=torch.float64, generator=g) * 0.4, 0.95)
    x.requires_grad_()
    y.requires_grad_()
    ref = pairwise_dist_naive(x, y)
    gr = torch.autograd.grad(ref.sum(), (x, y))
    for compiled in (False, True):
        set_compile(compiled)
        got = pairwise_dist(x, y)
        gg = torch.autograd.grad(got.sum(), (x, y))
        err = max(
            (got - ref).abs().max().item(),
            *[(a - b).abs().max().item() for a, b in zip(gg, gr, strict=True)],
        )
        print(
            json.dumps(
                {"check": "fused==naive cuda float64", "compiled": compiled, "max_abs_err": err}
            )
        )
        assert err < 1e-8


def step_time(naive: bool) -> dict:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30000, n_labels=103, max_len=300, n_balls=75, ball_dim=2)
    model = HyperIMModel(cfg).cuda()
    model.interaction.naive = naive
    opts = make_optimizers(model, 1e-3)
    tokens = torch.randint(2, 30000, (64, 300), device="cuda")
    mask = torch.ones_like(tokens, dtype=torch.bool)
    targets = (torch.rand(64, 103, device="cuda") < 0.03).float()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(4):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        optimisation_step(model, opts, tokens, mask, None, targets)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {
        "seconds_per_step": round(min(times[1:]), 4),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


def main() -> None:
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
    equality()
    set_compile(True)
    fast = step_time(False)
    naive = step_time(True)
    print(
        json.dumps(
            {
                "case": "rcv1 train step cuda float32",
                "fused": fast,
                "naive": naive,
                "speedup": round(naive["seconds_per_step"] / fast["seconds_per_step"], 1),
            }
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        summary = train(
            None,
            Path(tmp) / "run",
            TrainConfig(epochs=1, max_steps_per_epoch=60, device="cuda"),
            progress=False,
        )
        print(
            json.dumps(
                {
                    "check": "debtags 60 steps on cuda",
                    "seconds": round(time.time() - t0, 1),
                    **summary,
                }
            )
        )


if __name__ == "__main__":
    main()
