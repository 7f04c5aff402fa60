"""Speed of every model family side by side, in one process: seconds per training step and
inference documents per second, on a real dataset (default: the bundled debtags).

Each family is built with its defaults (``--option name=value`` overrides one for every family
that has it) and the vocabulary it would train with, from a random start (speed does not
depend on the weights; pre-training is not timed). Every family trains on the same real
batches (the first ``--steps`` + ``--warmup`` batches of epoch 1, length-bucketed as the
trainer makes them; labels and sampled negatives as the trainer draws them, all labels for a
family that scores every label) and scores the same ``--docs`` validation documents
(``proba_encoded``, batches of ``--eval-batch-size``: every label's probability). The rounds
are interleaved (family A, B, ..., then A, B, ... again), so a slow minute of a shared machine
hits every family alike; a row reports the median over rounds of each round's median step.
A family fitted in closed form (SLEEC) has no steps: with ``--fit`` its one fit on the whole
training split is timed once instead (minutes).

Usage::

    OMP_NUM_THREADS=2 python benchmarks/families.py [--families hyperim,exam,...] \\
        [--data DIR] [--steps 10] [--warmup 2] [--rounds 2] [--docs 1000] [--fit]

Prints one JSON line per family, then a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default="")
    ap.add_argument("--data", default="")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--eval-batch-size", type=int, default=128)
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--fit", action="store_true", help="time a closed-form family's fit")
    args = ap.parse_args()

    import numpy as np
    import torch

    from hyperim.config import TrainConfig
    from hyperim.data import bundled_dataset_path
    from hyperim.data.batching import epoch_batches, label_targets, pad_tokens
    from hyperim.geometry.pairwise import compile_if_worth_it
    from hyperim.inference import proba_encoded
    from hyperim.models import family_names, get_family
    from hyperim.models.base import sampling_logit_offset
    from hyperim.train import build_model, optimisation_step, prepare, training_data

    compile_if_worth_it()  # as the trainer does: compiled kernels where they pay
    data = Path(args.data) if args.data else bundled_dataset_path()
    names = [n for n in args.families.split(",") if n] or family_names()
    overrides = dict(o.split("=", 1) for o in args.option)
    rows: dict[str, dict] = {}
    steps: dict[str, object] = {}
    infer: dict[str, object] = {}
    for name in names:
        family = get_family(name)
        fields = {f.name for f in family.config_class.option_fields()}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        options = {k: _parse_value(v) for k, v in overrides.items() if k in fields | train_fields}
        if "word_init" in fields:  # the start is not timed; its vocabulary is
            options.setdefault("word_init", "random")
        cfg = TrainConfig.of(model=name, batch_size=args.batch_size, **options).validate()
        prep = prepare(data, cfg)
        cls = family.model_class
        negatives = 0 if cls.scores_every_label else cfg.negatives
        mean_pos = float(np.mean([len(x) for x in prep.train.labels]))
        offset = sampling_logit_offset(negatives, len(prep.labels), mean_pos)
        sizes = training_data(prep, cfg, Path("/tmp/hyperim-families-bench"), quiet=True)
        torch.manual_seed(0)
        model = build_model(cfg, len(prep.vocab), len(prep.labels), offset, sizes)
        row: dict = {"family": name, "vocab": len(prep.vocab), "labels": len(prep.labels)}
        row["parameters"] = sum(p.numel() for p in model.parameters())
        row["threads"] = torch.get_num_threads()
        if cls.trained_by_gradients:
            opts = model.configure_optimizers(cfg)
            gen = torch.Generator().manual_seed(0)
            batches = epoch_batches(prep.train.lengths, cfg.batch_size, 0, 0)
            batches = batches[: args.warmup + args.steps]
            prepared = []
            for idx in batches:
                labels, targets, tmask = label_targets(
                    [prep.train.labels[i] for i in idx], len(prep.labels), negatives, gen
                )
                tokens, mask = pad_tokens([prep.train.tokens[i] for i in idx])
                prepared.append((tokens, mask, labels, targets, tmask))

            def run_steps(model=model, opts=opts, prepared=prepared) -> float:
                model.train()
                times = []
                for i, batch in enumerate(prepared):
                    t0 = time.perf_counter()
                    optimisation_step(model, opts, *batch)
                    if i >= args.warmup:
                        times.append(time.perf_counter() - t0)
                return statistics.median(times)

            steps[name] = run_steps
        elif args.fit:
            t0 = time.perf_counter()
            model.fit(training_data(prep, cfg, Path("/tmp/hyperim-families-bench"), quiet=True))
            row["fit_s"] = round(time.perf_counter() - t0, 1)
        docs = prep.valid.tokens[: args.docs]

        def run_inference(model=model, docs=docs) -> float:
            model.eval()
            proba_encoded(model, docs[: args.eval_batch_size], args.eval_batch_size)  # warm-up
            t0 = time.perf_counter()
            proba_encoded(model, docs, args.eval_batch_size)
            return len(docs) / (time.perf_counter() - t0)

        infer[name] = run_inference
        rows[name] = row
    per_step: dict[str, list[float]] = {n: [] for n in steps}
    per_doc: dict[str, list[float]] = {n: [] for n in infer}
    for _ in range(args.rounds):
        for name in names:
            if name in steps:
                per_step[name].append(steps[name]())
            per_doc[name].append(infer[name]())
    for name in names:
        row = rows[name]
        if per_step.get(name):
            row["step_s"] = round(statistics.median(per_step[name]), 4)
        row["docs_per_s"] = round(statistics.median(per_doc[name]), 1)
        print(json.dumps(row), flush=True)
    base = rows.get("hyperim", {})
    print("\n| family | s / training step | × HyperIM | inference docs/s | × HyperIM | params |")
    print("|---|---|---|---|---|---|")
    for name in names:
        r = rows[name]
        step = f"{r['step_s']:.3f}" if "step_s" in r else (
            f"fit {r['fit_s']:.0f} s" if "fit_s" in r else "-"
        )  # fmt: skip
        ratio = f"{r['step_s'] / base['step_s']:.2f}" if "step_s" in r and "step_s" in base else "-"
        dratio = f"{r['docs_per_s'] / base['docs_per_s']:.2f}" if base else "-"
        print(
            f"| {name} | {step} | {ratio} | {r['docs_per_s']:.0f} | {dratio} | "
            f"{r['parameters']:,} |"
        )


if __name__ == "__main__":
    main()
