"""The user-facing model: ``HyperIM.from_pretrained(dir)``, ``.predict(texts, k)``,
``.predict_proba(texts)``, ``.save_pretrained(dir)``.

A saved model is a folder with ``config.json``, ``model.safetensors``, ``vocab.json`` and
``labels.json``; loading it back gives identical scores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hyperim import __version__
from hyperim.data import LabelIndex, Vocabulary, tokenize
from hyperim.data.batching import pad_tokens
from hyperim.errors import DataError, HyperIMError
from hyperim.models import HyperIMModel, ModelConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; an unavailable device is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HyperIMError(f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HyperIMError(f"device {name!r} requested but CUDA is not available")
    return device


@dataclass
class Prediction:
    """One predicted label: its name, probability, and the words that matched it best."""

    label: str
    probability: float
    evidence: list[str]


class HyperIM:
    """A trained HyperIM model with its vocabulary and labels (scikit-learn–style API)."""

    def __init__(
        self,
        model: HyperIMModel,
        vocab: Vocabulary,
        labels: LabelIndex,
        threshold: float = 0.5,
        meta: dict | None = None,
    ) -> None:
        self.model = model.eval()
        self.vocab, self.labels = vocab, labels
        self.threshold = threshold
        self.meta = dict(meta or {})

    @property
    def max_len(self) -> int:
        return self.model.config.max_len

    @property
    def dtype(self) -> torch.dtype:
        return self.model.labels.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.labels.weight.device

    def to(self, device: str | torch.device) -> HyperIM:
        """Move the model to ``device`` (``"cpu"``, ``"cuda"``, ...); returns ``self``."""
        self.model.to(resolve_device(str(device)))
        return self

    # ---------------------------------------------------------------- save / load
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors``, ``vocab.json``, ``labels.json``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
        save_file(tensors, str(d / "model.safetensors"))
        self.vocab.save(d / "vocab.json")
        self.labels.save(d / "labels.json")
        config = {
            "model": self.model.config.to_dict(),
            "dtype": str(self.dtype).removeprefix("torch."),
            "threshold": self.threshold,
            "hyperim_version": __version__,
            **{k: v for k, v in self.meta.items() if k not in ("model", "dtype", "threshold")},
        }
        (d / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> HyperIM:
        """Load a folder written by :meth:`save_pretrained` (or a run folder's ``model/``)."""
        d = Path(directory)
        if (d / "model" / "config.json").exists() and not (d / "config.json").exists():
            d = d / "model"  # a run folder
        for name in ("config.json", "model.safetensors", "vocab.json", "labels.json"):
            if not (d / name).exists():
                raise DataError(d / name, None, "missing (not a saved hyperim model)")
        try:
            config = json.loads((d / "config.json").read_text())
            mcfg = ModelConfig.from_dict(config["model"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(d / "config.json", None, f"invalid model config: {e}") from None
        model = HyperIMModel(mcfg).to(DTYPES[config.get("dtype", "float32")])
        model.load_state_dict(load_file(str(d / "model.safetensors")))
        model.to(resolve_device(device))
        meta = {k: v for k, v in config.items() if k not in ("model", "dtype", "threshold")}
        return cls(
            model,
            Vocabulary.load(d / "vocab.json"),
            LabelIndex.load(d / "labels.json"),
            config.get("threshold", 0.5),
            meta,
        )

    # ---------------------------------------------------------------- inference
    def _encode(self, texts: Sequence[str | list[str]]) -> list[np.ndarray]:
        out = []
        for t in texts:
            tokens = tokenize(t) if isinstance(t, str) else [w.lower() for w in t]
            out.append(np.asarray(self.vocab.encode(tokens, self.max_len), dtype=np.int64))
        return out

    def _batches(
        self, seqs: list[np.ndarray], batch_size: int
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """Length-sorted batches (less padding); yields (positions, tokens, mask)."""
        order = np.argsort([len(s) for s in seqs], kind="stable")
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            tokens, mask = pad_tokens([seqs[i] for i in idx])
            yield idx, tokens.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str | list[str]], batch_size: int = 128) -> np.ndarray:
        """Probabilities ``(N, C)`` for raw texts (or pre-tokenised lists of words)."""
        return self.predict_proba_encoded(self._encode(texts), batch_size)

    @torch.no_grad()
    def predict_proba_encoded(self, seqs: list[np.ndarray], batch_size: int = 128) -> np.ndarray:
        """Probabilities ``(N, C)`` for already-encoded token id sequences."""
        out = np.zeros((len(seqs), len(self.labels)), dtype=np.float32)
        for idx, tokens, mask in self._batches(seqs, batch_size):
            out[idx] = torch.sigmoid(self.model.score_all(tokens, mask)).float().cpu().numpy()
        return out

    @torch.no_grad()
    def predict(
        self, texts: Sequence[str], k: int = 5, evidence: int = 3
    ) -> list[list[Prediction]]:
        """The ``k`` most probable labels per text, each with the ``evidence`` words whose
        encoded position lies closest to the label in the ball (the highest interaction
        scores, which are what Eq. 6 reads)."""
        if k < 1:
            raise HyperIMError("k must be >= 1")
        seqs = self._encode(texts)
        results: list[list[Prediction]] = [[] for _ in seqs]
        k = min(k, len(self.labels))
        for idx, tokens, mask in self._batches(seqs, 64):
            logits = self.model.score_all(tokens, mask)
            probs, top = torch.sigmoid(logits).topk(k, dim=1)  # (B, k)
            theta_w = self.model.encode(tokens, mask)
            s = self.model.interaction(theta_w, self.model.labels(top), mask.to(theta_w.dtype))
            s = s.masked_fill(~mask[:, None, :], float("-inf"))  # (B, k, T)
            for row, doc in enumerate(idx):
                n_tok = int(mask[row].sum())
                words = [self.vocab.tokens[i] for i in tokens[row, :n_tok].tolist()]
                for j in range(k):
                    best = s[row, j, :n_tok].topk(min(evidence * 3, n_tok)).indices.tolist()
                    ev: list[str] = []
                    for pos in best:
                        if words[pos] not in ev and words[pos] != "<unk>":
                            ev.append(words[pos])
                    results[doc].append(
                        Prediction(
                            self.labels.labels[int(top[row, j])],
                            float(probs[row, j]),
                            ev[:evidence],
                        )
                    )
        return results

    def predict_labels(
        self, texts: Sequence[str], threshold: float | None = None
    ) -> list[list[str]]:
        """Labels whose probability reaches ``threshold`` (default: the model's)."""
        thr = self.threshold if threshold is None else threshold
        probs = self.predict_proba(texts)
        return [[self.labels.labels[j] for j in np.flatnonzero(row >= thr)] for row in probs]

    @classmethod
    def fit(cls, data: str | Path | None, out: str | Path, config=None, **options) -> HyperIM:
        """Train on a dataset directory (default: the bundled debtags) into run folder ``out``."""
        from hyperim.config import TrainConfig
        from hyperim.train import train

        cfg = (config or TrainConfig()).updated(**options)
        train(Path(data) if data else None, Path(out), cfg)
        return cls.from_pretrained(Path(out) / "model")
