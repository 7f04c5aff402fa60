"""Tests for hyperim.data: reading, errors, hierarchy, vocabulary and label index."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from hyperim.data import (
    DataReport,
    Document,
    LabelIndex,
    Vocabulary,
    bundled_dataset_path,
    find_dataset_files,
    load_dataset,
    read_documents,
    read_hierarchy,
    token_length_stats,
    tokenize,
)
from hyperim.errors import DataError

RCV1 = Path("/work/shared/datasets/rcv1-sample")

DOC = json.dumps({"text": "Hello world", "labels": ["a", "a::b"]})


def write(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def make_dataset(root: Path, valid_name: str = "valid.jsonl", hierarchy: bool = True) -> Path:
    root.mkdir(exist_ok=True)
    write(root / "train.jsonl.gz", [DOC, json.dumps({"text": "x", "labels": ["c"]})])
    write(root / valid_name, [DOC])
    write(root / "test.json", [json.dumps({"token": ["Hi"], "label": ["a"]})])
    if hierarchy:
        write(root / "hierarchy.tsv", ["a\ta::b"])
    return root


def raises_at(path: Path, line: int | None, text: str, func, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    msg = str(info.value)
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert msg.startswith(where), msg
    assert text in msg and "\n" not in msg, msg
    return info.value


def test_tokenize():
    assert tokenize("Python 3.11 bindings for C++ (libfoo-dev).") == [
        "python",
        "3.11",
        "bindings",
        "for",
        "c++",
        "libfoo-dev",
    ]
    assert tokenize("Don't use x86_64, C# or g++!") == ["don't", "use", "x86_64", "c#", "or", "g++"]
    assert tokenize("  ...  ") == []


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz"])
def test_both_formats_plain_and_gz(tmp_path, name):
    path = write(
        tmp_path / name,
        [
            json.dumps({"text": "Foo BAR", "labels": ["x"], "id": "p1"}),
            "",
            json.dumps({"token": ["Foo", "Bar-Baz"], "label": ["y", "z"]}),
        ],
    )
    docs = read_documents(path)
    assert docs == [
        Document(["foo", "bar"], ["x"], "p1"),
        Document(["foo", "bar-baz"], ["y", "z"], None),
    ]


def test_harmless_oddities_counted(tmp_path):
    path = write(
        tmp_path / "d.jsonl",
        [
            json.dumps({"text": "!!", "labels": ["a"]}),
            json.dumps({"text": "t", "labels": []}),
            json.dumps({"text": "t", "labels": ["a", "b", "a"]}),
        ],
    )
    report = DataReport()
    docs = read_documents(path, report=report)
    assert docs[2].labels == ["a", "b"]
    assert (report.empty_documents, report.unlabelled_documents, report.duplicate_labels) == (
        1,
        1,
        1,
    )
    assert len(report.warnings()) == 3


BAD_LINES = [
    ("{not json", "bad JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"labels": ["a"]}), "missing 'text'"),
    (json.dumps({"text": "t"}), "missing 'labels'"),
    (json.dumps({"text": 3, "labels": ["a"]}), "'text' must be a string"),
    (json.dumps({"token": "abc", "label": ["a"]}), "'token' must be a list of strings"),
    (json.dumps({"text": "t", "labels": "a"}), "'labels' must be a list of strings"),
    (json.dumps({"token": ["t"], "label": [1]}), "'label' must be a list of strings"),
    (b'{"text": "caf\xe9", "labels": []}', "not valid UTF-8"),
]


@pytest.mark.parametrize("bad, problem", BAD_LINES)
def test_invalid_line_raises_with_line_number(tmp_path, bad, problem):
    path = write(tmp_path / "train.jsonl", [DOC, "", bad, DOC])
    raises_at(path, 3, problem, read_documents, path)


def test_skip_invalid_counts(tmp_path):
    path = write(tmp_path / "d.jsonl.gz", [DOC] + [bad for bad, _ in BAD_LINES] * 2 + [DOC])
    report = DataReport()
    docs = read_documents(path, skip_invalid=True, report=report)
    assert len(docs) == 2
    assert report.skipped_lines == 2 * len(BAD_LINES)
    assert len(report.messages) == 10
    assert report.messages[0].startswith(f"{path}:2: bad JSON")
    assert report.warnings()[0].startswith(f"{2 * len(BAD_LINES)} invalid lines skipped (first: ")


def test_unreadable_files(tmp_path):
    raises_at(tmp_path / "nope.jsonl", None, "cannot open", read_documents, tmp_path / "nope.jsonl")
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"not gzip")
    raises_at(path, 1, "cannot read", read_documents, path)


def test_hierarchy_basics(tmp_path):
    path = write(
        tmp_path / "h.taxonomy",
        [
            "Root\tA\tB",
            "A\tA1\tA2",
            "",
            "B\tA1",
            "A1\tX",
            "A\tA2",
            "C\tC1",
        ],
    )
    report = DataReport()
    h = read_hierarchy(path, report)
    assert report.duplicate_edges == 1
    assert h.labels == ["A", "A1", "A2", "B", "C", "C1", "X"]
    assert h.roots == ["A", "B", "C"]
    assert ("Root", "A") not in h.edges and len(h.edges) == 5
    assert h.parents("A1") == ["A", "B"] and h.children("A") == ["A1", "A2"]
    assert [h.depth(x) for x in ("A", "A1", "X", "unknown")] == [0, 1, 2, 0]
    assert h.ancestors("X") == {"A", "B", "A1"} and h.ancestors("unknown") == set()
    assert h.transitive_closure() == sorted(
        [
            ("A", "A1"),
            ("A", "A2"),
            ("B", "A1"),
            ("A1", "X"),
            ("A", "X"),
            ("B", "X"),
            ("C", "C1"),
        ]
    )


def test_hierarchy_cycle(tmp_path):
    path = write(tmp_path / "hierarchy.tsv", ["Root\ta", "a\tb", "x\ty", "b\tc", "c\ta"])
    raises_at(path, 5, "cycle in hierarchy: a -> b -> c -> a", read_hierarchy, path)
    path = write(tmp_path / "hierarchy.tsv", ["a\ta"])
    raises_at(path, 1, "a -> a", read_hierarchy, path)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("lonely", "expected a parent and at least one child"),
        ("a\tRoot", "'Root' cannot be a child"),
        (b"a\t\xff", "not valid UTF-8"),
    ],
)
def test_hierarchy_line_errors(tmp_path, line, problem):
    path = write(tmp_path / "hierarchy.tsv", ["a\tb", line])
    raises_at(path, 2, problem, read_hierarchy, path)


def test_load_dataset_val_naming_and_missing_labels(tmp_path):
    ds = load_dataset(make_dataset(tmp_path / "d", valid_name="val.jsonl"))
    assert ds.files.valid.name == "val.jsonl"
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [2, 1, 1]
    assert ds.labels == ["a", "a::b", "c"]
    assert ds.report.labels_missing_from_hierarchy == 1
    assert ds.test[0].tokens == ["hi"]
    assert load_dataset(make_dataset(tmp_path / "n", hierarchy=False)).hierarchy is None


def test_dataset_errors(tmp_path):
    missing = tmp_path / "missing"
    raises_at(missing, None, "does not exist", load_dataset, missing)
    root = make_dataset(tmp_path / "d")
    (root / "test.json").unlink()
    raises_at(root, None, "no test split", find_dataset_files, root)
    write(root / "test.json", [DOC])
    (root / "train.jsonl.gz").unlink()
    raises_at(
        root, None, "no training split (train.jsonl[.gz] or train.json[.gz])", load_dataset, root
    )
    write(root / "train.jsonl", [""])
    raises_at(root / "train.jsonl", None, "no documents", load_dataset, root)
    write(root / "train.json", [DOC])
    raises_at(root, None, "ambiguous: found train.json, train.jsonl", load_dataset, root)
    (root / "train.jsonl").unlink()
    write(root / "valid.jsonl", [DOC, "oops"])
    raises_at(root / "valid.jsonl", 2, "bad JSON", load_dataset, root)
    assert load_dataset(root, skip_invalid=True).report.skipped_lines == 1


def test_rcv1_sample():
    ds = load_dataset(RCV1)
    assert ds.files.train.name == "hiagm_sample_rcv1_train.json"
    assert ds.files.valid.name == "hiagm_sample_rcv1_val.json"
    assert len(ds.hierarchy.labels) == 103 and len(ds.labels) == 103
    assert ds.hierarchy.roots == ["CCAT", "ECAT", "GCAT", "MCAT"]
    assert min(len(s) for s in (ds.train, ds.valid, ds.test)) > 0
    assert ds.report.warnings() == []


def test_bundled_dataset():
    ds = load_dataset(bundled_dataset_path())
    assert [len(ds.train), len(ds.valid), len(ds.test)] == [21305, 2991, 5999]
    assert len(ds.labels) == 608
    assert ds.report.warnings() == []
    stats = token_length_stats(ds.train)
    assert stats["median"] == 54 and stats["p99"] == 213


def test_vocabulary(tmp_path):
    docs = [["b", "a", "c"], ["a", "b", "d"], ["a", "<unk>"]]
    vocab = Vocabulary.build(docs)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert Vocabulary.build(docs, min_count=2).tokens == ["<pad>", "<unk>", "a", "b"]
    small = Vocabulary.build(docs, max_size=3)
    assert len(small) == 3 and small.tokens[2] == "a"
    assert vocab.encode(["a", "zzz", "d", "b"], max_len=3) == [2, Vocabulary.UNK, 5]
    assert vocab.token_to_id("zzz") == Vocabulary.UNK and vocab.token_to_id("<pad>") == 0
    path = tmp_path / "vocab.json"
    small.save(path)
    loaded = Vocabulary.load(path)
    assert (loaded.tokens, loaded.min_count, loaded.max_size) == (small.tokens, 1, 3)
    path.write_text('{"tokens": ["a"]}')
    raises_at(path, None, "must start with", Vocabulary.load, path)
    path.write_text("{")
    raises_at(path, None, "bad JSON", Vocabulary.load, path)


def test_label_index(tmp_path):
    index = LabelIndex(["a", "b", "c"])
    assert len(index) == 3 and index.index("c") == 2
    assert index.encode(["c", "x", "a", "x"]) == [2, 0]
    assert index.unknown_labels == {"x": 2}
    path = tmp_path / "labels.json"
    index.save(path)
    assert LabelIndex.load(path).labels == ["a", "b", "c"]
    path.write_text('{"labels": [1]}')
    raises_at(path, None, "list of strings", LabelIndex.load, path)
