"""The user-facing model: ``HyperIM.from_pretrained(dir)``, ``.predict(texts, k)``,
``.predict_proba(texts)``, ``.save_pretrained(dir)`` — for every registered model family.

A saved model is a folder with ``config.json`` (naming its ``model_type``),
``model.safetensors``, ``vocab.json`` and ``labels.json`` (:mod:`hyperim.models.bundle`);
loading it back gives identical scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hyperim.data import LabelIndex, Vocabulary, tokenize
from hyperim.device import resolve_device
from hyperim.errors import HyperIMError
from hyperim.inference import batches, evidence_words, proba_encoded
from hyperim.models.base import TextModel
from hyperim.models.bundle import load_bundle, save_bundle
from hyperim.thresholds import LabelThresholds


@dataclass
class Prediction:
    """One predicted label: its name, probability, and the words that matched it best."""

    label: str
    probability: float
    evidence: list[str]


class HyperIM:
    """A trained model of any family with its vocabulary and labels (scikit-learn–style API)."""

    def __init__(
        self,
        model: TextModel,
        vocab: Vocabulary,
        labels: LabelIndex,
        threshold: float = 0.5,
        meta: dict | None = None,
        thresholds: LabelThresholds | None = None,
    ) -> None:
        self.model = model.eval()
        self.vocab, self.labels = vocab, labels
        self.threshold = threshold
        self.meta = dict(meta or {})
        #: per-label thresholds chosen on the validation split (None: ``threshold`` for all)
        self.thresholds = thresholds

    @property
    def model_type(self) -> str:
        return self.model.model_type

    @property
    def max_len(self) -> int:
        return self.model.config.max_len

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self) -> torch.device:
        return self.model.device

    def to(self, device: str | torch.device) -> HyperIM:
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ...); returns ``self``."""
        self.model.to(resolve_device(str(device)))
        return self

    # ---------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors``, ``vocab.json``, ``labels.json``
        (atomically: a crash leaves the previous folder or none, never a mix)."""
        return save_bundle(
            directory,
            self.model,
            self.vocab,
            self.labels,
            self.threshold,
            self.meta,
            self.thresholds,
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> HyperIM:
        """Load a folder written by :meth:`save_pretrained` (or a run folder's ``model/``)."""
        b = load_bundle(directory, device)
        return cls(b.model, b.vocab, b.labels, b.threshold, b.meta, b.thresholds)

    # ---------------------------------------------------------------- inference
    def _encode(self, texts: Sequence[str | list[str]]) -> list[np.ndarray]:
        if isinstance(texts, str):
            raise HyperIMError("expected a list of texts, got one string; pass [text]")
        out = []
        for t in texts:
            tokens = tokenize(t) if isinstance(t, str) else [w.lower() for w in t]
            out.append(np.asarray(self.vocab.encode(tokens, self.max_len), dtype=np.int64))
        return out

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str | list[str]], batch_size: int = 128) -> np.ndarray:
        """Probabilities ``(N, C)`` for raw texts (or pre-tokenised lists of words)."""
        return self.predict_proba_encoded(self._encode(texts), batch_size)

    @torch.no_grad()
    def predict_proba_encoded(self, seqs: list[np.ndarray], batch_size: int = 128) -> np.ndarray:
        """Probabilities ``(N, C)`` for already-encoded token id sequences."""
        return proba_encoded(self.model, seqs, batch_size)

    @torch.no_grad()
    def predict(
        self, texts: Sequence[str | list[str]], k: int = 5, evidence: int = 3
    ) -> list[list[Prediction]]:
        """The ``k`` most probable labels per text, each with the ``evidence`` words that speak
        most for the label (for HyperIM: whose encoded position lies closest to the label in
        the ball, the highest interaction scores, which are what Eq. 6 reads)."""
        if k < 1:
            raise HyperIMError("k must be >= 1")
        seqs = self._encode(texts)
        results: list[list[Prediction]] = [[] for _ in seqs]
        names = self.labels.labels
        for idx, tokens, mask in batches(seqs, 64, self.device):
            encoded = self.model.encode_batch(tokens, mask)
            values, top = self.model.topk_encoded(encoded, k)
            probs = torch.sigmoid(values)
            words = evidence_words(self.model, self.vocab, encoded, tokens, mask, top, evidence)
            for row, doc in enumerate(idx):
                results[doc] = [
                    Prediction(names[int(top[row, j])], float(probs[row, j]), words[row][j])
                    for j in range(top.shape[1])
                ]
        return results

    def predict_labels(
        self, texts: Sequence[str | list[str]], threshold: float | None = None
    ) -> list[list[str]]:
        """Labels whose probability reaches ``threshold``; by default each label's own
        threshold, chosen on the validation split (:attr:`thresholds`, closed under the
        hierarchy when it says so), else the model's one ``threshold``."""
        probs = self.predict_proba(texts)
        sets = self.label_sets(probs, threshold)
        return [[self.labels.labels[j] for j in row] for row in sets]

    def metrics(
        self, probs: np.ndarray, truth: Sequence[set[int]], threshold: float | None = None
    ) -> dict[str, float]:
        """P@k, nDCG@k (Eq. 8) and micro/macro-F1 of :meth:`label_sets` (the model's own
        thresholds, or ``threshold``); with per-label thresholds also ``micro_f1@T`` and
        ``macro_f1@T`` at the one threshold ``T`` (0.5), for comparison."""
        from hyperim.thresholds import label_set_metrics

        if threshold is not None:
            return label_set_metrics(probs, truth, None, threshold)
        return label_set_metrics(probs, truth, self.thresholds, self.threshold)

    def top_label_set(self, label_ids: Sequence[int], probs: Sequence[float]) -> list[str]:
        """The label set among a document's top-k labels ``label_ids`` (with ``probs``): those
        reaching their threshold, plus their ancestors when the thresholds close sets; what
        ``predict --output`` writes as ``"set"`` (``k`` bounds it)."""
        values = self.thresholds.values if self.thresholds is not None else None
        chosen = [
            j
            for j, p in zip(label_ids, probs, strict=True)
            if p >= (self.threshold if values is None else values[j])
        ]
        th = self.thresholds
        if th is not None and th.closure and th.ancestors is not None:
            from hyperim.thresholds import close_under_ancestors

            chosen = close_under_ancestors([chosen], th.ancestors)[0]
        return [self.labels.labels[j] for j in chosen]

    def label_sets(self, probs: np.ndarray, threshold: float | None = None) -> list[list[int]]:
        """Label indices of each row of ``probs`` ``(N, C)`` that reach its threshold (see
        :meth:`predict_labels`)."""
        if threshold is None and self.thresholds is not None:
            return self.thresholds.label_sets(probs)
        from hyperim.metrics import threshold_sets

        return threshold_sets(probs, self.threshold if threshold is None else threshold)

    @classmethod
    def fit(cls, data: str | Path | None, out: str | Path, config=None, **options) -> HyperIM:
        """Train on a dataset directory (default: the bundled debtags) into run folder ``out``.

        ``options`` are :class:`~hyperim.config.TrainConfig` fields (``epochs=3``), ``model=``
        a family name, or options of the family (``n_balls=10``: they go to its ``[model]``).
        """
        from hyperim.config import TrainConfig
        from hyperim.train import train

        cfg = (config or TrainConfig()).updated(**options)
        train(Path(data) if data else None, Path(out), cfg)
        return cls.from_pretrained(Path(out) / "model")
