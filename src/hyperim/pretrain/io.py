"""Embeddings in the word2vec text format, with a JSON sidecar for the product-of-balls shape.

The text file is what gensim's ``KeyedVectors.load_word2vec_format(..., binary=False)`` reads::

    <count> <dim>
    <name> <x_1> <x_2> ... <x_dim>
    ...

Values are written with Python's ``repr`` of the value as a double (the shortest string that
reads back to the same double; a float32 value is written exactly, e.g. ``0.10000000149011612``),
so a save/load round trip is exact. A point of shape ``(n_balls, ball_dim)`` is flattened ball
after ball. :func:`save_embeddings` always writes the sidecar ``<file>.json``, which records the
shape and how to read the points::

    {"model": "poincare", "n_balls": 75, "ball_dim": 2, "aggregate": "sum", "dtype": "float32"}

A file without a sidecar (gensim's, say) loads as one ball of the header's dimension, float64.

Names are single tokens in this format: whitespace inside a name (spaces, tabs) is written
as ``_``. Two names that become equal that way, or an empty name, are refused on save.

:func:`load_embeddings` checks everything and raises :class:`~hyperim.errors.DataError`,
naming the file and line, for a missing file, a bad header, a wrong number of columns, a
non-numeric or non-finite value, a repeated name, a count that does not match the header, a
point on or outside the unit Poincaré ball, or a sidecar that does not match the dimension.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from hyperim.atomic import atomic_output, atomic_write_text
from hyperim.errors import DataError, HyperIMError

_WHITESPACE = re.compile(r"\s")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def sidecar_path(path: str | Path) -> Path:
    """``<file>.json``, the sidecar of the embedding file ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _clean_name(name: str) -> str:
    return _WHITESPACE.sub("_", name)


def save_embeddings(
    path: str | Path,
    names: Sequence[str],
    points: torch.Tensor,
    aggregate: str | None = "sum",
    model: str = "poincare",
) -> None:
    """Write ``points`` (``(n, n_balls, ball_dim)`` or ``(n, dim)``) under ``names``.

    Writes ``path`` (word2vec text) and its sidecar ``<path>.json``. Whitespace in names
    becomes ``_``; names that are empty or collide after that raise
    :class:`~hyperim.errors.HyperIMError`.
    """
    pts = points.detach().cpu()
    if pts.dim() == 2:
        pts = pts.unsqueeze(1)
    if pts.dim() != 3:
        raise HyperIMError(f"points must have shape (n, n_balls, ball_dim), got {tuple(pts.shape)}")
    n, n_balls, ball_dim = pts.shape
    if len(names) != n:
        raise HyperIMError(f"{len(names)} names for {n} points")
    clean = [_clean_name(str(name)) for name in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(clean):
        if not name:
            raise HyperIMError(f"name {i} is empty")
        if name in seen:
            raise HyperIMError(
                f"names {names[seen[name]]!r} and {names[i]!r} are both written as {name!r}"
            )
        seen[name] = i
    dtype = "float32" if pts.dtype in (torch.float16, torch.bfloat16, torch.float32) else "float64"
    values = pts.reshape(n, n_balls * ball_dim).to(torch.float64).tolist()
    path = Path(path)
    meta: dict[str, Any] = {
        "model": model,
        "n_balls": n_balls,
        "ball_dim": ball_dim,
        "aggregate": aggregate,
        "dtype": dtype,
    }
    # both atomic, the sidecar first: a full disk leaves the previous table (or none), whole
    side = sidecar_path(path)
    had_sidecar = side.exists()
    atomic_write_text(side, json.dumps(meta, indent=1) + "\n")
    try:
        with atomic_output(path, compress=False) as f:
            f.write(f"{n} {n_balls * ball_dim}\n".encode())
            for name, row in zip(clean, values, strict=True):
                f.write((name + " " + " ".join(map(repr, row)) + "\n").encode("utf-8"))
    except BaseException:
        if not had_sidecar:  # no sidecar without its table
            side.unlink(missing_ok=True)
        raise


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The sidecar of ``path`` as a dict, or ``None`` if there is none."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(side, None, f"not UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise DataError(side, err.lineno, f"invalid JSON: {err.msg}") from None
    if not isinstance(meta, dict):
        raise DataError(side, 1, "expected a JSON object")
    for key in ("n_balls", "ball_dim"):
        if key in meta and (
            not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 1
        ):
            raise DataError(side, 1, f"{key!r} must be a positive integer, got {meta[key]!r}")
    if meta.get("dtype", "float64") not in _DTYPES:
        raise DataError(side, 1, f"'dtype' must be 'float32' or 'float64', got {meta['dtype']!r}")
    return meta


def load_embeddings(
    path: str | Path, dtype: torch.dtype | None = None
) -> tuple[list[str], torch.Tensor]:
    """Read a word2vec text file written by :func:`save_embeddings` (or by gensim).

    Parameters
    ----------
    path : str or Path
        The text file; its sidecar ``<path>.json``, if present, gives the shape
        (``n_balls``, ``ball_dim``) and dtype. Without one the points are one ball of the
        header's dimension, float64.
    dtype : torch.dtype, optional
        Overrides the sidecar's dtype.

    Returns
    -------
    names : list of str
    points : torch.Tensor
        ``(n, n_balls, ball_dim)``, every ball point of norm ``< 1``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found")
    meta = read_sidecar(path) or {}
    with open(path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise DataError(path, 1, "empty file; expected a header line '<count> <dim>'")

    def text(lineno: int) -> str:
        try:
            return lines[lineno - 1].decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            raise DataError(path, lineno, f"not UTF-8 ({err.reason})") from None

    header = text(1).split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise DataError(path, 1, f"expected a header '<count> <dim>', got {text(1)[:60]!r}")
    count, dim = int(header[0]), int(header[1])
    if dim < 1:
        raise DataError(path, 1, "dimension must be at least 1")
    n_balls = meta.get("n_balls", 1)
    ball_dim = meta.get("ball_dim", dim // n_balls if dim % n_balls == 0 else dim)
    if n_balls * ball_dim != dim:
        raise DataError(
            path,
            1,
            f"header dimension {dim} does not match the sidecar {sidecar_path(path).name} "
            f"shape n_balls {n_balls} × ball_dim {ball_dim}",
        )
    if len(lines) - 1 > count:
        raise DataError(path, count + 2, f"more items than the header's count {count}")
    if len(lines) - 1 < count:
        raise DataError(path, 1, f"header says {count} items, the file has {len(lines) - 1}")

    names: list[str] = []
    rows: list[list[float]] = []
    seen: dict[str, int] = {}
    for lineno in range(2, count + 2):
        parts = text(lineno).split()
        if len(parts) != dim + 1:
            raise DataError(
                path,
                lineno,
                f"expected {dim + 1} columns (name and {dim} values), found {len(parts)}",
            )
        name = parts[0]
        if name in seen:
            raise DataError(path, lineno, f"name {name!r} repeats line {seen[name]}")
        seen[name] = lineno
        try:
            row = [float(v) for v in parts[1:]]
        except ValueError:
            bad = next(v for v in parts[1:] if not _is_float(v))
            raise DataError(path, lineno, f"non-numeric value {bad[:30]!r}") from None
        if not all(math.isfinite(v) for v in row):
            raise DataError(path, lineno, "non-finite value (nan or inf)")
        names.append(name)
        rows.append(row)
    out_dtype = dtype or _DTYPES[meta.get("dtype", "float64")]
    points = torch.tensor(rows, dtype=torch.float64).view(count, n_balls, ball_dim).to(out_dtype)
    norms = points.to(torch.float64).norm(dim=-1)  # (count, n_balls), of the values returned
    outside = (norms >= 1.0).nonzero()
    if outside.numel():
        i, b = (int(v) for v in outside[0])
        where = f" in ball {b}" if n_balls > 1 else ""
        raise DataError(
            path, i + 2, f"point outside the Poincaré ball (norm {float(norms[i, b]):.9g}{where})"
        )
    return names, points


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
