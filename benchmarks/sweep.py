"""Short training runs on the bundled debtags data to compare options on the validation split.

    python benchmarks/sweep.py '[{}, {"aggregate": "riemannian"}]' [--steps 200]

Each JSON object is a set of TrainConfig overrides; each run trains ``--steps`` steps (one
epoch cut short, same seed and batches for all) into runs/sweep/ and prints one JSON line with
its validation metrics. The test split is never touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from hyperim.config import TrainConfig
from hyperim.train import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", help="JSON list of TrainConfig overrides")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    for overrides in json.loads(args.configs):
        out = Path("runs/sweep") / ("_".join(f"{k}{v}" for k, v in overrides.items()) or "default")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.time()
        cfg = TrainConfig.of(**{"epochs": 1, "max_steps_per_epoch": args.steps, **overrides})
        train(None, out, cfg, progress=False)
        valid = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["valid"]
        row = {"config": overrides, "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row | {k: round(v, 2) for k, v in valid.items()}), flush=True)


if __name__ == "__main__":
    main()
