"""The protocol every trainable model family implements, and what is common to all of them.

A family is a :class:`TextModel` subclass plus its config dataclass (a subclass of
:class:`ModelConfig`), registered by name in :mod:`hyperim.models.registry`. The trainer, the
saved-model bundle, inference, evaluation and the CLI talk to a model only through this
protocol:

``forward(tokens, mask, labels, targets, target_mask) -> (logits, loss)``
    Training: logits of the given label subset (or every label), and the loss of Eq. (7).
``encode_batch(tokens, mask) -> Encoded``
    Whatever the family computes once per batch of documents (HyperIM: the encoded words).
``score_chunk(encoded, lo, hi)`` / ``score_subset(encoded, labels)``
    Calibrated logits of labels ``lo:hi`` (shared by the batch) or of a label set per document.
``word_label_scores(encoded, labels)``
    ``(B, L, T)`` per-position scores, for the evidence words of a prediction (optional).
``configure_optimizers(train_config)``
    The family's optimisers and parameter groups (Riemannian vs Euclidean).
``init_from_data(data)``
    Its start from the training data: label priors, pre-trained tables.
``config_for_data(config, data)`` (classmethod, optional)
    Architecture sizes the data fixes (levels of the hierarchy), before the model is built.
``scores_every_label`` (class attribute)
    True when the loss needs every label's logit: the trainer then samples no negatives.
``label_points()`` and ``words_in_label_space`` (optional)
    The labels as points to draw (``hyperim plot``, the server's disk), and whether the encoded
    words are points of the same space (a document drawn with its labels, Figure 4).
``trained_by_gradients`` (class attribute) and ``fit(data) -> losses``
    False for a family fitted once in closed form (SLEEC): the trainer calls ``fit`` instead
    of the optimisation steps, then validates, chooses thresholds and saves as for any other.

Built on those, :meth:`TextModel.score_all` scores every label in chunks and
:meth:`TextModel.topk` keeps a streaming top-k over label chunks (:func:`merge_topk`), so no
family needs a ``(batch, n_labels)`` matrix to predict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hyperim.errors import HyperIMError

#: Labels scored at a time by :meth:`TextModel.score_all` and :meth:`TextModel.topk`.
LABEL_CHUNK = 2048

#: Python types a value of each annotation may have (an int is a float; a bool is not an int).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
}


def type_ok(annotation: str, value: Any) -> bool:
    """Whether ``value`` fits a field annotated ``annotation`` (``"int"``, ``"float | None"``)."""
    parts = [p.strip() for p in str(annotation).split("|")]
    if any(p not in _TYPES for p in parts):
        return True  # an annotation this check does not know: left to the family's validate
    allowed = tuple(t for p in parts for t in _TYPES[p])
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def check_options(cls: type, d: dict[str, Any], source: str, where: str = "") -> None:
    """Raise :class:`HyperIMError` for a key of ``d`` that is not a field of dataclass ``cls``
    or a value of the wrong type; ``where`` names the table (``"[model]"``) in the message."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise HyperIMError(
            f"{source}: unknown option(s) {', '.join(unknown)}{' in ' + where if where else ''}"
        )
    for name, value in d.items():
        annotation = str(known[name].type)
        if not type_ok(annotation, value):
            raise HyperIMError(f"{source}: option {name} must be {annotation}, got {value!r}")


@dataclass
class ModelConfig:
    """What every family's config has: the sizes the data fixes, and the sampling offset.

    ``vocab_size``, ``n_labels`` and ``max_len`` are set by the trainer from the data;
    ``logit_offset`` is ``log r`` for training with negatives sampled at rate ``r``
    (:func:`sampling_logit_offset`), added to logits at inference only.
    """

    vocab_size: int = 0
    n_labels: int = 0
    max_len: int = 256
    logit_offset: float = 0.0

    #: Fields the trainer fills from the data (not user options).
    DATA_FIELDS: ClassVar[tuple[str, ...]] = ("vocab_size", "n_labels", "max_len", "logit_offset")
    #: Options whose default changed after they came in, with the value they had before: a
    #: recorded config (``config.json``, ``run.json``) that lacks one was made under it.
    RECORDED_DEFAULTS: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> ModelConfig:
        check_options(cls, d, source, "[model]")
        return cls(**d)

    @classmethod
    def from_recorded(cls, d: dict[str, Any], source: str = "config") -> ModelConfig:
        """:meth:`from_dict` of a config a run or a saved model recorded: an option it lacks
        takes the value of :attr:`RECORDED_DEFAULTS` (the default when it was recorded)."""
        return cls.from_dict({**cls.RECORDED_DEFAULTS, **d}, source)

    @classmethod
    def option_fields(cls) -> list[Any]:
        """The user options of this family (every field but :attr:`DATA_FIELDS`)."""
        return [f for f in fields(cls) if f.name not in cls.DATA_FIELDS]

    def validate(self) -> ModelConfig:
        """Raise :class:`HyperIMError` for an impossible value; return ``self``."""
        return self

    def with_data(self, **sizes: Any) -> ModelConfig:
        """A copy with the data-fixed fields set (``vocab_size=..., n_labels=...``)."""
        bad = set(sizes) - set(self.DATA_FIELDS)
        if bad:
            raise ValueError(f"not data fields: {sorted(bad)}")
        return type(self)(**{**self.to_dict(), **sizes})


@dataclass
class TrainingData:
    """What a family may read to start from the data (:meth:`TextModel.init_from_data`)."""

    documents: Sequence[Sequence[str]]  # training documents' tokens
    label_lists: Sequence[np.ndarray]  # training documents' label ids
    vocab: Any  # hyperim.data.Vocabulary
    labels: Any  # hyperim.data.LabelIndex
    hierarchy: Any  # hyperim.data.Hierarchy | None
    seed: int = 0
    cache: Path = field(default_factory=lambda: Path("pretrained"))  # pre-trained tables
    log: Callable[[str], None] = print
    # training documents' token ids as the model sees them (vocabulary ids, truncated to
    # max_len, unpadded); empty where the caller did not encode them
    token_ids: Sequence[np.ndarray] = ()


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


def prior_logits(label_lists: Sequence[np.ndarray], n_labels: int, offset: float) -> torch.Tensor:
    """``(C,)`` logit of each label's smoothed training frequency, minus the sampling offset
    (so that calibrated inference logits start at the prior)."""
    n = len(label_lists)
    counts = np.bincount(
        np.concatenate(list(label_lists) or [np.zeros(0, np.int64)]), minlength=n_labels
    )
    prior = (counts + 0.5) / (n + 1.0)  # smoothed: finite for labels never seen in training
    return torch.from_numpy(np.log(prior / (1 - prior)) - offset)


def merge_topk(
    best_v: torch.Tensor | None,
    best_i: torch.Tensor | None,
    values: torch.Tensor,  # (B, n) new scores
    ids: torch.Tensor,  # (B, n) their label ids
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a streaming top-k: the ``k`` best of the running ``(best_v, best_i)`` and
    the new ``(values, ids)``; memory ``(B, k + n)``. Ties keep the earlier entry first."""
    if best_v is not None and best_i is not None:
        values = torch.cat([best_v, values], dim=1)
        ids = torch.cat([best_i, ids], dim=1)
    best_v, pos = values.topk(min(k, values.shape[1]), dim=1)
    return best_v, ids.gather(1, pos)


def bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, target_mask: torch.Tensor | None
) -> torch.Tensor:
    """Eq. (7): ``-Σ_{L+} log p - Σ_{L-} log(1-p)``, summed over labels, averaged over documents
    (``target_mask`` 0 where a document's label list is padding)."""
    bce = nn.functional.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), reduction="none"
    )
    if target_mask is not None:
        bce = bce * target_mask
    return bce.sum() / logits.shape[0]


class TextModel(nn.Module):
    """Base class of every trainable family; see the module docstring for the protocol."""

    #: The registry name, written to ``config.json`` as ``model_type``.
    model_type: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    config: ModelConfig
    #: True for a family whose loss needs every label's logit (a penalty over the hierarchy,
    #: one output per level): the trainer then scores all labels and samples no negatives
    #: (``--negatives`` does not apply to it).
    scores_every_label: ClassVar[bool] = False
    #: False for a family fitted once without gradients (:meth:`fit`): the trainer then runs
    #: no optimisation steps and one "epoch" (the fit, then validation as for any family).
    trained_by_gradients: ClassVar[bool] = True
    #: True for a family whose encoded words (the first item of :meth:`encode_batch`) are
    #: points of its labels' space (:meth:`label_points`): a document can be drawn with them.
    words_in_label_space: ClassVar[bool] = False

    @classmethod
    def extra_vocabulary(cls, config: ModelConfig) -> list[str]:
        """Tokens to add to the training split's vocabulary before the model is built: a
        pre-trained table's words, so that words no training text uses still have their
        pre-trained start in test texts (instead of ``<unk>``). None by default."""
        return []

    # ------------------------------------------------------------------ to implement
    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) long, right-padded
        mask: torch.Tensor,  # (B, T) bool, True at real tokens
        labels: torch.Tensor | None = None,  # (B, L) label ids per document; None = all
        targets: torch.Tensor | None = None,  # (B, L) or (B, C) in {0, 1}
        target_mask: torch.Tensor | None = None,  # (B, L): 0 where ``labels`` is padding
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def encode_batch(self, tokens: torch.Tensor, mask: torch.Tensor) -> Any:
        """What the family computes once per batch of documents, for the scoring methods."""
        raise NotImplementedError

    def score_chunk(self, encoded: Any, lo: int, hi: int) -> torch.Tensor:
        """``(B, hi - lo)`` calibrated logits of labels ``lo:hi``."""
        raise NotImplementedError

    def score_subset(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` calibrated logits of the label ids ``labels`` ``(B, L)``."""
        raise NotImplementedError

    def word_label_scores(self, encoded: Any, labels: torch.Tensor) -> torch.Tensor | None:
        """``(B, L, T)`` how much each position speaks for each label (higher = more), or
        ``None`` for a family without per-word evidence."""
        return None

    def configure_optimizers(self, train_config: Any) -> list[torch.optim.Optimizer]:
        raise NotImplementedError

    def label_points(self) -> tuple[str, torch.Tensor] | None:
        """The labels as points to draw: ``("poincare", (C, n_balls, d))`` in a product of
        balls, ``("euclidean", (C, k))`` as vectors, or ``None`` for a family without label
        embeddings (default)."""
        return None

    @classmethod
    def config_for_data(cls, config: ModelConfig, data: TrainingData) -> ModelConfig:
        """The config with the architecture's sizes that the training data fixes (HMCN-F: the
        hierarchy's number of levels); called by the trainer before the model is built. The
        result is saved in ``config.json``, so loading a model needs no data. Default:
        ``config`` unchanged."""
        return config

    def init_from_data(self, data: TrainingData) -> None:
        """Start from the data (label priors, pre-trained tables); default: nothing."""

    def fit(self, data: TrainingData) -> list[float]:
        """A family that is not :attr:`trained_by_gradients`: fit its state (buffers) to the
        training data (``data.token_ids`` and ``data.label_lists``) and return its fitting
        objective, one value per iteration of its own solver."""
        raise NotImplementedError(f"{type(self).__name__} is trained by gradients")

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename tensors saved by an older version of the family (default: none)."""
        return state

    # ------------------------------------------------------------------ built on them
    @property
    def n_labels(self) -> int:
        return self.config.n_labels

    @property
    def device(self) -> torch.device:
        return next(itertools.chain(self.parameters(), self.buffers())).device

    @property
    def dtype(self) -> torch.dtype:
        tensors = itertools.chain(self.parameters(), self.buffers())
        return next(p for p in tensors if p.is_floating_point()).dtype

    @torch.no_grad()
    def score_all(
        self, tokens: torch.Tensor, mask: torch.Tensor, label_chunk: int = LABEL_CHUNK
    ) -> torch.Tensor:
        """Calibrated logits for every label, ``(B, C)``, ``label_chunk`` labels at a time."""
        encoded = self.encode_batch(tokens, mask)
        n = self.n_labels
        return torch.cat(
            [
                self.score_chunk(encoded, lo, min(lo + label_chunk, n))
                for lo in range(0, n, label_chunk)
            ],
            dim=1,
        )

    @torch.no_grad()
    def topk_encoded(
        self, encoded: Any, k: int, label_chunk: int = LABEL_CHUNK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Running top-k over label chunks: ``(B, k)`` calibrated logits (descending) and ids;
        the largest score tensor is ``(B, k + label_chunk)``, never ``(B, n_labels)``."""
        n = self.n_labels
        k = min(k, n)
        best_v = best_i = None
        for lo in range(0, n, label_chunk):
            hi = min(lo + label_chunk, n)
            values = self.score_chunk(encoded, lo, hi)  # (B, chunk)
            ids = torch.arange(lo, hi, device=values.device).expand(values.shape[0], -1)
            best_v, best_i = merge_topk(best_v, best_i, values, ids, k)
        assert best_v is not None and best_i is not None
        return best_v, best_i

    @torch.no_grad()
    def topk(
        self, tokens: torch.Tensor, mask: torch.Tensor, k: int, label_chunk: int = LABEL_CHUNK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` highest calibrated logits of each document and their label ids; equals
        ``torch.topk(self.score_all(tokens, mask), k)`` up to the order of exact ties."""
        if k < 1 or label_chunk < 1:
            raise HyperIMError("k and label_chunk must be >= 1")
        return self.topk_encoded(self.encode_batch(tokens, mask), k, label_chunk)
