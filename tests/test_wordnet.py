"""The WordNet reader: a hand-written miniature database, bad input, and the real WordNet 3.0."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hyperim.data.wordnet import WordNet, default_wordnet_dir
from hyperim.errors import DataError, HyperIMError

LICENCE = "  1 This software and database is being provided ... (licence header)\n"

# entity <- animal <- dog (2 lemmas); animal <- cat; 'dog' also names a second synset (frump),
# whose hypernym is person; einstein is an instance of person.
DATA = [
    "00000001 03 n 01 entity 0 000 | that which exists",
    "00000002 03 n 01 animal 0 001 @ 00000001 n 0000 | a living organism",
    "00000003 05 n 02 dog 0 Canis_familiaris 0 001 @ 00000002 n 0000 | a domestic canine",
    "00000004 05 n 01 cat 0 001 @ 00000002 n 0000 | a feline",
    "00000005 18 n 02 frump 0 dog 1 001 @ 00000006 n 0000 | a dull unattractive woman",
    "00000006 18 n 01 person 0 002 @ 00000001 n 0000 ~i 00000007 n 0000 | a human being",
    "00000007 18 n 01 Einstein 0 001 @i 00000006 n 0000 | a physicist",
]
INDEX = [
    "animal n 1 1 @ 1 0 00000002",
    "canis_familiaris n 1 1 @ 1 0 00000003",
    "cat n 1 1 @ 1 0 00000004",
    "dog n 2 1 @ 2 1 00000003 00000005",
    "einstein n 1 1 @i 1 0 00000007",
    "entity n 1 0 1 0 00000001",
    "frump n 1 1 @ 1 0 00000005",
    "person n 1 2 @ ~i 1 0 00000006",
]


def write_db(folder: Path, data: list[str] = DATA, index: list[str] = INDEX) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.noun").write_text(LICENCE + "".join(line + "  \n" for line in data))
    (folder / "index.noun").write_text(LICENCE + "".join(line + "  \n" for line in index))
    return folder


def test_miniature_database(tmp_path: Path) -> None:
    wn = WordNet.load(write_db(tmp_path / "wn"))
    assert len(wn) == 7
    assert wn.synsets("Dog") == ["dog.n.01", "frump.n.01"]
    assert wn.lemmas("dog.n.01") == ["dog", "canis_familiaris"]
    assert wn.hypernyms("einstein.n.01") == ["person.n.01"]  # instance hypernym
    assert wn.hyponyms("animal.n.01") == ["dog.n.01", "cat.n.01"]
    assert wn.hypernym_closure("dog.n.01") == {"animal.n.01", "entity.n.01"}
    assert wn.closure_pairs("animal.n.01") == [
        ("animal.n.01", "cat.n.01"),
        ("animal.n.01", "dog.n.01"),
    ]
    pairs = wn.closure_pairs()
    assert ("entity.n.01", "einstein.n.01") in pairs and len(pairs) == 10


def test_missing_directory_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(HyperIMError, match="WordNet directory not found"):
        WordNet.load(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "index.noun").write_text("")
    with pytest.raises(HyperIMError, match=r"data\.noun: WordNet file not found"):
        WordNet.load(tmp_path / "half")


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    bad = [*DATA[:2], "00000003 05 n zz dog", *DATA[3:]]
    with pytest.raises(DataError, match=r"data.noun:4: not a data.noun line"):
        WordNet.load(write_db(tmp_path / "a", data=bad))
    bad_index = [*INDEX[:1], "canis_familiaris n 2 1 @ 1 0 00000003", *INDEX[2:]]
    with pytest.raises(DataError, match=r"index.noun:3: expected 2 synset offsets, found 1"):
        WordNet.load(write_db(tmp_path / "b", index=bad_index))
    with pytest.raises(HyperIMError, match="unknown WordNet noun synset"):
        WordNet.load(write_db(tmp_path / "c")).lemmas("unicorn.n.01")


def real_wordnet() -> WordNet:
    folder = default_wordnet_dir()
    if not (folder / "data.noun").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{folder}: WordNet is missing on CI (.ci/run installs wordnet-base)")
        pytest.skip(f"{folder}: WordNet 3.0 not installed (Debian package wordnet-base)")
    return WordNet.load(folder)


def test_real_wordnet_matches_published_closure_sizes() -> None:
    wn = real_wordnet()
    assert len(wn) == 82_115  # WordNet 3.0 noun synsets
    assert wn.synsets("dog")[:2] == ["dog.n.01", "frump.n.01"]  # NLTK's names
    assert "mammal.n.01" in wn.hypernym_closure("dog.n.01")
    mammals = wn.closure_pairs("mammal.n.01")
    assert len({node for pair in mammals for node in pair}) == 1_182
    # Nickel & Kiela's noun closure has 743,241 hypernymy pairs (instance hypernyms included).
    assert len(wn.closure_pairs()) == 743_241
