"""Which label-set threshold policy generalises? Chosen on the validation split only.

Fits TF-IDF + logistic regression (``hyperim baseline tfidf``'s model) on the training split,
scores the validation and test splits, then for every policy of :mod:`hyperim.thresholds`
(with and without ancestor closure):

* **choice** (validation only): 2-fold cross-validation inside the validation split — tune on
  one half, measure micro/macro-F1 on the other, both ways round, averaged;
* **report** (test): tune on the whole validation split, measure on the test split, beside F1
  at the fixed 0.5.

    python benchmarks/thresholds.py [--data DIR] [--folds-seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hyperim.baselines.tfidf import TfidfBaseline
from hyperim.data import LabelIndex, bundled_dataset_path, load_dataset
from hyperim.metrics import f1_scores
from hyperim.thresholds import POLICIES, choose_thresholds, label_ancestors, label_levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--folds-seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    ds = load_dataset(args.data or bundled_dataset_path())
    index = LabelIndex(ds.labels)
    model = TfidfBaseline().fit(
        [" ".join(d.tokens) for d in ds.train], [index.encode(d.labels) for d in ds.train],
        len(index),
    )  # fmt: skip
    scores = {s: model.predict_proba([" ".join(d.tokens) for d in getattr(ds, s)])
              for s in ("valid", "test")}  # fmt: skip
    truth = {s: [set(index.encode(d.labels)) for d in getattr(ds, s)] for s in ("valid", "test")}
    print(f"fitted and scored in {time.time() - t0:.0f}s", flush=True)
    names = index.labels
    levels, ancestors = label_levels(ds.hierarchy, names), label_ancestors(ds.hierarchy, names)
    c = len(names)
    perm = np.random.default_rng(args.folds_seed).permutation(len(ds.valid))
    halves = [perm[: len(perm) // 2], perm[len(perm) // 2 :]]

    def f1(policy: str, closure: bool, tune: tuple, test: tuple) -> dict[str, float]:
        th = choose_thresholds(tune[0], tune[1], policy, levels=levels, closure=closure,
                               ancestors=ancestors if closure else None)  # fmt: skip
        return f1_scores(th.label_sets(test[0]), test[1], c)

    rows = []
    for policy in POLICIES:
        for closure in (False, True):
            cv = []
            for a, b in (halves, halves[::-1]):
                tune = (scores["valid"][a], [truth["valid"][i] for i in a])
                held = (scores["valid"][b], [truth["valid"][i] for i in b])
                cv.append(f1(policy, closure, tune, held))
            test = f1(policy, closure, (scores["valid"], truth["valid"]),
                      (scores["test"], truth["test"]))  # fmt: skip
            row = {
                "policy": policy,
                "closure": closure,
                "cv_micro": float(np.mean([x["micro_f1"] for x in cv])),
                "cv_macro": float(np.mean([x["macro_f1"] for x in cv])),
                "test_micro": test["micro_f1"],
                "test_macro": test["macro_f1"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| policy | closure | valid 2-fold micro-F1 | valid 2-fold macro-F1 | test micro-F1 | "
          "test macro-F1 |\n|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        print(f"| {r['policy']} | {'yes' if r['closure'] else 'no'} | {r['cv_micro']:.2f} | "
              f"{r['cv_macro']:.2f} | {r['test_micro']:.2f} | {r['test_macro']:.2f} |")  # fmt: skip
    print(f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
