"""The one Trainer: Riemannian Adam for hyperbolic parameters, Adam for Euclidean ones, early
stopping on a validation metric, atomic checkpoints, ``--resume`` (also after ``kill -9``),
a progress bar and a JSON Lines log.

A run folder holds::

    run.json         options and the dataset path (what --resume reads)
    vocab.json, labels.json
    checkpoint.pt    latest state: model, optimisers, RNG, epoch/step, history (atomic)
    log.jsonl        one line per epoch: loss, validation metrics, time
    model/           the best model so far, in save_pretrained format
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geoopt
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hyperim.api import DTYPES, HyperIM, resolve_device
from hyperim.config import TrainConfig
from hyperim.data import Dataset, LabelIndex, Vocabulary, bundled_dataset_path, load_dataset
from hyperim.data.batching import (
    EncodedSplit,
    encode_documents,
    epoch_batches,
    label_targets,
    pad_tokens,
)
from hyperim.distributed import DistContext, init_distributed, shutdown_distributed
from hyperim.errors import HyperIMError
from hyperim.metrics import evaluate_scores
from hyperim.models import HyperIMModel, ModelConfig
from hyperim.optim import RiemannianAdam

console = Console(stderr=True)


def atomic_write_bytes(path: Path, write) -> None:
    """Write a file via a temporary sibling, fsync and rename: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


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
    for w in ds.report.warnings():
        console.print(f"[yellow]warning:[/] {w}")
    if run_dir is not None and (run_dir / "vocab.json").exists():
        vocab = Vocabulary.load(run_dir / "vocab.json")
        labels = LabelIndex.load(run_dir / "labels.json")
    else:
        vocab = Vocabulary.build((d.tokens for d in ds.train), cfg.min_count, cfg.max_vocab)
        labels = LabelIndex(ds.labels)
    return Prepared(
        ds,
        vocab,
        labels,
        encode_documents(ds.train, vocab, labels, cfg.max_len),
        encode_documents(ds.valid, vocab, labels, cfg.max_len),
    )


def sampling_logit_offset(negatives: int, n_labels: int, mean_positives: float) -> float:
    """Logit correction for training on sampled negatives (Eq. 7's ``L-``).

    A document's non-label enters the loss with probability ``r = N / (C - |L+|)`` while its
    labels always do, so the minimiser of the sampled loss has logit ``log(p / (r (1 - p)))``:
    the true logit minus ``log r``. Adding ``log r`` at inference restores calibrated
    probabilities (what the 0.5 threshold of micro/macro-F1 assumes); rankings are unchanged.
    """
    if negatives <= 0 or negatives + mean_positives >= n_labels:
        return 0.0
    return math.log(negatives / (n_labels - mean_positives))


@torch.no_grad()
def init_label_bias(model: HyperIMModel, label_lists: list[np.ndarray], offset: float) -> None:
    """Set each label's bias to the logit of its training frequency, minus the sampling offset
    (so that calibrated inference logits start at the prior), and the last prediction layer
    ``W^e`` of Eq. (6) to zero, so that the first logits are exactly the prior and the text
    moves them from there (the zero start of a residual branch)."""
    n = len(label_lists)
    counts = np.bincount(
        np.concatenate(label_lists or [np.zeros(0, np.int64)]), minlength=model.config.n_labels
    )
    prior = (counts + 0.5) / (n + 1.0)  # smoothed: finite for labels never seen in training
    bias = torch.from_numpy(np.log(prior / (1 - prior)) - offset)
    model.label_bias.copy_(bias.to(model.label_bias))
    model.head.w_e.weight.zero_()
    if model.head.w_e.bias is not None:
        model.head.w_e.bias.zero_()


def load_pretrained(
    model: HyperIMModel, cfg: TrainConfig, prep: Prepared, run_dir: Path, quiet: bool = False
) -> None:
    """Start Θ^L and Θ^E from ``cfg.label_init`` / ``cfg.word_init`` (H-hier), pre-training
    into ``run_dir/pretrained`` when no cached table is there yet."""
    from hyperim.pretrain.init import label_points, word_points

    def log(message: str) -> None:
        if not quiet:
            console.print(message)

    shape = dict(
        n_balls=cfg.n_balls,
        ball_dim=cfg.ball_dim,
        aggregate=cfg.aggregate,
        seed=cfg.seed,
        cache=run_dir / "pretrained",
        log=log,
    )
    found = label_points(cfg.label_init, prep.dataset.hierarchy, prep.labels.labels, **shape)
    if found is not None:
        _copy_rows(model.labels, *found)
    found = word_points(
        cfg.word_init,
        [d.tokens for d in prep.dataset.train],
        prep.vocab,
        wordnet_dir=cfg.wordnet_dir,
        **shape,
    )
    if found is not None:
        _copy_rows(model.words, *found)


@torch.no_grad()
def _copy_rows(embedding: torch.nn.Module, table: torch.Tensor, found: torch.Tensor) -> None:
    weight = embedding.weight.detach().clone()
    weight[found] = table[found].to(weight)
    embedding.load_points(weight)


def build_model(
    cfg: TrainConfig, vocab_size: int, n_labels: int, logit_offset: float = 0.0
) -> HyperIMModel:
    mcfg = ModelConfig(
        vocab_size=vocab_size,
        n_labels=n_labels,
        max_len=cfg.max_len,
        n_balls=cfg.n_balls,
        ball_dim=cfg.ball_dim,
        phi=cfg.phi,
        gru_init=cfg.gru_init,
        head_activation=cfg.head_activation,
        aggregate=cfg.aggregate,
        word_init_scale=cfg.word_init_scale,
        label_init_scale=cfg.label_init_scale,
        logit_offset=logit_offset,
        label_bias=cfg.label_bias,
        head_pool=cfg.head_pool,
    )
    return HyperIMModel(mcfg).to(DTYPES[cfg.dtype])


def make_optimizers(
    model: torch.nn.Module,
    lr: float,
    hyper_lr: float | None = None,
    word_lr: float | None = None,
    head_lr: float | None = None,
) -> list[torch.optim.Optimizer]:
    """Riemannian Adam for ``ManifoldParameter``s, Adam for the Euclidean rest at ``lr``.

    Riemannian Adam is :class:`hyperim.optim.RiemannianAdam`: geoopt's, applied to blocks of
    rows, so the word table's update needs little transient memory.

    Within Adam the prediction layers of Eq. (6) form their own group at ``head_lr`` (default
    ``lr``): their inputs, the scores ``s_i``, are all about equally negative, so one Adam step
    moves every weight of ``W^f`` the same way and shifts every logit by about
    ``lr · |s| · T``.

    Within Riemannian Adam the word embeddings Θ^E form their own group at ``word_lr``
    (default ``hyper_lr``); Θ^L and the GRU biases use ``hyper_lr`` (default ``lr``). Each word
    only gets a gradient in the batches that contain it, so at the paper's lr 1e-3 most word
    vectors barely leave their initial position; a larger ``word_lr`` lets them learn.
    """
    hyper_lr = hyper_lr or lr
    word_lr = word_lr or hyper_lr
    words = getattr(getattr(model, "words", None), "weight", None)
    hyper = [
        p for p in model.parameters() if isinstance(p, geoopt.ManifoldParameter) and p is not words
    ]
    head = getattr(model, "head", None)
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, torch.nn.Module) else set()
    eucl = [p for p in model.parameters() if not isinstance(p, geoopt.ManifoldParameter)]
    groups = [{"params": hyper, "lr": hyper_lr}]
    if isinstance(words, geoopt.ManifoldParameter):
        groups.insert(0, {"params": [words], "lr": word_lr})
    eucl_groups = [{"params": [p for p in eucl if id(p) not in head_ids], "lr": lr}]
    if head_ids:
        eucl_groups.append({"params": [p for p in eucl if id(p) in head_ids], "lr": head_lr or lr})
    return [
        RiemannianAdam(groups, lr=hyper_lr),
        torch.optim.Adam(eucl_groups, lr=lr),
    ]


def optimisation_step(
    model: HyperIMModel,
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
    model: HyperIMModel,
    vocab: Vocabulary,
    labels: LabelIndex,
    split: EncodedSplit,
    threshold: float,
    batch_size: int,
) -> dict[str, float]:
    """Metrics (Eq. 8 and F1) of ``model`` on an encoded split."""
    was_training = model.training
    scores = HyperIM(model, vocab, labels, threshold).predict_proba_encoded(
        split.tokens, batch_size
    )
    model.train(was_training)
    return evaluate_scores(scores, [set(x.tolist()) for x in split.labels], threshold=threshold)


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


def train(
    data_dir: Path | None,
    run_dir: Path,
    cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train HyperIM into ``run_dir``; returns a summary (best epoch and its metric).

    With ``resume``, options and data come from ``run_dir/run.json`` (``cfg`` is ignored) and
    training continues from ``checkpoint.pt``; ``epochs`` may raise the epoch budget.
    """
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if resume:
        if not (run_dir / "run.json").exists():
            raise HyperIMError(
                f"{run_dir}: nothing to resume (no run.json); start without --resume"
            )
        saved = json.loads((run_dir / "run.json").read_text())
        cfg = TrainConfig.from_dict(saved["config"])
        data_dir = Path(saved["data"])
    else:
        if ckpt_path.exists() or (run_dir / "run.json").exists():
            raise HyperIMError(f"{run_dir}: already holds a run; use --resume or another --out")
        data_dir = Path(data_dir) if data_dir else bundled_dataset_path()
    cfg = (cfg or TrainConfig()).updated(epochs=epochs).validate()
    ctx, device_name = init_distributed(cfg.device)
    try:
        ctx.barrier()  # every rank has checked run_dir before rank 0 writes into it
        return _train(data_dir, run_dir, cfg, resume, progress, ctx, device_name)
    finally:
        shutdown_distributed(ctx)


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
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    prep = prepare(data_dir, cfg, run_dir if resume else None)
    if not resume and ctx.is_main:
        prep.vocab.save(run_dir / "vocab.json")
        prep.labels.save(run_dir / "labels.json")
        atomic_write_text(
            run_dir / "run.json",
            json.dumps({"config": cfg.to_dict(), "data": str(Path(data_dir).resolve())}, indent=2)
            + "\n",
        )
    device = resolve_device(device_name)
    mean_positives = float(np.mean([len(x) for x in prep.train.labels]))
    offset = sampling_logit_offset(cfg.negatives, len(prep.labels), mean_positives)
    model = build_model(cfg, len(prep.vocab), len(prep.labels), offset)
    if model.label_bias is not None:  # start from the label priors (what frequency ranking knows)
        init_label_bias(model, prep.train.labels, offset)
    if not (resume and ckpt_path.exists()):
        if ctx.is_main:  # rank 0 pre-trains into the cache; the others then read it
            load_pretrained(model, cfg, prep, run_dir)
        ctx.barrier()
        if not ctx.is_main:
            load_pretrained(model, cfg, prep, run_dir, quiet=True)
    model.to(device)
    net: torch.nn.Module = model
    if ctx.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizers = make_optimizers(model, cfg.lr, cfg.hyper_lr, cfg.word_lr, cfg.head_lr)
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
        ck = torch.load(ckpt_path, weights_only=False, map_location=device)
        model.load_state_dict(ck["model"])
        for opt, sd in zip(optimizers, ck["optimizers"], strict=True):
            opt.load_state_dict(sd)
        gen.set_state(ck["generator"].cpu())
        state = ck["state"]
        if ctx.is_main:
            console.print(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step {state['step']}")

    def checkpoint() -> None:
        if not ctx.is_main:
            return
        payload = {
            "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "generator": gen.get_state(),
            "state": state,
        }
        atomic_write_bytes(ckpt_path, lambda f: torch.save(payload, f))

    meta = {"data": str(Path(data_dir).resolve()), "train_config": cfg.to_dict()}
    n_labels = len(prep.labels)
    lengths = prep.train.lengths
    say = console.print if ctx.is_main else (lambda *args, **kwargs: None)
    show = (sys.stderr.isatty() if progress is None else progress) and ctx.is_main
    model.train()
    while not state["done"] and state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        batches = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        if cfg.max_steps_per_epoch:
            batches = batches[: cfg.max_steps_per_epoch]
        t0, docs, own_docs = time.time(), 0, 0
        with _progress(not show) as bar:
            task = bar.add_task(
                f"epoch {epoch + 1}/{cfg.epochs}",
                total=len(batches),
                completed=state["step"],
                loss=0.0,
                rate=0.0,
            )
            for step in range(state["step"], len(batches)):
                idx = batches[step]
                if len(idx) < ctx.world_size:  # too small to share out: skipped by every rank
                    state["step"] = step + 1
                    continue
                labels, targets, tmask = label_targets(
                    [prep.train.labels[i] for i in idx], n_labels, cfg.negatives, gen
                )
                rows = ctx.rows(len(idx))  # this rank's share of the global batch
                tokens, mask = pad_tokens([prep.train.tokens[i] for i in idx[rows]])
                labels, targets, tmask = (
                    None if x is None else x[rows].to(device) for x in (labels, targets, tmask)
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
                own_docs += len(tokens)
                state["step"] = step + 1
                state["loss_sum"] += loss.item()
                state["loss_n"] += 1
                bar.update(
                    task,
                    advance=1,
                    loss=state["loss_sum"] / state["loss_n"],
                    rate=docs / max(time.time() - t0, 1e-9),
                )
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    checkpoint()
        record = None
        if ctx.is_main:  # rank 0 evaluates; every rank takes its record (same early stopping)
            metrics = evaluate_split(
                model, prep.vocab, prep.labels, prep.valid, cfg.threshold, cfg.eval_batch_size
            )
            record = {
                "epoch": epoch + 1,
                "train_loss": state["loss_sum"] / max(1, state["loss_n"]),
                "seconds": round(time.time() - t0, 2),
                "skipped_steps": state["skipped_steps"],
                "processes": ctx.world_size,
                "documents": own_docs,  # trained on by this process (rank 0) in this epoch
                "valid": metrics,
            }
        record = ctx.broadcast(record)
        metrics = record["valid"]
        state["history"].append(record)
        score = metrics[cfg.metric]
        improved = state["best"] is None or score > state["best"]
        if improved:
            state.update(best=score, best_epoch=epoch + 1, bad_epochs=0)
        if improved and ctx.is_main:
            HyperIM(
                model,
                prep.vocab,
                prep.labels,
                cfg.threshold,
                {**meta, "epoch": epoch + 1, "valid": metrics},
            ).save_pretrained(run_dir / "model")
            model.train()
        if not improved:
            state["bad_epochs"] += 1
        say(
            f"epoch {epoch + 1}: loss {record['train_loss']:.4f}, valid "
            + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
            + f" ({record['seconds']:.0f}s){' *' if improved else ''}"
        )
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_n=0, skipped_steps=0)
        if state["bad_epochs"] >= cfg.patience:
            say(f"early stopping: no {cfg.metric} gain in {cfg.patience} epochs")
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
        "model": str(run_dir / "model"),
    }
    return summary
