"""The one trainer, for every model family (:mod:`hyperim.models.registry`): the model's own
optimisers (``configure_optimizers``: Riemannian Adam for hyperbolic parameters, Adam for
Euclidean ones) and start (``init_from_data``), early stopping on a validation metric, an
optional time budget, atomic checkpoints, ``--resume`` (also after ``kill -9``), a progress
bar and a JSON Lines log. Nothing here knows a family's insides.

A run folder holds::

    run.json         options and the dataset path (what --resume reads)
    vocab.json, labels.json
    checkpoint.pt    latest state: model, optimisers, RNG, epoch/step, history (atomic)
    log.jsonl        one line per epoch: loss, validation metrics, time
    model/           the best model so far, in save_pretrained format
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hyperim import interrupts
from hyperim.atomic import atomic_write_bytes, atomic_write_text, check_output
from hyperim.config import TrainConfig
from hyperim.data import Dataset, LabelIndex, Vocabulary, bundled_dataset_path, load_dataset
from hyperim.data.batching import (
    EncodedSplit,
    encode_documents,
    epoch_batches,
    label_targets,
    pad_tokens,
)
from hyperim.device import resolve_device
from hyperim.distributed import DistContext, init_distributed, shutdown_distributed
from hyperim.errors import HyperIMError
from hyperim.geometry.pairwise import KERNELS, compile_if_worth_it
from hyperim.inference import proba_encoded
from hyperim.metrics import evaluate_scores, f1_scores
from hyperim.models.base import TextModel, TrainingData, sampling_logit_offset
from hyperim.models.bundle import build_model as build_family_model
from hyperim.models.bundle import save_bundle
from hyperim.models.registry import get_family
from hyperim.optim import lr_factor, scale_learning_rates
from hyperim.thresholds import LabelThresholds, hierarchy_thresholds

__all__ = ["TrainConfig", "build_model", "prepare", "sampling_logit_offset", "train"]

# soft_wrap: a log file gets whole lines, not lines hard-wrapped at 80 columns
console = Console(stderr=True, soft_wrap=True)


@dataclass
class Prepared:
    """Everything training needs, derived from the dataset and the options."""

    dataset: Dataset
    vocab: Vocabulary
    labels: LabelIndex
    train: EncodedSplit
    valid: EncodedSplit


def prepare(data_dir: Path, cfg: TrainConfig, run_dir: Path | None = None) -> Prepared:
    """Load the dataset; build (or, on resume, reload) the vocabulary and label index."""
    ds = load_dataset(data_dir, skip_invalid=cfg.skip_invalid)
    if not ds.valid:
        raise HyperIMError(
            f"{data_dir}: the validation split has no documents; training needs it to pick "
            "the best epoch"
        )
    # no labels to learn or none to validate on: every metric would be 0, every epoch alike
    if not any(d.labels for d in ds.train):
        raise HyperIMError(f"{data_dir}: no training document has a label; nothing to learn")
    if not any(d.labels for d in ds.valid):
        raise HyperIMError(
            f"{data_dir}: no validation document has a label; the best epoch cannot be chosen"
        )
    for w in ds.report.warnings():
        console.print(f"[yellow]warning:[/] {w}")
    if run_dir is not None and (run_dir / "vocab.json").exists():
        vocab = Vocabulary.load(run_dir / "vocab.json")
        labels = LabelIndex.load(run_dir / "labels.json")
    else:
        vocab = Vocabulary.build((d.tokens for d in ds.train), cfg.min_count, cfg.max_vocab)
        # a pre-trained table's words beyond the training split's (e.g. glove6b's)
        family = get_family(cfg.model).model_class
        vocab = vocab.extended(family.extra_vocabulary(cfg.model_config()))
        labels = LabelIndex(ds.labels)
    return Prepared(
        ds,
        vocab,
        labels,
        encode_documents(ds.train, vocab, labels, cfg.max_len),
        encode_documents(ds.valid, vocab, labels, cfg.max_len),
    )


def training_data(prep: Prepared, cfg: TrainConfig, run_dir: Path, quiet: bool = False):
    """What :meth:`TextModel.init_from_data` reads; pre-trained tables go to
    ``run_dir/pretrained``."""

    def log(message: str) -> None:
        if not quiet:
            console.print(message)

    return TrainingData(
        documents=[d.tokens for d in prep.dataset.train],
        label_lists=prep.train.labels,
        vocab=prep.vocab,
        labels=prep.labels,
        hierarchy=prep.dataset.hierarchy,
        seed=cfg.seed,
        cache=run_dir / "pretrained",
        log=log,
        token_ids=prep.train.tokens,
    )


def build_model(
    cfg: TrainConfig,
    vocab_size: int,
    n_labels: int,
    logit_offset: float = 0.0,
    data: TrainingData | None = None,
) -> TextModel:
    """A fresh model of ``cfg.model`` with ``cfg.model_options`` and the data's sizes (and,
    given ``data``, the sizes the family reads from it: :meth:`TextModel.config_for_data`)."""
    mcfg = cfg.model_config().with_data(
        vocab_size=vocab_size, n_labels=n_labels, max_len=cfg.max_len, logit_offset=logit_offset
    )
    if data is not None:
        mcfg = get_family(cfg.model).model_class.config_for_data(mcfg, data)
    return build_family_model(cfg.model, mcfg.validate(), cfg.dtype)


def optimisation_step(
    model: torch.nn.Module,
    optimizers: list[torch.optim.Optimizer],
    tokens: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor | None,
    targets: torch.Tensor,
    target_mask: torch.Tensor | None = None,
    *,
    loss_scale: float = 1.0,
    ctx: DistContext | None = None,
) -> torch.Tensor:
    """One step of Eq. (7): forward, backward, Riemannian Adam + Adam updates; returns the loss.

    A step whose loss or gradients are not finite changes nothing (the batch is skipped) and
    returns a NaN loss, so the caller can count it. Under DDP (``ctx``) the decision is the
    same on every rank, ``model`` is the DDP wrapper, ``loss_scale`` makes DDP's gradient
    average equal the global batch's gradient, and the returned loss is the global batch's.
    """
    ctx = ctx or DistContext()
    _, loss = model(tokens, mask, labels, targets, target_mask)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    nan = torch.full_like(loss.detach(), float("nan"))
    if not ctx.all_true(bool(torch.isfinite(loss)), loss.device):
        return nan
    scaled = loss * loss_scale
    scaled.backward()
    # DDP has averaged the gradients, so every rank sees the same ones and decides alike
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not all(bool(torch.isfinite(g).all()) for g in grads):
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        return nan
    for opt in optimizers:
        opt.step()
    return ctx.sum(scaled.detach()) / ctx.world_size


def evaluate_split(
    model: TextModel, split: EncodedSplit, threshold: float, batch_size: int
) -> tuple[dict[str, float], np.ndarray, list[set[int]]]:
    """Metrics (Eq. 8 and F1 at ``threshold``) of ``model`` on an encoded split, with the
    scores and gold label sets they came from."""
    was_training = model.training
    model.eval()
    scores = proba_encoded(model, split.tokens, batch_size)
    model.train(was_training)
    truth = [set(x.tolist()) for x in split.labels]
    return evaluate_scores(scores, truth, threshold=threshold), scores, truth


def stopping_metrics(
    metrics: dict[str, float],
    thresholds: LabelThresholds | None,
    scores: np.ndarray,
    truth: list[set[int]],
) -> dict[str, float]:
    """F1 of the label sets of ``thresholds`` on the split they were chosen on
    (``micro_f1_tuned``, ``macro_f1_tuned``: optimistic, for choosing an epoch, not for
    reporting), and ``blend`` = the mean of nDCG@5 and the label sets' macro-F1: an
    early-stopping metric that does not leave macro-F1 to chance."""
    out: dict[str, float] = {}
    macro = metrics["macro_f1"]
    if thresholds is not None:
        f1 = f1_scores(thresholds.label_sets(scores), truth, scores.shape[1])
        out = {"micro_f1_tuned": f1["micro_f1"], "macro_f1_tuned": f1["macro_f1"]}
        macro = f1["macro_f1"]
    out["blend"] = (metrics["nDCG@5"] + macro) / 2.0
    return out


def validation_thresholds(
    cfg: TrainConfig, prep: Prepared, scores: np.ndarray, truth: list[set[int]]
) -> LabelThresholds | None:
    """The kept model's label thresholds by ``cfg.threshold_policy`` from its validation
    scores (None for the fixed ``threshold`` without closure: nothing to save)."""
    return hierarchy_thresholds(
        scores,
        truth,
        cfg.threshold_policy,
        hierarchy=prep.dataset.hierarchy,
        names=prep.labels.labels,
        fixed=cfg.threshold,
        min_support=cfg.threshold_min_support,
        closure=cfg.label_closure,
    )


def _progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[rate]:.0f} docs/s"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=True,
    )


#: Options a resumed run may change: where or when it stops, and where it runs. The rest
#: (``--lr``, the model's shape, ...) would make a different run; ``--resume`` refuses them.
RESUMABLE = (
    "epochs", "patience", "max_minutes", "device", "eval_batch_size", "checkpoint_every",
    "threshold_policy", "threshold_min_support", "label_closure",
)  # fmt: skip

#: Training options added since runs began to record their options, at the value that runs
#: without them had: resuming such a run keeps doing what it did.
RUN_LEGACY_DEFAULTS = {
    "lazy_word_updates": False,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "weight_decay": 0.0,
}


def recorded_config(saved: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The options a run recorded in ``run.json``; an option it did not record (it started
    under an earlier version) has the value it had then (:data:`RUN_LEGACY_DEFAULTS`, and
    the model family's ``RECORDED_DEFAULTS``)."""
    config = {**RUN_LEGACY_DEFAULTS, **saved["config"]}
    cfg = TrainConfig.from_dict(config, source=str(run_dir / "run.json"))
    family_defaults = get_family(cfg.model).config_class.RECORDED_DEFAULTS
    return replace(cfg, model_options={**family_defaults, **cfg.model_options})


#: What a run folder holds besides checkpoint.pt; a start that fails before its first
#: checkpoint removes them (and the folder, if it made it) so a retry is not blocked.
RUN_FILES = (
    "checkpoint.pt.sha256",
    "run.json",
    "vocab.json",
    "labels.json",
    "log.jsonl",
    "model",
    "pretrained",
)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically, its SHA-256 recorded in ``path.sha256``.

    The digest file lists the new digest and the previous one, and is written before the
    checkpoint is swapped in: whenever the process dies, the checkpoint on disk matches one
    of the listed digests, and a truncated or altered file matches none."""
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    sums = path.with_name(path.name + ".sha256")
    previous = _listed_digests(sums)[:1]
    atomic_write_text(sums, "".join(f"{d}\n" for d in [digest, *previous]))
    atomic_write_bytes(path, lambda f: f.write(data))


def _listed_digests(sums: Path) -> list[str]:
    try:
        return [line.strip() for line in sums.read_text().splitlines() if line.strip()]
    except (FileNotFoundError, UnicodeDecodeError):
        return []


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a truncated or altered file is
    one line (a checkpoint of an earlier version, without a digest, is read unchecked)."""
    import hashlib
    import io

    data = path.read_bytes()
    sums = path.with_name(path.name + ".sha256")
    listed = _listed_digests(sums)
    if sums.exists() and hashlib.sha256(data).hexdigest() not in listed:
        raise HyperIMError(
            f"{path}: corrupt checkpoint (its SHA-256 does not match {sums.name}; "
            f"{len(data):,} bytes); start a new run with another --out"
        )
    try:
        ck = torch.load(io.BytesIO(data), weights_only=False, map_location=device)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HyperIMError(f"{path}: unreadable checkpoint ({first})") from None
    if not isinstance(ck, dict) or not {"model", "optimizers", "generator", "state"} <= set(ck):
        raise HyperIMError(f"{path}: not a hyperim checkpoint")
    return ck


def read_run(run_dir: Path) -> dict[str, Any]:
    """``run_dir/run.json``: the options and dataset of a run (one line if unreadable)."""
    path = run_dir / "run.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HyperIMError(
            f"{run_dir}: nothing to resume (no run.json); start without --resume"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HyperIMError(f"{path}: corrupt run file ({e}); start a new run") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise HyperIMError(f"{path}: corrupt run file (no config table); start a new run")
    if not isinstance(saved.get("data"), str):
        raise HyperIMError(f"{path}: corrupt run file (no dataset path); start a new run")
    return saved


def _remove_failed_start(run_dir: Path, created: bool) -> None:
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)


def train(
    data_dir: Path | None,
    run_dir: Path,
    cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Train ``cfg.model`` (any registered family) into ``run_dir``; returns a summary (best
    epoch and its metric).

    With ``resume``, options come from ``run_dir/run.json`` (``cfg`` must be None) and training
    continues from ``checkpoint.pt``; ``epochs`` and the :data:`RESUMABLE` options in
    ``changes`` may change; ``data_dir`` may point at the dataset's new place (its files must
    be the ones the run started with). A start that fails (or is interrupted) before its first
    checkpoint leaves nothing behind; an interrupted run writes a checkpoint and says how to
    resume it.
    """
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    check_output(run_dir, "--out", folder=True)
    if resume:
        if cfg is not None:
            raise HyperIMError("--resume takes the run's own options; give no config")
        refused = sorted(set(changes) - set(RESUMABLE))
        if refused:

            def flag(name: str) -> str:
                return "--" + name.replace("_", "-")

            raise HyperIMError(
                f"--resume cannot change {', '.join(map(flag, refused))} (it would be another "
                f"run); it can change {', '.join(map(flag, ('data', *RESUMABLE)))}"
            )
        saved = read_run(run_dir)
        cfg = recorded_config(saved, run_dir)
        data_dir = _resumed_data(saved, data_dir, run_dir)
        cfg = cfg.updated(**changes)
    else:
        if changes:
            cfg = (cfg or TrainConfig()).updated(**changes)
        if ckpt_path.exists():
            raise HyperIMError(f"{run_dir}: already holds a run; use --resume or another --out")
        if (run_dir / "run.json").exists():  # a start killed before its first step: no state
            console.print(f"{run_dir}: replacing a start that never reached its first step")
            _remove_failed_start(run_dir, created=False)
        data_dir = Path(data_dir) if data_dir else bundled_dataset_path()
    cfg = (cfg or TrainConfig()).updated(epochs=epochs).validate()
    ctx, device_name = init_distributed(cfg.device)
    resolve_device(device_name)  # an unavailable device fails here, before anything is written
    created = not run_dir.exists()
    try:
        ctx.barrier()  # every rank has checked run_dir before rank 0 writes into it
        with interrupts.deferred():
            return _train(data_dir, run_dir, cfg, resume, progress, ctx, device_name)
    except BaseException as e:
        if not resume and ctx.is_main and not ckpt_path.exists():
            _remove_failed_start(run_dir, created)
            if isinstance(e, interrupts.Interrupted) and not e.explained:
                raise interrupts.Interrupted(
                    f"interrupted before the first step; nothing was kept in {run_dir}", e.signum
                ) from None
        elif isinstance(e, interrupts.Interrupted) and not e.explained:
            raise interrupts.Interrupted(
                f"interrupted; the last checkpoint is in {ckpt_path}; continue with: "
                f"hyperim train --out {run_dir} --resume",
                e.signum,
            ) from None
        raise
    finally:
        shutdown_distributed(ctx)


def numerics(ctx: DistContext) -> dict[str, Any]:
    """Besides options and data, what a bit-for-bit repeat of a run depends on: the same
    torch, threads per process, processes and kernels (compiled or eager) give the same
    numbers; other ones change the last bits of sums, and the runs drift apart."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processes": ctx.world_size,
        "compiled": KERNELS.enabled,
    }


def _warn_if_numerics_differ(run_dir: Path, now: dict[str, Any]) -> None:
    then = read_run(run_dir).get("numerics")
    if not then or then == now:
        return
    changed = ", ".join(f"{k} {then.get(k)} -> {v}" for k, v in now.items() if then.get(k) != v)
    console.print(
        f"note: {run_dir} started with other numerics ({changed}): the resumed run is correct "
        "but will not repeat the uninterrupted one bit for bit"
    )


def dataset_fingerprint(data_dir: Path) -> dict[str, int]:
    """Sizes of the dataset's files (what a moved dataset must still match on resume)."""
    from hyperim.data.reader import find_dataset_files

    files = find_dataset_files(data_dir)
    paths = [files.train, files.valid, files.test, files.hierarchy]
    return {p.name: p.stat().st_size for p in paths if p is not None and p.exists()}


def _resumed_data(saved: dict[str, Any], data_dir: Path | None, run_dir: Path) -> Path:
    """The dataset of a resumed run: its recorded place or ``data_dir``; either must hold the
    files the run started with (same names and sizes, when the run recorded them)."""
    given = data_dir is not None
    data_dir = Path(data_dir) if given else Path(saved["data"])
    if not given and not data_dir.exists():
        raise HyperIMError(
            f"{run_dir}: its dataset {data_dir} is gone; give its new place with --data"
        )
    recorded = saved.get("fingerprint")
    if recorded is not None and dataset_fingerprint(data_dir) != recorded:
        where = f"--data {data_dir}" if given else f"the run's dataset {data_dir}"
        raise HyperIMError(
            f"{where}: not the files this run started with (file sizes {recorded}); "
            "resume needs the same dataset"
        )
    return data_dir


def _train(
    data_dir: Path,
    run_dir: Path,
    cfg: TrainConfig,
    resume: bool,
    progress: bool | None,
    ctx: DistContext,
    device_name: str,
) -> dict[str, Any]:
    ckpt_path = run_dir / "checkpoint.pt"
    compile_if_worth_it()  # training: the compiled kernels pay for their warm-up
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    prep = prepare(data_dir, cfg, run_dir if resume else None)
    if resume and ctx.is_main:
        _warn_if_numerics_differ(run_dir, numerics(ctx))
    if not resume and ctx.is_main:
        prep.vocab.save(run_dir / "vocab.json")
        prep.labels.save(run_dir / "labels.json")
        run = {
            "config": cfg.explicit().to_dict(),
            "data": str(Path(data_dir).resolve()),
            "fingerprint": dataset_fingerprint(Path(data_dir)),
            "numerics": numerics(ctx),
        }
        atomic_write_text(run_dir / "run.json", json.dumps(run, indent=2) + "\n")
    device = resolve_device(device_name)
    mean_positives = float(np.mean([len(x) for x in prep.train.labels]))
    # a family whose loss needs every label's logit is given all of them (no sampling)
    family = get_family(cfg.model).model_class
    negatives = 0 if family.scores_every_label else cfg.negatives
    if not family.trained_by_gradients and ctx.enabled:
        raise HyperIMError(
            f"model {cfg.model} is fitted in closed form by one process; run it without torchrun"
        )
    offset = sampling_logit_offset(negatives, len(prep.labels), mean_positives)
    sizes = training_data(prep, cfg, run_dir, quiet=True)  # what the architecture reads
    model = build_model(cfg, len(prep.vocab), len(prep.labels), offset, sizes)
    if not (resume and ckpt_path.exists()):  # the family's start: priors, pre-trained tables
        if ctx.is_main:  # rank 0 pre-trains into the cache; the others then read it
            model.init_from_data(training_data(prep, cfg, run_dir))
        ctx.barrier()
        if not ctx.is_main:
            model.init_from_data(training_data(prep, cfg, run_dir, quiet=True))
    model.to(device)
    net: torch.nn.Module = model
    if ctx.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizers = model.configure_optimizers(cfg) if family.trained_by_gradients else []
    gen = torch.Generator().manual_seed(cfg.seed)
    state = {
        "epoch": 0,
        "step": 0,
        "best": None,
        "best_epoch": None,
        "bad_epochs": 0,
        "history": [],
        "loss_sum": 0.0,
        "loss_n": 0,
        "done": False,
        "bad_steps": 0,  # consecutive non-finite (skipped) steps
        "skipped_steps": 0,  # skipped steps in this epoch
    }
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, device)
        try:
            model.load_state_dict(type(model).upgrade_state_dict(ck["model"]))
            for opt, sd in zip(optimizers, ck["optimizers"], strict=True):
                opt.load_state_dict(sd)
            gen.set_state(ck["generator"].cpu())
            if "torch_rng" in ck:  # dropout draws from torch's own generator
                torch.set_rng_state(ck["torch_rng"].cpu())
            state = ck["state"]
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HyperIMError(
                f"{ckpt_path}: does not match this run's model and options ({first})"
            ) from None
        if ctx.is_main:
            console.print(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step {state['step']}")

    def checkpoint() -> None:
        if not ctx.is_main:
            return
        payload = {
            "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
        }
        save_checkpoint(ckpt_path, payload)

    meta = {"data": str(Path(data_dir).resolve()), "train_config": cfg.to_dict()}
    budget = None if cfg.max_minutes is None else 60.0 * cfg.max_minutes  # training seconds
    n_labels = len(prep.labels)
    lengths = prep.train.lengths
    say = console.print if ctx.is_main else (lambda *args, **kwargs: None)
    show = (sys.stderr.isatty() if progress is None else progress) and ctx.is_main
    model.train()
    while not state["done"] and state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        batches: list[np.ndarray] = []  # a family fitted once (SLEEC) has no steps
        if family.trained_by_gradients:
            batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        if cfg.max_steps_per_epoch:
            batches = batches[: cfg.max_steps_per_epoch]
        t0, docs = time.time(), 0  # docs: this process's pace, since it started or resumed
        if not family.trained_by_gradients:  # fitted once: the fit is its one epoch
            say(f"fitting {cfg.model} on {len(prep.train)} training documents")
            fit_losses = model.fit(training_data(prep, cfg, run_dir))
            state.update(
                loss_sum=fit_losses[-1] if fit_losses else float("nan"),
                loss_n=1,
                fit_losses=fit_losses,
                epoch_documents=len(prep.train),
                done_after_epoch=True,
            )
        log_lines, log_every = not show and ctx.is_main, max(1, len(batches) // 10)
        spent = state.get("train_seconds", 0.0)
        with _progress(not show) as bar:
            task = bar.add_task(
                f"epoch {epoch + 1}/{cfg.epochs}",
                total=len(batches),
                completed=state["step"],
                loss=0.0,
                rate=0.0,
            )
            for step in range(state["step"], len(batches)):
                # a Ctrl-C stops every rank here, between steps, with a checkpoint of the state
                if not ctx.all_true(interrupts.requested() is None, device):
                    checkpoint()
                    interrupts.raise_pending(
                        f"interrupted in epoch {epoch + 1} after step {step}: saved {ckpt_path}; "
                        f"continue with: hyperim train --out {run_dir} --resume"
                    )
                if budget is not None and not ctx.all_true(
                    spent + time.time() - t0 < budget, device
                ):  # out of time: this epoch ends here, evaluated as any other
                    state["out_of_time"] = True
                    break
                idx = batches[step]
                if len(idx) < ctx.world_size:  # too small to share out: skipped by every rank
                    state["step"] = step + 1
                    continue
                labels, targets, tmask = label_targets(
                    [prep.train.labels[i] for i in idx], n_labels, negatives, gen
                )
                rows = ctx.rows(len(idx))  # this rank's share of the global batch
                tokens, mask = pad_tokens([prep.train.tokens[i] for i in idx[rows]])
                labels, targets, tmask = (
                    None if x is None else x[rows].to(device) for x in (labels, targets, tmask)
                )
                if cfg.lr_schedule != "constant" or cfg.warmup_steps:
                    scale_learning_rates(
                        optimizers,
                        lr_factor(
                            epoch * len(batches) + step,
                            cfg.epochs * len(batches),
                            cfg.warmup_steps,
                            cfg.lr_schedule,
                        ),
                    )
                loss = optimisation_step(
                    net,
                    optimizers,
                    tokens.to(device),
                    mask.to(device),
                    labels,
                    targets,
                    tmask,
                    loss_scale=len(tokens) * ctx.world_size / len(idx),
                    ctx=ctx,
                )
                if not torch.isfinite(loss):  # skipped, parameters untouched
                    state["bad_steps"] += 1
                    state["skipped_steps"] += 1
                    if state["bad_steps"] >= cfg.max_bad_steps:
                        raise HyperIMError(
                            f"training diverged at epoch {epoch + 1}, step {step + 1}: "
                            f"{state['bad_steps']} non-finite steps in a row; "
                            "try a smaller --lr or --dtype float64"
                        )
                    state["step"] = step + 1
                    continue
                state["bad_steps"] = 0
                docs += len(idx)  # the global batch: documents/s of the whole job
                state["epoch_documents"] = state.get("epoch_documents", 0) + len(tokens)
                state["step"] = step + 1
                state["loss_sum"] += loss.item()
                state["loss_n"] += 1
                state["train_steps"] = state.get("train_steps", 0) + 1  # over the whole run
                bar.update(
                    task,
                    advance=1,
                    loss=state["loss_sum"] / state["loss_n"],
                    rate=docs / max(time.time() - t0, 1e-9),
                )
                if log_lines and state["step"] % log_every == 0:  # no terminal: a line per 10 %
                    say(
                        f"epoch {epoch + 1}/{cfg.epochs}: step {state['step']}/{len(batches)}, "
                        f"loss {state['loss_sum'] / state['loss_n']:.4f}, "
                        f"{docs / max(time.time() - t0, 1e-9):.0f} docs/s"
                    )
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    checkpoint()
        state["train_seconds"] = spent + time.time() - t0
        record = None
        if ctx.is_main:  # rank 0 evaluates; every rank takes its record (same early stopping)
            metrics, scores, truth = evaluate_split(
                model, prep.valid, cfg.threshold, cfg.eval_batch_size
            )
            thresholds = validation_thresholds(cfg, prep, scores, truth)
            metrics.update(stopping_metrics(metrics, thresholds, scores, truth))
            record = {
                "epoch": epoch + 1,
                "train_loss": state["loss_sum"] / max(1, state["loss_n"]),
                "seconds": round(time.time() - t0, 2),
                "skipped_steps": state["skipped_steps"],
                "processes": ctx.world_size,
                # trained on by rank 0 in this epoch, before and after any resume
                "documents": state.get("epoch_documents", 0),
                "valid": metrics,
            }
            if "fit_losses" in state:  # a closed-form fit: its objective per iteration
                record["fit_losses"] = state["fit_losses"]
        record = ctx.broadcast(record)
        metrics = record["valid"]
        state["history"].append(record)
        score = metrics[cfg.metric]
        improved = state["best"] is None or score > state["best"]
        if improved:
            state.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
        if improved and ctx.is_main:
            save_bundle(
                run_dir / "model",
                model,
                prep.vocab,
                prep.labels,
                cfg.threshold,
                {**meta, "epoch": epoch + 1, "valid": metrics},
                thresholds,
            )
        if not improved:
            state["bad_epochs"] += 1
        say(
            f"epoch {epoch + 1}: loss {record['train_loss']:.4f}, valid "
            + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
            + f" ({record['seconds']:.0f}s){' *' if improved else ''}"
        )
        state.update(
            epoch=epoch + 1, step=0, loss_sum=0.0, loss_n=0, skipped_steps=0, epoch_documents=0
        )
        if state["bad_epochs"] >= cfg.patience:
            say(f"early stopping: no {cfg.metric} gain in {cfg.patience} epochs")
            state["done"] = True
        if state.get("out_of_time"):
            say(f"time budget of {cfg.max_minutes:g} min spent: training stops here")
            state["done"] = True
        if state.get("done_after_epoch"):
            state["done"] = True
        if ctx.is_main:
            atomic_write_text(
                run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in state["history"])
            )
        checkpoint()
    summary = {
        "best_epoch": state["best_epoch"],
        cfg.metric: state["best"],
        "epochs_run": state["epoch"],
        "train_seconds": round(state.get("train_seconds", 0.0), 2),
        "train_steps": state.get("train_steps", 0),  # 0 for a family fitted in closed form
        "out_of_time": bool(state.get("out_of_time", False)),
        "model": str(run_dir / "model"),
    }
    return summary
