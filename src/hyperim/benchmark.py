"""The paper's comparisons as commands: Table 2 (``hyperim benchmark``) and the ablation of
Figure 3 (``hyperim ablation``), on the user's own data.

Every entry is trained and evaluated on the same splits with the same budget (``epochs`` or
``max_minutes`` per run) and ``seeds`` seeds; results are the mean ± standard deviation over
seeds of P@1/3/5, nDCG@3/5 (Eq. 8), micro/macro-F1 and wall time.

Resumable: each (entry, seed) trains into ``OUT/runs/<entry>-s<seed>-<hash>``, the hash being
that of its full configuration, and its result is written to ``result.json`` there; a run
with a result is not trained again, an interrupted one resumes from its checkpoint. A failing
entry is reported in its row (``error``), and the others go on.

Entries are model families of :mod:`hyperim.models.registry` (trained by :func:`hyperim.train.
train`) and the fitted baselines ``tfidf`` and ``frequency`` (:data:`BASELINES`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperim import interrupts
from hyperim.atomic import atomic_write_text
from hyperim.errors import HyperIMError
from hyperim.metrics import METRIC_KEYS

# ------------------------------------------------------------------------------ baselines


def _fit_tfidf(ds, index, seed: int):
    from hyperim.baselines.tfidf import TfidfBaseline

    model = TfidfBaseline().fit(
        [" ".join(d.tokens) for d in ds.train],
        [index.encode(d.labels) for d in ds.train],
        len(index),
    )
    return lambda docs: model.predict_proba([" ".join(d.tokens) for d in docs])


def _fit_frequency(ds, index, seed: int):
    from hyperim.baselines.frequency import FrequencyBaseline

    model = FrequencyBaseline().fit([index.encode(d.labels) for d in ds.train], len(index))
    return lambda docs: model.predict_proba(len(docs))


#: Fitted (non-neural) entries: name -> fit(dataset, label index, seed) -> predict_proba(docs).
BASELINES: dict[str, Callable] = {"tfidf": _fit_tfidf, "frequency": _fit_frequency}


# ------------------------------------------------------------------------------ entries
@dataclass
class Entry:
    """One row of a results table: a model family or baseline, with its options."""

    name: str  # the row's name
    model: str  # a family name or a key of BASELINES
    options: dict[str, Any] = field(default_factory=dict)  # TrainConfig / [model] options
    group: dict[str, Any] = field(default_factory=dict)  # e.g. {"variant": "H-hier", "dim": 2}

    def key(self, seed: int, budget: dict[str, Any]) -> str:
        spec = json.dumps(
            {"model": self.model, "options": self.options, "seed": seed, **budget},
            sort_keys=True,
        )
        return f"{self.name}-s{seed}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def parse_models(spec: str) -> list[Entry]:
    """``"hyperim,euclidean,tfidf"`` -> entries; unknown names are a one-line error."""
    from hyperim.models.registry import family_names

    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise HyperIMError("--models: give at least one model")
    known = family_names() + list(BASELINES)
    bad = [n for n in names if n not in known]
    if bad:
        raise HyperIMError(f"--models: unknown {', '.join(bad)}; choose from {', '.join(known)}")
    if len(set(names)) != len(names):
        raise HyperIMError("--models: a model is listed twice")
    return [Entry(n, n) for n in names]


#: The ablation's variants (paper Fig. 3): family and label start.
VARIANTS = {
    "E-rand": ("euclidean", "random"),
    "E-hier": ("euclidean", "hierarchy"),
    "H-rand": ("hyperim", "random"),
    "H-hier": ("hyperim", "hierarchy"),
}


def ablation_entries(dims: Sequence[int], word_init: str | None = None) -> list[Entry]:
    """E-rand, E-hier, H-rand, H-hier at each dimension (HyperIM at ``D`` is ``D/2`` balls of
    2-D; an odd ``D`` is refused). ``word_init`` overrides both families' word start."""
    from hyperim.models.registry import get_family

    entries = []
    for dim in dims:
        for variant, (family, label_init) in VARIANTS.items():
            cfg = get_family(family).config_class.for_dimension(dim, label_init=label_init)
            options = {"label_init": label_init}
            options |= {"dim": dim} if family == "euclidean" else {"n_balls": cfg.n_balls}
            options |= {"ball_dim": 2} if family == "hyperim" else {}
            if word_init is not None:
                options["word_init"] = word_init
            entries.append(
                Entry(f"{variant}-{dim}d", family, options, {"variant": variant, "dim": dim})
            )
    return entries


# ------------------------------------------------------------------------------ running
def _run_neural(entry: Entry, data: Path, run_dir: Path, seed: int, budget: dict, split: str):
    from hyperim.api import HyperIM
    from hyperim.config import TrainConfig
    from hyperim.data import load_dataset
    from hyperim.train import train

    t0 = time.time()
    resume = (run_dir / "run.json").exists()
    cfg = TrainConfig.of(model=entry.model, seed=seed, **budget, **entry.options).validate()
    try:
        summary = train(None if resume else data, run_dir, None if resume else cfg, resume=resume)
    except interrupts.Interrupted as e:  # the advice is this command's, not train's
        raise interrupts.Interrupted(
            f"interrupted while training {run_dir.name}; finished runs and its last "
            "checkpoint are kept: run the same command again to continue",
            e.signum,
        ) from None
    m = HyperIM.from_pretrained(run_dir / "model")
    docs = getattr(load_dataset(data), split)
    t_infer = time.time()
    scores = m.predict_proba([d.tokens for d in docs])
    docs_per_s = len(docs) / max(time.time() - t_infer, 1e-9)
    truth = [set(m.labels.encode(d.labels)) for d in docs]
    metrics = m.metrics(scores, truth)
    steps = summary.get("train_steps", 0)
    return metrics, {
        "best_epoch": summary["best_epoch"],
        "epochs_run": summary["epochs_run"],
        "train_seconds": summary["train_seconds"],
        "step_seconds": round(summary["train_seconds"] / steps, 4) if steps else None,
        "docs_per_s": round(docs_per_s, 1),
        "seconds": round(time.time() - t0, 2),
    }


def _run_baseline(entry: Entry, data: Path, run_dir: Path, seed: int, budget: dict, split: str):
    from hyperim.config import TrainConfig
    from hyperim.data import LabelIndex, load_dataset
    from hyperim.thresholds import tuned_metrics

    t0 = time.time()
    ds = load_dataset(data)
    index = LabelIndex(ds.labels)
    predict = BASELINES[entry.model](ds, index, seed)

    timed: list[float] = []

    def scored(docs: list) -> tuple:
        t = time.time()
        scores = predict(docs)
        timed.append(len(docs) / max(time.time() - t, 1e-9))
        return scores, [set(index.encode(d.labels)) for d in docs]

    # label sets as the neural models make them: thresholds by the same policy, chosen on
    # the validation split
    cfg = TrainConfig.of(**{k: v for k, v in entry.options.items() if k in THRESHOLD_KEYS})
    metrics = tuned_metrics(
        *scored(getattr(ds, split)), lambda: scored(ds.valid), cfg.threshold_policy,
        hierarchy=ds.hierarchy, names=index.labels, fixed=cfg.threshold,
        min_support=cfg.threshold_min_support, closure=cfg.label_closure,
    )  # fmt: skip
    return metrics, {"seconds": round(time.time() - t0, 2), "docs_per_s": round(timed[0], 1)}


#: Options of the label sets, which baselines take too (``--option threshold_policy=global``).
THRESHOLD_KEYS = ("threshold", "threshold_policy", "threshold_min_support", "label_closure")


def run_entries(
    entries: Sequence[Entry],
    data: Path,
    out: Path,
    seeds: int = 1,
    epochs: int | None = None,
    minutes: float | None = None,
    split: str = "test",
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train and evaluate every entry for each seed; returns one result per (entry, seed).

    Each result is appended to ``out/progress.jsonl`` as it comes (a log of every attempt);
    :func:`write_benchmark` and :func:`write_ablation` write ``results.jsonl``, the table's."""
    if seeds < 1:
        raise HyperIMError("--seeds must be >= 1")
    if split not in ("valid", "test"):
        raise HyperIMError(f"--split must be valid or test, not {split!r}")
    budget: dict[str, Any] = {}
    if epochs is not None:
        budget["epochs"] = epochs
    if minutes is not None:
        budget["max_minutes"] = minutes
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    results = []
    jobs = [(e, s) for e in entries for s in range(seeds)]
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(
        TextColumn("[bold]benchmark"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[now]}"),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        task = bar.add_task("benchmark", total=len(jobs), now="")
        for entry, seed in jobs:
            run_dir = out / "runs" / entry.key(seed, budget)
            bar.update(task, now=f"{entry.name} seed {seed}")
            done = run_dir / "result.json"
            if done.exists():
                result = json.loads(done.read_text())
                log(f"{entry.name} seed {seed}: done before ({run_dir.name})")
            else:
                run_dir.mkdir(parents=True, exist_ok=True)
                runner = _run_baseline if entry.model in BASELINES else _run_neural
                result = {"name": entry.name, "model": entry.model, "seed": seed, **entry.group}
                result["options"] = entry.options
                try:
                    metrics, extra = runner(entry, data, run_dir, seed, budget, split)
                    result |= {"split": split, "metrics": metrics, **extra}
                    atomic_write_text(done, json.dumps(result) + "\n")
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # reported in the row; the other entries go on
                    message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
                    if not isinstance(e, HyperIMError):
                        message = f"{type(e).__name__}: {message}"
                        (run_dir / "error.txt").write_text(traceback.format_exc())
                    result["error"] = message
                    log(f"{entry.name} seed {seed}: failed: {message}")
                with open(out / "progress.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(result) + "\n")
            results.append(result)
            bar.advance(task)
    return results


# ------------------------------------------------------------------------------ tables
def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def _cell(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    mean, std = _mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per entry name: ``{metric: [values over seeds]}``, ``seconds``, ``errors``."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(
            r["name"],
            {
                "metrics": {k: [] for k in METRIC_KEYS},
                "seconds": [],
                "step_seconds": [],
                "docs_per_s": [],
                "errors": [],
            },
        )
        row.update({k: r[k] for k in ("variant", "dim") if k in r})
        if "error" in r:
            row["errors"].append(r["error"])
            continue
        for k in METRIC_KEYS:
            row["metrics"][k].append(r["metrics"][k])
        row["seconds"].append(r.get("seconds", math.nan))
        for k in ("step_seconds", "docs_per_s"):  # absent in results of older versions
            if r.get(k) is not None:
                row[k].append(r[k])
    return rows


def table2_markdown(results: Sequence[dict[str, Any]], title: str = "") -> str:
    """The layout of the paper's Table 2 (P@k, nDCG@k) plus micro/macro-F1, wall time (training
    and evaluation), seconds per training step (none for a fitted model) and inference speed
    (documents per second while scoring the evaluated split: every label's probability)."""
    rows = summarise(results)
    head = ["model", *METRIC_KEYS, "wall time (s)", "s / step", "inference docs/s", "seeds"]
    lines = [f"## {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows.items():
        n = len(row["seconds"])
        if row["errors"] and not n:
            cells = [f"failed: {row['errors'][0]}", *[""] * (len(head) - 2)]
        else:
            cells = [_cell(row["metrics"][k]) for k in METRIC_KEYS]
            cells += [
                _cell(row["seconds"], 0),
                _cell(row["step_seconds"], 3),
                _cell(row["docs_per_s"], 0),
                str(n),
            ]
            if row["errors"]:
                cells[-1] += f" ({len(row['errors'])} failed)"
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"


def ablation_markdown(results: Sequence[dict[str, Any]], keys=("nDCG@3", "nDCG@5")) -> str:
    """One table per metric: a row per variant, a column per dimension (paper Fig. 3)."""
    rows = summarise(results)
    dims = sorted({r["dim"] for r in rows.values() if "dim" in r})
    variants = [v for v in VARIANTS if any(r.get("variant") == v for r in rows.values())]
    by = {(r["variant"], r["dim"]): r for r in rows.values() if "variant" in r}
    out = []
    for key in keys:
        out += [f"### {key}", "", "| variant | " + " | ".join(f"{d}-D" for d in dims) + " |"]
        out.append("|" + "---|" * (len(dims) + 1))
        for v in variants:
            cells = []
            for d in dims:
                r = by.get((v, d))
                if r is None:
                    cells.append("-")
                elif not r["metrics"][key]:
                    cells.append("failed")
                else:
                    cells.append(_cell(r["metrics"][key]))
            out.append(f"| {v} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def ablation_plot(results: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """nDCG@3 and nDCG@5 by embedding dimension, one line per variant (the style of Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarise(results)
    styles = {
        "E-rand": ("tab:blue", "o", "--"),
        "E-hier": ("tab:cyan", "s", "--"),
        "H-rand": ("tab:red", "^", "-"),
        "H-hier": ("tab:orange", "D", "-"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    for ax, key in zip(axes, ("nDCG@3", "nDCG@5"), strict=True):
        for variant, (color, marker, line) in styles.items():
            pts = sorted(
                (r["dim"], *_mean_std(r["metrics"][key]))
                for r in rows.values()
                if r.get("variant") == variant and r["metrics"][key]
            )
            if not pts:
                continue
            x, y, err = (np.array(v) for v in zip(*pts, strict=True))
            ax.errorbar(
                x,
                y,
                yerr=err if err.any() else None,
                color=color,
                marker=marker,
                linestyle=line,
                label=variant,
                capsize=3,
            )
        ax.set_xscale("log")
        dims = sorted({r["dim"] for r in rows.values() if "dim" in r})
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_xlabel("embedding dimension")
        ax.set_ylabel(f"{key} (%)")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _write_jsonl(results: Sequence[dict[str, Any]], out: Path) -> None:
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in results))


def write_benchmark(results: Sequence[dict[str, Any]], out: Path, title: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(results, out)
    path = out / "results.md"
    atomic_write_text(path, table2_markdown(results, title))
    return path


def write_ablation(results: Sequence[dict[str, Any]], out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(results, out)
    md = out / "results.md"
    atomic_write_text(md, f"## {title}\n\n" + ablation_markdown(results))
    png = ablation_plot(results, out / "ablation.png", title)
    return [md, png]
