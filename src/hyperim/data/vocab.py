"""Token vocabulary and label index: string <-> integer id maps, saved as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hyperim.errors import DataError


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object whose ``"tokens"``/``"labels"`` entry is a list of unique strings."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise DataError(path, None, f"bad JSON: {e}") from None
    items = obj.get(what) if isinstance(obj, dict) else None
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise DataError(path, None, f"expected a JSON object with '{what}': a list of strings")
    if len(set(items)) < len(items):
        raise DataError(path, None, f"duplicate entries in '{what}'")
    return obj


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")


class Vocabulary:
    """Token <-> id map; id 0 is ``<pad>`` and id 1 is ``<unk>``.

    Parameters
    ----------
    tokens : list of str
        All tokens by id, starting with ``"<pad>", "<unk>"``.
    min_count, max_size
        The settings the vocabulary was built with (kept for saving).
    """

    PAD = 0
    UNK = 1
    SPECIALS = ("<pad>", "<unk>")

    def __init__(self, tokens: list[str], min_count: int = 1, max_size: int | None = None) -> None:
        if tuple(tokens[:2]) != self.SPECIALS:
            raise ValueError(f"tokens must start with {self.SPECIALS}")
        self.tokens = list(tokens)
        self.min_count = min_count
        self.max_size = max_size
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self._ids) < len(self.tokens):
            raise ValueError("duplicate tokens")

    @classmethod
    def build(
        cls, docs: Iterable[list[str]], min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Build from tokenised documents.

        Tokens seen at least ``min_count`` times are kept, most frequent first, ties in
        alphabetical order; ``max_size`` caps ``len(vocab)``, the two special tokens included.
        """
        if min_count < 1 or (max_size is not None and max_size < len(cls.SPECIALS)):
            raise ValueError("need min_count >= 1 and max_size >= 2")
        counts = Counter(t for doc in docs for t in doc)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count and t not in cls.SPECIALS),
            key=lambda t: (-counts[t], t),
        )
        if max_size is not None:
            kept = kept[: max_size - len(cls.SPECIALS)]
        return cls([*cls.SPECIALS, *kept], min_count, max_size)

    def extended(self, tokens: Iterable[str]) -> Vocabulary:
        """This vocabulary with ``tokens`` it lacks appended (in order; ids kept)."""
        extra = [t for t in dict.fromkeys(tokens) if t not in self._ids]
        return Vocabulary([*self.tokens, *extra], self.min_count, self.max_size)

    def __len__(self) -> int:
        return len(self.tokens)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or ``UNK``."""
        return self._ids.get(token, self.UNK)

    def encode(self, tokens: list[str], max_len: int) -> list[int]:
        """Ids of the first ``max_len`` tokens (unknown -> ``UNK``); not padded."""
        return [self._ids.get(t, self.UNK) for t in tokens[:max_len]]

    def save(self, path: Path) -> None:
        """Write ``{"tokens": [...], "min_count": ..., "max_size": ...}`` as JSON."""
        obj = {"tokens": self.tokens, "min_count": self.min_count, "max_size": self.max_size}
        _write_json(path, obj)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a file written by :meth:`save`; a bad file raises DataError."""
        obj = _read_json(path, "tokens")
        if tuple(obj["tokens"][:2]) != cls.SPECIALS:
            raise DataError(path, None, f"'tokens' must start with {list(cls.SPECIALS)}")
        min_count, max_size = obj.get("min_count", 1), obj.get("max_size")
        if not isinstance(min_count, int) or not (max_size is None or isinstance(max_size, int)):
            raise DataError(path, None, "'min_count' and 'max_size' must be integers")
        return cls(obj["tokens"], min_count, max_size)


class LabelIndex:
    """Label <-> index map, in the order given.

    ``unknown_labels`` counts the labels :meth:`encode` met that are not in the index.
    """

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self._index = {label: i for i, label in enumerate(self.labels)}
        if len(self._index) < len(self.labels):
            raise ValueError("duplicate labels")
        self.unknown_labels: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int:
        """The index of ``label``; ``KeyError`` if unknown."""
        return self._index[label]

    def encode(self, labels: list[str]) -> list[int]:
        """Indices of the known labels; unknown ones are counted in ``unknown_labels``."""
        out = []
        for label in labels:
            i = self._index.get(label)
            if i is None:
                self.unknown_labels[label] += 1
            else:
                out.append(i)
        return out

    def save(self, path: Path) -> None:
        """Write ``{"labels": [...]}`` as JSON."""
        _write_json(path, {"labels": self.labels})

    @classmethod
    def load(cls, path: Path) -> LabelIndex:
        """Read a file written by :meth:`save`; a bad file raises DataError."""
        return cls(_read_json(path, "labels")["labels"])
