"""`make demo`: train HyperIM on the bundled debtags data, evaluate on its test split, print the
metrics table beside the label-frequency ranking, and a few predictions with their evidence.

The demo trains two epochs (``--epochs``) so it ends in about 20 minutes on a 2-core CPU; a plain
``hyperim train`` trains until early stopping and reaches the figures in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from hyperim.api import HyperIM
from hyperim.baselines.frequency import FrequencyBaseline
from hyperim.config import TrainConfig
from hyperim.data import LabelIndex, bundled_dataset_path, load_dataset
from hyperim.metrics import evaluate_scores, format_table
from hyperim.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    t0 = time.time()
    train(None, args.out, TrainConfig.of(epochs=args.epochs))
    print(f"trained in {time.time() - t0:.0f}s -> {args.out / 'model'}")

    ds = load_dataset(bundled_dataset_path())
    model = HyperIM.from_pretrained(args.out)
    index = LabelIndex(ds.labels)
    truth = [set(index.encode(d.labels)) for d in ds.test]
    t1 = time.time()
    hyperim_scores = model.predict_proba([d.tokens for d in ds.test])
    freq = FrequencyBaseline().fit([index.encode(d.labels) for d in ds.train], len(index))
    rows = {
        "label frequency": evaluate_scores(freq.predict_proba(len(ds.test)), truth),
        "HyperIM": evaluate_scores(hyperim_scores, truth, threshold=model.threshold),
    }
    print(
        f"\ndebtags test ({len(ds.test)} documents, {len(index)} labels), "
        f"evaluated in {time.time() - t1:.0f}s:"
    )
    print(format_table(rows))
    print("\nA few test predictions (probability, label, closest words):")
    sample = ds.test[:: len(ds.test) // 4][:4]
    for doc, preds in zip(sample, model.predict([d.tokens for d in sample], k=5), strict=True):
        print(f"\n{doc.id}: {' '.join(doc.tokens[:14])} ...")
        for p in preds:
            mark = "+" if p.label in doc.labels else " "
            print(f"  {mark} {p.probability:5.3f}  {p.label:<28} {', '.join(p.evidence)}")
    print(f"\ndemo finished in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
