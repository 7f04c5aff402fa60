"""Check that hyperim runs on CUDA (run on a GPU machine; CI never needs one).

    python scripts/cuda_check.py

1. the fused interaction equals the naive formula on CUDA in float64 (eager and compiled), and
   the hyperbolic GRU on CUDA equals the same GRU on the CPU (eager and compiled);
2. a training step at the RCV1 shape, fused vs naive, with time and peak GPU memory;
3. a training run on the bundled debtags data with device=cuda (``--epochs``, default 1;
   labels from the hierarchy, random words so that no WordNet is needed), then evaluation on
   the test split.
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
from hyperim.models import HyperIMConfig, HyperIMModel
from hyperim.nn import HyperbolicGRU
from hyperim.train import optimisation_step, train


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


def gru_equality() -> None:
    torch.manual_seed(0)
    gru = HyperbolicGRU(5, 2, phi="tanh").double()
    with torch.no_grad():
        gru.bias.copy_(project(torch.randn(3, 5, 2, dtype=torch.float64) * 0.2))
    e = project(torch.randn(3, 11, 5, 2, dtype=torch.float64) * 0.4)
    set_compile(False)
    ref = gru(e)
    g_ref = torch.autograd.grad(ref.sum(), gru.w_rz)[0]
    gpu = gru.cuda()
    for compiled in (False, True):
        set_compile(compiled)
        got = gpu(e.cuda())
        g_got = torch.autograd.grad(got.sum(), gpu.w_rz)[0]
        err = max((got.cpu() - ref).abs().max().item(), (g_got.cpu() - g_ref).abs().max().item())
        print(json.dumps({"check": "gru cuda==cpu float64", "compiled": compiled, "err": err}))
        assert err < 1e-8


def step_time(naive: bool) -> dict:
    torch.manual_seed(0)
    cfg = HyperIMConfig(
        vocab_size=30000,
        n_labels=103,
        max_len=300,
        n_balls=75,
        ball_dim=2,
        phi="identity",
        label_bias=False,
    )
    model = HyperIMModel(cfg).cuda()
    model.interaction.naive = naive
    opts = model.configure_optimizers(TrainConfig(lr=1e-3))
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
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep the run here (else a temp dir)")
    args = ap.parse_args()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}))
    equality()
    gru_equality()
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
    from hyperim.api import HyperIM
    from hyperim.data import bundled_dataset_path, load_dataset
    from hyperim.metrics import evaluate_scores

    with tempfile.TemporaryDirectory() as tmp:
        run = args.out or Path(tmp) / "run"
        t0 = time.time()
        cfg = TrainConfig(
            epochs=args.epochs, device="cuda", label_init="hierarchy", word_init="random"
        )
        summary = train(None, run, cfg, progress=False)
        seconds = round(time.time() - t0, 1)
        m = HyperIM.from_pretrained(run, device="cuda")
        docs = load_dataset(bundled_dataset_path()).test
        scores = m.predict_proba([d.tokens for d in docs])
        truth = [set(m.labels.encode(d.labels)) for d in docs]
        test = evaluate_scores(scores, truth, threshold=m.threshold)
        print(
            json.dumps(
                {
                    "check": f"debtags {args.epochs} epoch(s) on cuda",
                    "seconds": seconds,
                    "test": test,
                    **summary,
                }
            )
        )


if __name__ == "__main__":
    main()
