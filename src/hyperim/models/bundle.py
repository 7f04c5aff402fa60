"""A saved model: ``config.json`` (with ``model_type``), ``model.safetensors``, ``vocab.json``
and ``labels.json`` in one folder, written atomically and checked on load.

``config.json``::

    {"model_type": "hyperim", "model": {...the family's config...}, "dtype": "float32",
     "threshold": 0.5, "hyperim_version": "...", "files": {"model.safetensors":
     {"bytes": ..., "sha256": ...}, ...}, ...training metadata...}

Loading rebuilds the family's model from its registered config class and restores every
tensor exactly, so scores are identical. A folder saved before model families existed has no
``model_type``: it is a ``hyperim`` model, read with the defaults of that time. The sizes and
SHA-256 digests recorded at save time catch a truncated or altered file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hyperim import __version__
from hyperim.atomic import atomic_directory
from hyperim.data.vocab import LabelIndex, Vocabulary
from hyperim.device import DTYPES, dtype_name, resolve_device
from hyperim.errors import DataError
from hyperim.models.base import ModelConfig, TextModel
from hyperim.models.registry import DEFAULT_FAMILY, get_family
from hyperim.thresholds import LabelThresholds

FILES = ("config.json", "model.safetensors", "vocab.json", "labels.json")
_RESERVED = (
    "model_type", "model", "dtype", "threshold", "thresholds", "hyperim_version", "files"
)  # fmt: skip


@dataclass
class Bundle:
    """A model with everything needed to use it."""

    model: TextModel
    vocab: Vocabulary
    labels: LabelIndex
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)
    thresholds: LabelThresholds | None = None  # chosen on the validation split, if any


def build_model(
    model_type: str, config: ModelConfig | dict[str, Any], dtype: str = "float32"
) -> TextModel:
    """A fresh model of family ``model_type`` from its config (or the config's dict)."""
    family = get_family(model_type)
    if isinstance(config, dict):
        config = family.config_class.from_dict(config)
    return family.model_class(config).to(DTYPES[dtype])


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def save_bundle(
    directory: str | Path,
    model: TextModel,
    vocab: Vocabulary,
    labels: LabelIndex,
    threshold: float = 0.5,
    meta: dict[str, Any] | None = None,
    thresholds: LabelThresholds | None = None,
) -> Path:
    """Write the four files into ``directory`` (replacing a previous model there whole);
    ``thresholds`` (per label) go into ``config.json``."""
    d = Path(directory)
    with atomic_directory(d) as tmp:
        tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / "model.safetensors"))
        vocab.save(tmp / "vocab.json")
        labels.save(tmp / "labels.json")
        config = {
            "model_type": model.model_type,
            "model": model.config.to_dict(),
            "dtype": dtype_name(model.dtype),
            "threshold": threshold,
            **({"thresholds": thresholds.to_dict()} if thresholds is not None else {}),
            "hyperim_version": __version__,
            "files": {name: _digest(tmp / name) for name in FILES[1:]},
            **{k: v for k, v in (meta or {}).items() if k not in _RESERVED},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return d


def resolve_bundle_dir(directory: str | Path) -> Path:
    """A run folder means its ``model/``; a saved-model folder is itself."""
    d = Path(directory)
    if (d / "model" / "config.json").exists() and not (d / "config.json").exists():
        return d / "model"
    return d


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved model, checked for the fields loading needs."""
    d = resolve_bundle_dir(directory)
    path = d / "config.json"
    if not path.exists():
        raise DataError(path, None, "missing (not a saved hyperim model)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, None, f"invalid model config: {e}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise DataError(path, None, 'invalid model config: no "model" table')
    return config


def load_bundle(directory: str | Path, device: str = "cpu") -> Bundle:
    """Load a folder written by :func:`save_bundle` (or a run folder's ``model/``)."""
    d = resolve_bundle_dir(directory)
    config = read_config(d)
    for name in FILES[1:]:
        if not (d / name).exists():
            raise DataError(d / name, None, "missing (not a saved hyperim model)")
    for name, want in (config.get("files") or {}).items():
        if name in FILES and _digest(d / name) != want:
            raise DataError(
                d / name,
                None,
                "does not match the size and checksum recorded at save time "
                "(truncated or altered); save the model again",
            )
    model_type = config.get("model_type", DEFAULT_FAMILY)
    family = get_family(model_type)
    options = dict(config["model"])
    if "model_type" not in config:  # saved before model families: that version's defaults
        from hyperim.models.hyperim import LEGACY_DEFAULTS

        options = {**LEGACY_DEFAULTS, **options}
    try:
        mcfg = family.config_class.from_recorded(options, source=str(d / "config.json"))
    except TypeError as e:
        raise DataError(d / "config.json", None, f"invalid model config: {e}") from None
    dtype = config.get("dtype", "float32")
    if dtype not in DTYPES:
        raise DataError(d / "config.json", None, f"invalid dtype {dtype!r}")
    model = family.model_class(mcfg).to(DTYPES[dtype])
    try:
        state = load_file(str(d / "model.safetensors"))
    except (SafetensorError, OSError) as e:
        raise DataError(d / "model.safetensors", None, f"unreadable tensors: {e}") from None
    try:
        model.load_state_dict(family.model_class.upgrade_state_dict(state))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise DataError(
            d / "model.safetensors", None, f"tensors do not match config.json: {first}"
        ) from None
    model.to(resolve_device(device)).eval()
    meta = {k: v for k, v in config.items() if k not in _RESERVED}
    labels = LabelIndex.load(d / "labels.json")
    thresholds = None
    if config.get("thresholds") is not None:
        try:
            thresholds = LabelThresholds.from_dict(config["thresholds"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(d / "config.json", None, f"bad 'thresholds': {e}") from None
        if thresholds.values.shape != (len(labels),):
            raise DataError(
                d / "config.json",
                None,
                f"{thresholds.values.size} thresholds for {len(labels)} labels",
            )
    return Bundle(
        model,
        Vocabulary.load(d / "vocab.json"),
        labels,
        float(config.get("threshold", 0.5)),
        meta,
        thresholds,
    )
