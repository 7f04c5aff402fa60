"""Typed options for training; round-trip to JSON and TOML.

Training options are :class:`TrainConfig` fields (a ``[train]`` table in TOML); the model
family is ``model`` (a registry name) and its architecture options are a ``[model]`` table,
validated by that family's config dataclass (:mod:`hyperim.models.registry`)::

    [train]
    model = "hyperim"
    epochs = 8

    [model]
    n_balls = 75
    phi = "tanh"

A flat table written before model families existed (``n_balls = 75`` beside ``epochs = 8``)
still works: keys of the family's config are moved to its ``[model]`` table.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hyperim.errors import DataError, HyperIMError, check_all
from hyperim.models.base import ModelConfig, check_options, type_ok
from hyperim.models.registry import DEFAULT_FAMILY, get_family
from hyperim.optim import SCHEDULES
from hyperim.thresholds import POLICIES

#: Early-stopping metrics: the validation metrics, and ``blend`` (the mean of nDCG@5 and the
#: macro-F1 of the label sets, with thresholds tuned on the validation split when the policy
#: tunes them; hyperim.train.stopping_metrics).
METRICS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "micro_f1", "macro_f1", "blend")


@dataclass
class TrainConfig:
    """Everything ``hyperim train`` needs besides the data; defaults are the reported setup."""

    model: str = DEFAULT_FAMILY  # the model family (hyperim.models.registry)
    model_options: dict[str, Any] = field(default_factory=dict)  # its [model] table
    # data
    max_len: int = 256
    min_count: int = 2
    max_vocab: int | None = 50_000
    skip_invalid: bool = False
    # optimisation (paper: Adam + Riemannian Adam, lr 1e-3)
    epochs: int = 14  # the measured default run improved up to epoch 14 (BENCHMARKS.md)
    batch_size: int = 64
    lr: float = 1e-3
    hyper_lr: float | None = None  # Riemannian Adam's lr (hyperbolic parameters); None = lr
    word_lr: float | None = None  # lr of the word embeddings; None = hyper_lr (or lr)
    head_lr: float | None = None  # Adam's lr for the prediction layers (Eq. 6); None = lr
    # Riemannian Adam updates only the word rows a batch has (hyperim.optim), which saves the
    # dense update of the table (a quarter to a half of a 75x2-D step at 30,000-80,000 words)
    # but learns slower: a word then moves one step per batch it is in instead of drifting on
    # its momentum after it (valid nDCG@5 68.0 after epoch 1 against 71.3; BENCHMARKS.md)
    lazy_word_updates: bool = False
    # the learning rates over the run's steps (hyperim.optim.lr_factor): constant (the
    # paper's), cosine or linear decay to 0 at the end of `epochs`, after a linear warm-up of
    # warmup_steps; weight_decay: decoupled (AdamW) decay of the Euclidean weight matrices
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    negatives: int = 100  # sampled negatives per document (Eq. 7); 0 = every label
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    max_steps_per_epoch: int | None = None
    # a time budget for the training steps (evaluation not counted): the epoch running when it
    # is spent ends there and is evaluated. Unlike epochs, where it stops depends on the
    # machine's speed, so a budgeted run does not repeat to the last digit.
    max_minutes: float | None = None
    # evaluation, early stopping, checkpoints
    metric: str = "nDCG@5"
    patience: int = 2
    threshold: float = 0.5
    # label sets: thresholds chosen on the validation split at the kept epoch
    # (hyperim.thresholds: fixed = `threshold` for every label, global, per-level, per-label,
    # or auto: the one of these with the best micro+macro-F1 in 2-fold cross-validation inside
    # the validation split). Per-label was best for TF-IDF on debtags but cost a weaker
    # HyperIM 13 points of micro-F1 (BENCHMARKS.md): which policy wins depends on the model.
    threshold_policy: str = "auto"
    threshold_min_support: int = 5  # per-label: fewer validation positives take the global one
    label_closure: bool = False  # a predicted label brings its ancestors
    eval_batch_size: int = 128
    checkpoint_every: int = 100
    max_bad_steps: int = 20  # consecutive non-finite steps (skipped) before giving up

    @classmethod
    def of(cls, **options: Any) -> TrainConfig:
        """From keyword options, training and model-family ones alike:
        ``TrainConfig.of(epochs=2, n_balls=10)``."""
        return cls.from_dict(options, source="options")

    # ---------------------------------------------------------------- model options
    def model_config(self) -> ModelConfig:
        """The family's config from ``model_options`` (``max_len`` from these options)."""
        family = get_family(self.model)
        options = {**self.model_options, "max_len": self.max_len}
        return family.config_class.from_dict(options, source=f"model {self.model}")

    def explicit(self) -> TrainConfig:
        """A copy whose ``model_options`` name every option of the family (the defaults too),
        as a run records them: a later version's other defaults then do not change what a
        resumed run is."""
        model = self.model_config().to_dict()
        options = {
            f.name: model[f.name] for f in get_family(self.model).config_class.option_fields()
        }
        return replace(self, model_options=options)

    # ---------------------------------------------------------------- dict / JSON / TOML
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """From a ``TrainConfig.to_dict()`` (or a flat table of an earlier version: keys of
        the family's config move to ``model_options``)."""
        d = dict(d)
        name = d.get("model", DEFAULT_FAMILY)
        if not isinstance(name, str):
            raise HyperIMError(f"{source}: option model must be str, got {name!r}")
        options = d.pop("model_options", {})
        if not isinstance(options, dict):
            raise HyperIMError(f"{source}: option model_options must be a table")
        train_fields = {f.name for f in fields(cls)}
        family_fields = {f.name for f in get_family(name).config_class.option_fields()}
        moved = {k: d.pop(k) for k in list(d) if k not in train_fields and k in family_fields}
        check_options(cls, d, source)
        model_options = {**moved, **options}
        check_options(get_family(name).config_class, model_options, source, "[model]")
        return cls(**d, model_options=model_options)

    def updated(self, **overrides: Any) -> TrainConfig:
        """A copy with the given options changed; ``None`` values are ignored (unset flags).

        A key that is not a training option but an option of the model family goes to
        ``model_options``; ``model=`` changes the family.
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        name = overrides.get("model", self.model)
        train_fields = {f.name for f in fields(self)}
        family_fields = {f.name for f in get_family(name).config_class.option_fields()}
        model_opts = {k: overrides.pop(k) for k in list(overrides) if k not in train_fields}
        unknown = sorted(set(model_opts) - family_fields)
        if unknown:
            raise HyperIMError(f"unknown option(s) {', '.join(unknown)} for model {name}")
        return replace(self, **overrides, model_options={**self.model_options, **model_opts})

    def validate(self) -> TrainConfig:
        """Raise :class:`HyperIMError` for impossible values; return ``self``."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "model_options" and not type_ok(str(f.type), value):
                raise HyperIMError(f"invalid option: {f.name} must be {f.type}, got {value!r}")
        model = self.model_config()
        for obj in (self, model):  # nan and inf pass the comparisons below (or fail late)
            for f in fields(obj):
                value = getattr(obj, f.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise HyperIMError(f"invalid option: {f.name} must be a finite number")
        checks = [
            (0 <= self.seed < 2**32, "seed must be in [0, 2**32)"),
            (self.max_len >= 2, "max_len must be >= 2"),
            (self.min_count >= 1, "min_count must be >= 1"),
            (self.max_vocab is None or self.max_vocab >= 3, "max_vocab must be >= 3"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.hyper_lr is None or self.hyper_lr > 0, "hyper_lr must be > 0"),
            (self.word_lr is None or self.word_lr > 0, "word_lr must be > 0"),
            (self.head_lr is None or self.head_lr > 0, "head_lr must be > 0"),
            (self.negatives >= 0, "negatives must be >= 0"),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {', '.join(SCHEDULES)}"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.dtype in ("float32", "float64"), "dtype must be float32 or float64"),
            (0 < self.threshold < 1, "threshold must be in (0, 1)"),
            (self.metric in METRICS, f"metric must be one of {' '.join(METRICS)}"),
            (
                self.threshold_policy in POLICIES,
                f"threshold_policy must be one of {', '.join(POLICIES)}",
            ),
            (self.threshold_min_support >= 1, "threshold_min_support must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
            (self.max_bad_steps >= 1, "max_bad_steps must be >= 1"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be > 0"),
            (
                self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
                "max_steps_per_epoch must be >= 1",
            ),
        ]
        check_all(checks)
        model.validate()
        return self

    def save_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_toml(cls, path: Path) -> TrainConfig:
        """Read options from a TOML file: a ``[train]`` table and a ``[model]`` table (or one
        flat table, as earlier versions wrote)."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, None, "config file not found") from None
        except IsADirectoryError:
            raise DataError(path, None, "is a folder, not a TOML file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise DataError(path, None, f"invalid TOML: {e}") from None
        model_table = data.pop("model", None) if isinstance(data.get("model"), dict) else None
        train = data.get("train", data)
        if not isinstance(train, dict):
            raise DataError(path, None, "[train] must be a table")
        train = dict(train)
        if model_table is not None:
            if "model_options" in train:
                raise DataError(path, None, "give model options in [model] only")
            train["model_options"] = model_table
        try:
            return cls.from_dict(train, source=str(path))
        except TypeError as e:
            raise DataError(path, None, str(e)) from None
