"""The raw-line layer shared by every reader: byte lines, UTF-8 decoding, per-line problems.

Files are read as bytes and decoded line by line, so a stray non-UTF-8 byte is reported at its
line; a ``.gz`` suffix means gzip. A problem confined to one line is a :class:`BadLine`, which
callers either turn into a :class:`~hyperim.errors.DataError` (file and 1-based line) or skip
and count in a :class:`DataReport`.

This module imports nothing else from :mod:`hyperim.data`, so both
:mod:`hyperim.data.hierarchy` and :mod:`hyperim.data.reader` can depend on it.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperim.errors import DataError

__all__ = ["MAX_MESSAGES", "BadLine", "DataReport", "decode", "decode_line", "iter_raw_lines"]

MAX_MESSAGES = 10


@dataclass
class DataReport:
    """Counts of harmless oddities and skipped lines met while reading a dataset.

    Attributes
    ----------
    skipped_lines : int
        Invalid document lines skipped (only with ``skip_invalid=True``).
    labels_missing_from_hierarchy : int
        Distinct labels used by documents but absent from the hierarchy.
    duplicate_edges : int
        Hierarchy edges given more than once (extra copies ignored).
    empty_documents : int
        Documents with no tokens.
    unlabelled_documents : int
        Documents with no labels.
    duplicate_labels : int
        Documents that listed a label more than once (deduplicated).
    messages : list of str
        The first ``MAX_MESSAGES`` skipped-line problems, as ``"file:line: problem"``.
    """

    skipped_lines: int = 0
    labels_missing_from_hierarchy: int = 0
    duplicate_edges: int = 0
    empty_documents: int = 0
    unlabelled_documents: int = 0
    duplicate_labels: int = 0
    messages: list[str] = field(default_factory=list)

    def skip(self, path: Path, line: int, problem: str) -> None:
        """Count one skipped line and keep its message if fewer than ``MAX_MESSAGES`` are kept."""
        self.skipped_lines += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(f"{path}:{line}: {problem}")

    def warnings(self) -> list[str]:
        """One human-readable line per nonzero counter."""
        out = []
        if self.skipped_lines:
            first = f" (first: {self.messages[0]})" if self.messages else ""
            out.append(f"{self.skipped_lines} invalid lines skipped{first}")
        for count, what in [
            (self.labels_missing_from_hierarchy, "labels missing from the hierarchy (top-level)"),
            (self.duplicate_edges, "duplicate hierarchy edges ignored"),
            (self.empty_documents, "empty documents (no tokens)"),
            (self.unlabelled_documents, "documents with no labels"),
            (self.duplicate_labels, "documents with duplicate labels (deduplicated)"),
        ]:
            if count:
                out.append(f"{count} {what}")
        return out


class BadLine(Exception):
    """A problem confined to one line (skippable for documents); its message has no location.

    Callers that know the file turn it into ``DataError(path, lineno, str(err))``.
    """


def iter_raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_bytes)`` for each line of ``path`` (gunzipped if ``.gz``).

    Line numbers are 1-based; ``raw_bytes`` keeps its line terminator.

    Raises
    ------
    DataError
        If the file cannot be opened or its compressed data is corrupt.
    """
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror or e}") from None
    lineno = 0
    with f:
        while True:
            try:
                raw = f.readline()
            except EOFError:  # gzip: the stream stops before its end marker
                raise DataError(
                    path, lineno + 1, "truncated (compressed data ends early)"
                ) from None
            except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
                reason = getattr(e, "strerror", None) or str(e)
                raise DataError(path, lineno + 1, f"cannot read: {reason}") from None
            if not raw:
                return
            lineno += 1
            yield lineno, raw


def decode(raw: bytes, lineno: int) -> str:
    """Decode one line as UTF-8 (a BOM on line 1 is dropped).

    Raises
    ------
    BadLine
        If the bytes are not valid UTF-8; the message names the byte and its offset.
    """
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise BadLine(f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def decode_line(path: Path, lineno: int, raw: bytes) -> str:
    """Decode one line as UTF-8 (a BOM on line 1 is dropped), raising DataError if invalid."""
    try:
        return decode(raw, lineno)
    except BadLine as e:
        raise DataError(path, lineno, str(e)) from None
