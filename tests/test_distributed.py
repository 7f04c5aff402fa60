"""Data-parallel training: two CPU processes under ``torchrun`` (gloo) equal one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hyperim.config import TrainConfig
from hyperim.distributed import DistContext
from hyperim.train import train

DDP = dict(
    max_len=24,
    min_count=1,
    batch_size=15,  # 160 training documents: 10 batches of 8 + 7 documents, one of 5 + 5
    lr=1e-2,
    negatives=3,
    checkpoint_every=4,
    patience=5,
    word_init_scale=0.1,
    label_init_scale=0.1,
    epochs=2,
    device="cpu",
)
#: Each family's architecture, written flat beside the training options (an earlier version's
#: TOML layout, which still works: the keys move to [model]).
FAMILIES = {
    # Word dropout draws its masks from each process's own generator over that process's rows,
    # so with it two processes equal one only in distribution; the equality is checked without.
    "hyperim": dict(n_balls=4, ball_dim=2, word_dropout=0.0),
    "euclidean": dict(model="euclidean", dim=8),
}


def test_rows_share_out_a_batch() -> None:
    for n in (2, 7, 16):
        rows = [DistContext(3, r).rows(n) for r in range(3)]
        got = [i for s in rows for i in range(n)[s]]
        assert got == list(range(n))  # contiguous, disjoint, complete
        assert max(s.stop - s.start for s in rows) - min(s.stop - s.start for s in rows) <= 1


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_two_processes_match_one(family: str, tiny_dataset: Path, tmp_path: Path) -> None:
    options = {**DDP, **FAMILIES[family]}
    toml = tmp_path / "ddp.toml"
    toml.write_text(
        "[train]\n"
        + "".join(
            f"{k} = {json.dumps(v) if not isinstance(v, float) else repr(v)}\n"
            for k, v in options.items()
        )
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "hyperim",
        "train",
        "--data",
        str(tiny_dataset),
        "--out",
        str(tmp_path / "ddp"),
        "--config",
        str(toml),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    train(tiny_dataset, tmp_path / "single", TrainConfig.of(**options), progress=False)

    a = load_file(str(tmp_path / "single" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:  # same up to the order of floating-point sums
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-5, msg=k)
    log_a = [json.loads(x) for x in (tmp_path / "single" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert len(log_a) == len(log_b) == 2
    for ra, rb in zip(log_a, log_b, strict=True):
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-3 * abs(ra["train_loss"])
        assert abs(ra["valid"]["nDCG@5"] - rb["valid"]["nDCG@5"]) < 0.5
        assert (ra["processes"], rb["processes"]) == (1, 2)
        assert (ra["documents"], rb["documents"]) == (160, 10 * 8 + 5)  # rank 0's share
    # rank 0 alone wrote the run folder: one log line per epoch, one checkpoint, no strays
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir()
    )
