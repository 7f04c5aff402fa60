"""WordNet 3.0 nouns read straight from the database files (``index.noun``, ``data.noun``).

Debian's ``wordnet-base`` installs the files in ``/usr/share/wordnet`` but not the ``lexnames``
file that NLTK's reader needs (and NLTK >= 3.9 refuses paths outside its own data folders), so
this module reads the documented ``wndb(5)`` format itself. Only nouns are read: hypernymy is a
noun relation, and both the hierarchy benchmark (Nickel & Kiela's noun and mammal closures) and
the word refinement of Eq. (4) use noun hypernyms only.

Synsets are named the way NLTK names them, ``<first lemma>.n.<sense number>`` (``dog.n.01``),
where the sense number is the synset's position in the first lemma's ``index.noun`` entry.

Format of a ``data.noun`` line (``wndb(5)``)::

    offset lex_filenum ss_type w_cnt(hex) [word lex_id(hex)]... p_cnt [ptr offset pos src/tgt]... | gloss

Format of an ``index.noun`` line::

    lemma pos synset_cnt p_cnt [ptr_symbol]... sense_cnt tagsense_cnt [synset_offset]...

Lines that begin with a space are the licence header.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from hyperim.errors import DataError, HyperIMError

#: Where Debian's ``wordnet-base`` puts the database; ``HYPERIM_WORDNET`` overrides it.
DEFAULT_WORDNET_DIR = "/usr/share/wordnet"

_HYPERNYM_POINTERS = ("@", "@i")  # hypernym, instance hypernym


def default_wordnet_dir() -> Path:
    """``$HYPERIM_WORDNET`` if set, else ``/usr/share/wordnet``."""
    return Path(os.environ.get("HYPERIM_WORDNET", DEFAULT_WORDNET_DIR))


class WordNet:
    """The WordNet noun hierarchy: lemmas, synsets, hypernym pointers and glosses.

    Build it with :meth:`load`. Synsets are identified by their NLTK-style names.
    """

    def __init__(
        self,
        lemma_offsets: dict[str, list[int]],
        synset_lemmas: dict[int, list[str]],
        synset_hypernyms: dict[int, list[int]],
        synset_glosses: dict[int, str] | None = None,
    ) -> None:
        self._lemma_offsets = lemma_offsets
        self._lemmas = synset_lemmas
        self._hypernyms = synset_hypernyms
        self._glosses = synset_glosses if synset_glosses is not None else {}
        self._depth: dict[int, int] | None = None  # filled on the first depth() call
        self._name: dict[int, str] = {}
        for offset, lemmas in synset_lemmas.items():
            first = lemmas[0]
            senses = lemma_offsets.get(first, [])
            number = senses.index(offset) + 1 if offset in senses else 1
            self._name[offset] = f"{first}.n.{number:02d}"
        self._offset = {name: offset for offset, name in self._name.items()}
        self._hyponyms: dict[int, list[int]] = {}
        for child, parents in synset_hypernyms.items():
            for parent in parents:
                self._hyponyms.setdefault(parent, []).append(child)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def files(path: str | Path | None = None) -> tuple[Path, Path]:
        """``index.noun`` and ``data.noun`` in ``path`` (default :func:`default_wordnet_dir`),
        checked to exist (a cheap check to run before any long work that will need them).

        Raises
        ------
        HyperIMError
            If the directory or one of the two files is missing (one line, with the path).
        """
        directory = Path(path) if path is not None else default_wordnet_dir()
        if not directory.is_dir():
            raise HyperIMError(
                f"{directory}: WordNet directory not found (install Debian's wordnet-base, "
                "or pass the folder that holds index.noun and data.noun)"
            )
        index_path, data_path = directory / "index.noun", directory / "data.noun"
        for needed in (index_path, data_path):
            if not needed.is_file():
                raise HyperIMError(f"{needed}: WordNet file not found")
        return index_path, data_path

    @classmethod
    def load(cls, path: str | Path | None = None) -> WordNet:
        """Read ``index.noun`` and ``data.noun`` from ``path`` (default :func:`default_wordnet_dir`).

        Raises
        ------
        HyperIMError
            If the directory or one of the two files is missing (one line, with the path).
        DataError
            If a line of either file cannot be parsed (file and line number).
        """
        index_path, data_path = cls.files(path)
        lemma_offsets = _read_index(index_path)
        synset_lemmas, synset_hypernyms, synset_glosses = _read_data(data_path)
        return cls(lemma_offsets, synset_lemmas, synset_hypernyms, synset_glosses)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._lemmas)

    def all_synsets(self) -> list[str]:
        """Every noun synset name, in file order."""
        return list(self._name.values())

    def synsets(self, lemma: str) -> list[str]:
        """Noun synsets of ``lemma`` (case-insensitive; spaces may be ``_``), most frequent first."""
        key = lemma.strip().lower().replace(" ", "_")
        return [self._name[o] for o in self._lemma_offsets.get(key, [])]

    def lemmas(self, synset: str) -> list[str]:
        """The synset's lemma names, lowercase, with ``_`` for spaces."""
        return list(self._lemmas[self._lookup(synset)])

    def gloss(self, synset: str) -> str:
        """The synset's gloss: the text after ``" | "`` on its ``data.noun`` line (definition,
        then any quoted examples, ``;``-separated), stripped; ``""`` if the line has none."""
        return self._glosses.get(self._lookup(synset), "")

    def depth(self, synset: str) -> int:
        """Length of the shortest hypernym path (instance hypernyms included) from ``synset``
        up to a synset without hypernyms; in WordNet 3.0 that is ``entity.n.01`` (depth 0),
        the one noun root. ``-1`` for a synset no root reaches (a hypernym cycle only)."""
        if self._depth is None:
            depth = {o: 0 for o in self._lemmas if not self._hypernyms.get(o)}
            queue = deque(depth)
            while queue:
                offset = queue.popleft()
                for child in self._hyponyms.get(offset, []):
                    if child not in depth:
                        depth[child] = depth[offset] + 1
                        queue.append(child)
            self._depth = depth
        return self._depth.get(self._lookup(synset), -1)

    def hypernyms(self, synset: str) -> list[str]:
        """Direct hypernyms, instance hypernyms included."""
        return [self._name[o] for o in self._hypernyms.get(self._lookup(synset), [])]

    def hyponyms(self, synset: str) -> list[str]:
        """Direct hyponyms, instance hyponyms included."""
        return [self._name[o] for o in self._hyponyms.get(self._lookup(synset), [])]

    def hypernym_closure(self, synset: str) -> set[str]:
        """All ancestors of ``synset`` along hypernym pointers (itself excluded)."""
        return {self._name[o] for o in self._ancestors(self._lookup(synset))}

    def closure_pairs(self, root: str | None = None) -> list[tuple[str, str]]:
        """``(ancestor, descendant)`` pairs of the hypernym transitive closure.

        With ``root`` (for example ``"mammal.n.01"``) only synsets under ``root`` and ``root``
        itself take part, as in Nickel & Kiela's mammal closure; with ``None``, all nouns.
        Sorted, without self-pairs.
        """
        if root is None:
            nodes = set(self._lemmas)
        else:
            top = self._lookup(root)
            nodes = {top}
            stack = [top]
            while stack:
                for child in self._hyponyms.get(stack.pop(), []):
                    if child not in nodes:
                        nodes.add(child)
                        stack.append(child)
        pairs = {
            (self._name[a], self._name[d]) for d in nodes for a in self._ancestors(d) if a in nodes
        }
        return sorted(pairs)

    # ------------------------------------------------------------------ helpers
    def _lookup(self, synset: str) -> int:
        try:
            return self._offset[synset]
        except KeyError:
            raise HyperIMError(f"unknown WordNet noun synset {synset!r}") from None

    def _ancestors(self, offset: int) -> set[int]:
        found: set[int] = set()
        stack = list(self._hypernyms.get(offset, []))
        while stack:
            parent = stack.pop()
            if parent not in found:
                found.add(parent)
                stack.extend(self._hypernyms.get(parent, []))
        return found


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if raw.startswith(b" ") or not raw.strip():
                continue  # licence header
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(path, lineno, "not valid UTF-8") from None


def _read_index(path: Path) -> dict[str, list[int]]:
    lemma_offsets: dict[str, list[int]] = {}
    for lineno, line in _lines(path):
        fields = line.split()
        try:
            lemma, p_cnt = fields[0], int(fields[3])
            synset_cnt = int(fields[2])
            offsets = [int(x) for x in fields[4 + p_cnt + 2 :]]
        except (IndexError, ValueError):
            raise DataError(path, lineno, "not an index.noun line") from None
        if len(offsets) != synset_cnt:
            raise DataError(
                path, lineno, f"expected {synset_cnt} synset offsets, found {len(offsets)}"
            )
        lemma_offsets[lemma.lower()] = offsets
    return lemma_offsets


def _read_data(
    path: Path,
) -> tuple[dict[int, list[str]], dict[int, list[int]], dict[int, str]]:
    synset_lemmas: dict[int, list[str]] = {}
    synset_hypernyms: dict[int, list[int]] = {}
    synset_glosses: dict[int, str] = {}
    for lineno, line in _lines(path):
        head, bar, gloss = line.partition(" | ")
        fields = head.split()
        try:
            offset = int(fields[0])
            w_cnt = int(fields[3], 16)
            words = fields[4 : 4 + 2 * w_cnt : 2]
            pos = 4 + 2 * w_cnt
            p_cnt = int(fields[pos])
            pointers = fields[pos + 1 : pos + 1 + 4 * p_cnt]
        except (IndexError, ValueError):
            raise DataError(path, lineno, "not a data.noun line") from None
        if len(words) != w_cnt or len(pointers) != 4 * p_cnt:
            raise DataError(path, lineno, "truncated data.noun line")
        synset_lemmas[offset] = [w.lower() for w in words]
        hypers = [
            int(pointers[i + 1])
            for i in range(0, len(pointers), 4)
            if pointers[i] in _HYPERNYM_POINTERS and pointers[i + 2] == "n"
        ]
        if hypers:
            synset_hypernyms[offset] = hypers
        if bar:
            synset_glosses[offset] = gloss.strip()
    return synset_lemmas, synset_hypernyms, synset_glosses
