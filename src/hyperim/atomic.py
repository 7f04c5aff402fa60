"""Atomic writes: a file (or folder) appears under its name complete, or not at all.

Everything hyperim writes that a later step reads (checkpoints, run files, saved models,
prediction files, embedding tables) goes through here: a temporary sibling is written,
flushed to disk and renamed over the target, so a crash or ``kill -9`` mid-write leaves the
previous version (or nothing), never a half-written file.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | Path, compress: bool | None = None) -> Iterator[IO[bytes]]:
    """See :func:`_atomic_output`; an OSError without a file name (a full disk, say) gets
    ``path``, so the one-line message says where."""
    try:
        with _atomic_output(path, compress) as f:
            yield f
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


@contextmanager
def _atomic_output(path: str | Path, compress: bool | None = None) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``path`` only if the ``with`` block completes.

    Writes to a hidden temporary sibling (gzip-compressed when ``compress``, by default when
    ``path`` ends in ``.gz``), flushes it to disk and renames it over ``path``; on any error
    the temporary file is removed and ``path`` is left as it was. A ``path`` that is a device
    or a pipe (``/dev/stdout``, a FIFO) is written directly instead: it cannot be replaced.
    """
    path = Path(path)
    compress = path.name.endswith(".gz") if compress is None else compress
    if path.exists() and not path.is_file() and not path.is_dir():
        # a device or a pipe (/dev/stdout, a FIFO): written in place, never renamed over
        with open(path, "wb") as raw:
            if compress:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                    yield f  # type: ignore[misc]
            else:
                yield raw
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make outputs private
    try:
        with os.fdopen(fd, "wb") as raw:
            if compress:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                    yield f  # type: ignore[misc]
            else:
                yield raw
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(f)`` into a temporary sibling of ``path``, fsync, rename over ``path``."""
    with atomic_output(path, compress=False) as f:
        write(f)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A folder filled inside the ``with`` block that replaces ``path`` only when complete.

    Yields a temporary sibling folder; on success the previous ``path`` (if any) is moved
    aside, the new folder renamed into place, and the old one deleted. A crash between the two
    renames leaves the old folder as ``.<name>.old-*`` and no ``path``; nothing is ever half
    written under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # a folder made by mkdir, not mkdtemp's private 0700
    try:
        yield tmp
        for child in tmp.iterdir():  # the files' contents are on disk before the rename
            if child.is_file():
                with open(child, "rb") as f:
                    os.fsync(f.fileno())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_output(path: str | Path, flag: str, folder: bool = False) -> None:
    """Fail early, in one line, when ``path`` cannot be written: it is a folder where a file
    is wanted (or a file where a folder is), it lies under a file, or the nearest existing
    folder above it is not writable. Called before any expensive work."""
    from hyperim.errors import HyperIMError

    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise HyperIMError(f"{flag} {path}: is a file; give a folder")
        if not folder and path.is_dir():
            raise HyperIMError(f"{flag} {path}: is a folder; give a file name")
    for parent in path.parents if not path.is_dir() else [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise HyperIMError(f"{flag} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise HyperIMError(f"{flag} {path}: {parent} is not writable")
            return
