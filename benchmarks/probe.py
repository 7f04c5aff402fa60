"""Probe: how fast does HyperIM learn from the text? Trains STEPS steps of epoch 1 on debtags.

    OMP_NUM_THREADS=1 python benchmarks/probe.py '{"label_bias": true}' 150 [THREADS]

Prints, every 50 steps (and every 10 of the first 50), the mean training loss of the last 50
and of the last 10 steps. Compare with the loss of a model that knows only each label's training
frequency under the same sampled negatives: 12.56 per document on debtags with 100 negatives
(BENCHMARKS.md). ``{"no_gru": true}`` feeds the word embeddings straight to the interaction.
Training data only; nothing is evaluated.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from hyperim.config import TrainConfig
from hyperim.data import bundled_dataset_path
from hyperim.data.batching import epoch_batches, label_targets, pad_tokens
from hyperim.models.base import prior_logits
from hyperim.train import build_model, optimisation_step, prepare, sampling_logit_offset


def main() -> None:
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    variant = json.loads(sys.argv[1])
    steps = int(sys.argv[2])
    no_gru = variant.pop("no_gru", False)
    cfg = TrainConfig.of(**variant)
    prep = prepare(bundled_dataset_path(), cfg)
    torch.manual_seed(0)
    positives = float(np.mean([len(x) for x in prep.train.labels]))
    offset = sampling_logit_offset(cfg.negatives, len(prep.labels), positives)
    model = build_model(cfg, len(prep.vocab), len(prep.labels), offset)
    if model.head.label_bias is not None:
        model.head.start_at_prior(prior_logits(prep.train.labels, len(prep.labels), offset))
    if no_gru:
        model.encode = lambda tokens, mask: model.words(tokens)
    opts = model.configure_optimizers(cfg)
    gen = torch.Generator().manual_seed(0)
    batches = epoch_batches(prep.train.lengths, cfg.batch_size, 0, 0)
    losses: list[float] = []
    t0 = time.time()
    for step in range(steps):
        idx = batches[step % len(batches)]
        tokens, mask = pad_tokens([prep.train.tokens[i] for i in idx])
        labels, targets, tmask = label_targets(
            [prep.train.labels[i] for i in idx], len(prep.labels), cfg.negatives, gen
        )
        losses.append(float(optimisation_step(model, opts, tokens, mask, labels, targets, tmask)))
        if (step + 1) % 50 == 0 or (step < 50 and (step + 1) % 10 == 0):
            row = {
                "variant": sys.argv[1],
                "step": step + 1,
                "loss50": round(float(np.mean(losses[-50:])), 3),
                "loss10": round(float(np.mean(losses[-10:])), 3),
                "s": round(time.time() - t0),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
