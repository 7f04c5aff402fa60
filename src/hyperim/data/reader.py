"""Reading documents (JSON Lines) and whole datasets (train/valid/test + hierarchy).

Every problem a user's file can cause raises :class:`~hyperim.errors.DataError`, which names
the file and the 1-based line number. Files are read as bytes and decoded line by line (see
:mod:`hyperim.data.lines`), so a stray non-UTF-8 byte is reported at its line; a ``.gz`` suffix
means gzip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hyperim.data.hierarchy import Hierarchy, read_hierarchy
from hyperim.data.lines import MAX_MESSAGES as MAX_MESSAGES  # re-export: it lived here before
from hyperim.data.lines import BadLine, DataReport, decode, iter_raw_lines
from hyperim.data.lines import decode_line as decode_line  # re-export: it lived here before
from hyperim.errors import DataError

# Lowercased words: runs of [a-z0-9] joined by single . + # ' _ - (so "a.d", "x86_64",
# "don't", "utf-8", "libfoo-dev" stay whole), optionally followed by "++" or "#" ("c++", "g++",
# "c#"). Anything else (other punctuation, non-ASCII letters) separates tokens and is dropped.
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[.+#'_-][a-z0-9]+)*(?:\+\+|#)?")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase tokens.

    Parameters
    ----------
    text : str
        Raw text.

    Returns
    -------
    list of str
        Matches of ``[a-z0-9]+(?:[.+#'_-][a-z0-9]+)*(?:\\+\\+|#)?`` in ``text.lower()``;
        e.g. ``"Python 3.11 bindings for C++ (libfoo-dev)."`` gives
        ``["python", "3.11", "bindings", "for", "c++", "libfoo-dev"]``. Non-ASCII letters
        are not word characters and are dropped.
    """
    return _TOKEN_RE.findall(text.lower())


@dataclass
class Document:
    """One document: its tokens, its (deduplicated) labels and an optional id."""

    tokens: list[str]
    labels: list[str]
    id: str | None = None


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def parse_document(raw: bytes, lineno: int, require_labels: bool) -> tuple[Document, bool]:
    """Parse one document line (the JSON object described in :func:`iter_documents`).

    Parameters
    ----------
    raw : bytes
        The line as read by :func:`~hyperim.data.lines.iter_raw_lines`.
    lineno : int
        Its 1-based line number (a UTF-8 BOM is dropped on line 1).
    require_labels : bool
        If False, a missing ``labels``/``label`` key means no labels.

    Returns
    -------
    (Document, bool)
        The document and whether it listed a label more than once.

    Raises
    ------
    BadLine
        For bad bytes, bad JSON or bad keys; the message has no file or line.
    """
    try:
        obj = json.loads(decode(raw, lineno))
    except json.JSONDecodeError as e:
        raise BadLine(f"bad JSON: {e.msg} (column {e.colno})") from None
    except (ValueError, RecursionError) as e:
        raise BadLine(f"bad JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"expected a JSON object, got {type(obj).__name__}")
    if "text" in obj:
        if not isinstance(obj["text"], str):
            raise BadLine("'text' must be a string")
        tokens = tokenize(obj["text"])
    elif "token" in obj:
        if not _is_str_list(obj["token"]):
            raise BadLine("'token' must be a list of strings")
        tokens = [t.lower() for t in obj["token"]]
    else:
        raise BadLine("missing 'text' (or 'token')")
    key = "labels" if "labels" in obj else "label"
    if key in obj:
        if not _is_str_list(obj[key]):
            raise BadLine(f"'{key}' must be a list of strings")
        labels = list(dict.fromkeys(obj[key]))
    elif require_labels:
        raise BadLine("missing 'labels' (or 'label')")
    else:
        labels = []
    doc_id = obj.get("id")
    if doc_id is not None and (isinstance(doc_id, bool) or not isinstance(doc_id, str | int)):
        raise BadLine("'id' must be a string")
    doc = Document(tokens, labels, None if doc_id is None else str(doc_id))
    return doc, key in obj and len(labels) < len(obj[key])


def iter_documents(
    path: Path,
    *,
    skip_invalid: bool = False,
    report: DataReport | None = None,
    require_labels: bool = True,
) -> Iterator[Document]:
    """Stream documents from a JSON Lines file, one line at a time.

    Each non-blank line is ``{"text": str, "labels": [str, ...]}`` or
    ``{"token": [str, ...], "label": [str, ...]}``, with an optional ``"id"``.

    Parameters
    ----------
    path : Path
        The file; gzip-compressed if its name ends in ``.gz``.
    skip_invalid : bool
        Skip (and count in ``report``) lines with bad bytes, bad JSON or bad keys instead of
        raising.
    report : DataReport, optional
        Receives the counts; a throwaway one is used if omitted.
    require_labels : bool
        If False, a missing ``labels``/``label`` key means no labels (prediction input).

    Yields
    ------
    Document

    Raises
    ------
    DataError
        For the first invalid line (unless ``skip_invalid``), or an unreadable file.
    """
    path = Path(path)
    report = report if report is not None else DataReport()
    for lineno, raw in iter_raw_lines(path):
        if not raw.strip():
            continue
        try:
            doc, had_duplicates = parse_document(raw, lineno, require_labels)
        except BadLine as e:
            if not skip_invalid:
                raise DataError(path, lineno, str(e)) from None
            report.skip(path, lineno, str(e))
            continue
        report.empty_documents += not doc.tokens
        report.unlabelled_documents += not doc.labels and require_labels
        report.duplicate_labels += had_duplicates
        yield doc


def read_documents(
    path: Path,
    *,
    skip_invalid: bool = False,
    report: DataReport | None = None,
    require_labels: bool = True,
) -> list[Document]:
    """Read all documents of a JSON Lines file; see :func:`iter_documents`."""
    return list(
        iter_documents(
            path, skip_invalid=skip_invalid, report=report, require_labels=require_labels
        )
    )


def token_length_stats(docs: Iterable[Document]) -> dict[str, float]:
    """Summarise the distribution of token counts per document.

    On the bundled debtags train split (21,305 documents, :func:`tokenize`): mean 65.6,
    median 54, p90 112, p95 136, p99 213, max 10,456 tokens. ``max_len=128`` keeps 93.9% of
    documents whole (93.9% of all tokens), 256 keeps 99.6% (97.8% of tokens), 512 keeps 99.9%.

    Returns
    -------
    dict
        Keys ``mean``, ``median``, ``p90``, ``p95``, ``p99``, ``max`` (all 0 if no documents).
    """
    lengths = np.array([len(d.tokens) for d in docs], dtype=float)
    if lengths.size == 0:
        return dict.fromkeys(("mean", "median", "p90", "p95", "p99", "max"), 0.0)
    p50, p90, p95, p99 = np.percentile(lengths, [50, 90, 95, 99])
    return {
        "mean": float(lengths.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(lengths.max()),
    }


@dataclass
class DatasetFiles:
    """The files of a dataset directory."""

    root: Path
    train: Path
    valid: Path
    test: Path
    hierarchy: Path | None


_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
_SPLITS = {
    "train": (("train",), "no training split (train.jsonl[.gz] or train.json[.gz])"),
    "valid": (("valid", "val"), "no validation split (valid.jsonl[.gz] or val.jsonl[.gz])"),
    "test": (("test",), "no test split (test.jsonl[.gz] or test.json[.gz])"),
}


def _one(directory: Path, found: list[Path]) -> Path | None:
    if len(found) > 1:
        names = ", ".join(sorted(p.name for p in found))
        raise DataError(directory, None, f"ambiguous: found {names}")
    return found[0] if found else None


def find_dataset_files(directory: Path) -> DatasetFiles:
    """Locate the split and hierarchy files of a dataset directory.

    A split ``s`` is ``s.jsonl``, ``s.json`` (either optionally ``.gz``), or, when none of
    those exists, ``*_s.jsonl`` etc. (e.g. ``hiagm_sample_rcv1_train.json``). The validation
    split may be called ``valid`` or ``val``. The hierarchy is ``hierarchy.tsv`` or the one
    ``*.taxonomy`` file, and is optional.

    Raises
    ------
    DataError
        If the directory is missing, a split is missing, or a name matches several files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        problem = "not a directory" if directory.exists() else "dataset directory does not exist"
        raise DataError(directory, None, problem)
    files = [p for p in directory.iterdir() if p.is_file()]
    paths: dict[str, Path] = {}
    for split, (stems, missing) in _SPLITS.items():
        names = {s + x for s in stems for x in _SUFFIXES}
        found = _one(directory, [p for p in files if p.name in names])
        if found is None:
            found = _one(
                directory, [p for p in files if p.name.endswith(tuple(f"_{n}" for n in names))]
            )
        if found is None:
            raise DataError(directory, None, missing)
        paths[split] = found
    hierarchy = directory / "hierarchy.tsv"
    if not hierarchy.is_file():
        hierarchy = _one(directory, [p for p in files if p.name.endswith(".taxonomy")])
    return DatasetFiles(directory, paths["train"], paths["valid"], paths["test"], hierarchy)


@dataclass
class Dataset:
    """A loaded dataset: the three splits, the optional hierarchy and all labels (sorted)."""

    files: DatasetFiles
    train: list[Document]
    valid: list[Document]
    test: list[Document]
    hierarchy: Hierarchy | None
    labels: list[str]
    report: DataReport


def load_dataset(directory: Path | str, *, skip_invalid: bool = False) -> Dataset:
    """Load a dataset directory (see :func:`find_dataset_files` for the file names).

    Parameters
    ----------
    directory : Path or str
    skip_invalid : bool
        Skip invalid document lines, counting them in ``dataset.report``.

    Returns
    -------
    Dataset
        ``labels`` is the sorted union of the hierarchy's labels and every label seen in
        any split; labels seen but not in the hierarchy are counted in the report.

    Raises
    ------
    DataError
        For any problem in the files, or a training split with no documents.
    """
    files = find_dataset_files(Path(directory).expanduser())
    report = DataReport()
    hierarchy = read_hierarchy(files.hierarchy, report) if files.hierarchy else None
    splits = [
        read_documents(p, skip_invalid=skip_invalid, report=report)
        for p in (files.train, files.valid, files.test)
    ]
    if not splits[0]:
        raise DataError(files.train, None, "training split has no documents")
    seen = {label for docs in splits for d in docs for label in d.labels}
    known = set(hierarchy.labels) if hierarchy else seen
    report.labels_missing_from_hierarchy = len(seen - known)
    return Dataset(files, *splits, hierarchy, sorted(seen | known), report)


def bundled_dataset_path() -> Path:
    """The directory of the debtags dataset shipped inside the package."""
    return Path(__file__).parent / "debtags"


# deprecated aliases; inference.py moves to the public names
_BadLine = BadLine
_decode = decode
_parse_document = parse_document
