"""Synthetic hierarchical multi-label datasets, for exercising scale where real corpora can't go.

:func:`generate_synthetic` writes a dataset directory that :func:`hyperim.data.load_dataset`
reads (``train/valid/test.jsonl[.gz]`` + ``hierarchy.tsv``). The generative story makes the
text carry the labels and the hierarchy matter:

* **Label tree.** ``labels`` labels on ``depth`` levels whose sizes grow geometrically
  (ratio ``branching``, or derived so ``g + g² + … + g^depth = labels``). Every label of a
  level picks its parent on the level above with Zipf weights over a random order of the
  parents, so fan-out is power-law-ish: a few huge families, many small ones, and some
  labels with no children at all (leaves above the bottom level). Labels are named
  ``L<level>_<index>`` (``L1_*`` are the top level), siblings numbered consecutively.
* **Label frequencies.** Leaves get Zipf popularities (exponent ``label_zipf``) over a random
  order. A document picks ``1 + Poisson(labels_per_doc - 1)`` leaves by popularity; its label
  set is those leaves plus all their ancestors (``ancestor_closed``, like RCV1 and debtags),
  or just the leaves (like WikiLSHTC).
* **Words.** The vocabulary is pronounceable pseudo-words (``"kobe"``, ``"tisamu"``); the
  first tenth are background words with Zipf frequencies, the rest a pool from which every
  label draws ``topic_words`` topic words (a word may serve several labels, so single words
  are ambiguous). A document has ``~ LogNormal`` length with mean ``doc_length``; a
  ``topic_fraction`` share of its tokens are topic words of labels drawn uniformly from the
  chosen leaves *and their ancestors*, the rest background noise. Siblings therefore share
  their ancestors' words, and a leaf is recognised by its own words on top of its family's.

Generation is vectorised with numpy over chunks of documents and streamed to disk, so memory
does not grow with the number of documents; the output is byte-identical for a given config
(gzip headers carry no time stamp). 36,504 labels × 20,000 documents take a few seconds.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from hyperim.atomic import check_output
from hyperim.errors import HyperIMError, check_all

CHUNK_DOCS = 2048  # documents generated and written at a time
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SPLITS = ("train", "valid", "test")


@dataclass
class SyntheticConfig:
    """What :func:`generate_synthetic` makes.

    Attributes
    ----------
    labels : int
        Number of labels C (all of them appear in ``hierarchy.tsv``).
    docs : int
        Documents in all three splits together.
    depth : int
        Levels of the label tree (clipped to ``labels``).
    branching : float or None
        Growth ratio of the level sizes (mean fan-out), >= 1; None derives it from
        ``labels`` and ``depth`` (``g + g² + … + g^depth = labels``, ``g`` top-level labels).
    vocab_size : int
        Distinct words (a tenth of them background words).
    doc_length : float
        Mean tokens per document (log-normal, sigma 0.5, at least 1).
    labels_per_doc : float
        Mean leaves a document picks directly (``1 + Poisson(labels_per_doc - 1)``), >= 1;
        with ``ancestor_closed`` the label sets also hold their ancestors (the summary
        reports the resulting mean).
    ancestor_closed : bool
        Whether each document's labels include every ancestor of its leaves.
    topic_words : int
        Topic words owned by each label.
    topic_fraction : float
        Share of a document's tokens that are topic words (the rest is background noise).
    label_zipf : float
        Zipf exponent of leaf popularity (0: uniform).
    fanout_zipf : float
        Zipf exponent of how children are spread over the parents (0: evenly at random).
    valid_fraction, test_fraction : float
        Shares of ``docs`` in the validation and test splits (rounded); the rest is train.
    seed : int
        Everything is a function of the config, seed included.
    gz : bool
        Write ``*.jsonl.gz`` instead of ``*.jsonl``.
    """

    labels: int = 103
    docs: int = 10_000
    depth: int = 4
    branching: float | None = None
    vocab_size: int = 30_000
    doc_length: float = 100.0
    labels_per_doc: float = 1.5
    ancestor_closed: bool = True
    topic_words: int = 5
    topic_fraction: float = 0.3
    label_zipf: float = 1.0
    fanout_zipf: float = 1.0
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    gz: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, **overrides: Any) -> SyntheticConfig:
        """A copy with the given fields changed; ``None`` values are ignored (unset flags)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> SyntheticConfig:
        """Raise :class:`HyperIMError` for impossible values; return ``self``."""
        checks = [
            (self.labels >= 1, "labels must be >= 1"),
            (self.docs >= 1, "docs must be >= 1"),
            (self.depth >= 1, "depth must be >= 1"),
            (self.branching is None or self.branching >= 1, "branching must be >= 1"),
            (self.vocab_size >= 20, "vocab_size must be >= 20"),
            (self.doc_length >= 1, "doc_length must be >= 1"),
            (self.labels_per_doc >= 1, "labels_per_doc must be >= 1"),
            (self.topic_words >= 1, "topic_words must be >= 1"),
            (0 <= self.topic_fraction <= 1, "topic_fraction must be in [0, 1]"),
            (self.label_zipf >= 0 and self.fanout_zipf >= 0, "zipf exponents must be >= 0"),
            (
                self.valid_fraction >= 0
                and self.test_fraction >= 0
                and self.valid_fraction + self.test_fraction < 1,
                "valid_fraction and test_fraction must be >= 0 and sum to < 1",
            ),
        ]
        check_all(checks, prefix="")
        return self

    def split_sizes(self) -> dict[str, int]:
        """Documents per split: valid and test are rounded shares, train gets the rest."""
        n_valid = round(self.docs * self.valid_fraction)
        n_test = round(self.docs * self.test_fraction)
        return {"train": self.docs - n_valid - n_test, "valid": n_valid, "test": n_test}


#: Shapes of the paper's corpora (Table 1), scaled down in documents. RCV1: 103 labels on 4
#: levels, ~3.2 labels and ~260 words per document (``max_len`` 300). WikiLSHTC: 36,504 labels,
#: 1.86 (leaf) labels and ~118 words per document (``max_len`` 150).
PRESETS: dict[str, SyntheticConfig] = {
    "rcv1": SyntheticConfig(
        labels=103, docs=25_000, depth=4, vocab_size=30_000, doc_length=260, labels_per_doc=1.3
    ),
    "wikilshtc": SyntheticConfig(
        labels=36_504,
        docs=20_000,
        depth=5,
        vocab_size=100_000,
        doc_length=118,
        labels_per_doc=1.86,
        ancestor_closed=False,
        topic_words=4,
    ),
}


def pseudo_words(n: int) -> list[str]:
    """``n`` distinct pronounceable lowercase words of 2+ consonant-vowel syllables.

    Word ``i`` spells ``i`` in base 70 (one syllable per digit, at least two), so the words are
    unique, deterministic and single tokens for :func:`hyperim.data.tokenize`.
    """
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    base = len(syllables)
    out = []
    for i in range(n):
        digits = []
        while i or len(digits) < 2:
            i, r = divmod(i, base)
            digits.append(syllables[r])
        out.append("".join(reversed(digits)))
    return out


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Weights ``rank^-exponent`` over a random order of ``n`` items."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return w[rng.permutation(n)]


def _level_sizes(n_labels: int, depth: int, branching: float | None) -> list[int]:
    """Sizes of the levels, top first, summing to ``n_labels``, each >= 1."""
    depth = max(1, min(depth, n_labels))
    if depth == 1:
        return [n_labels]
    if branching is None:  # g + g^2 + ... + g^depth = n_labels, g top-level labels
        lo, hi = 1.0, float(n_labels)
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if sum(mid**j for j in range(1, depth + 1)) < n_labels else (lo, mid)
        g, top = lo, lo
    else:
        g = float(branching)
        top = n_labels / depth if g == 1 else n_labels * (g - 1) / (g**depth - 1)
    sizes, remaining = [], n_labels
    for level in range(depth):
        below = depth - level - 1  # levels still to fill, one label each at least
        size = remaining if below == 0 else min(max(1, round(top * g**level)), remaining - below)
        sizes.append(size)
        remaining -= size
    return sizes


@dataclass
class _Tree:
    names: list[str]
    parent: np.ndarray  # (C,) parent id, -1 for top level
    level_sizes: list[int]
    chain: np.ndarray  # (C, depth): label, parent, grandparent, ..., then -1
    leaves: np.ndarray  # ids of labels without children
    leaf_cum: np.ndarray  # cumulative leaf popularity
    topics: np.ndarray  # (C, topic_words) word ids


def _build_tree(cfg: SyntheticConfig, rng: np.random.Generator) -> _Tree:
    sizes = _level_sizes(cfg.labels, cfg.depth, cfg.branching)
    names: list[str] = []
    parent = np.full(cfg.labels, -1, dtype=np.int64)
    start = 0
    for level, size in enumerate(sizes):
        names += [f"L{level + 1}_{i}" for i in range(size)]
        if level:
            above = sizes[level - 1]
            w = _zipf_weights(above, cfg.fanout_zipf, rng)
            cum = np.cumsum(w)
            picks = np.searchsorted(cum, rng.random(size) * cum[-1], side="right")
            parent[start : start + size] = start - above + np.sort(np.minimum(picks, above - 1))
        start += size
    depth = len(sizes)
    chain = np.full((cfg.labels, depth), -1, dtype=np.int64)
    chain[:, 0] = np.arange(cfg.labels)
    for j in range(1, depth):
        prev = chain[:, j - 1]
        chain[:, j] = np.where(prev >= 0, parent[np.maximum(prev, 0)], -1)
    has_child = np.zeros(cfg.labels, dtype=bool)
    has_child[parent[parent >= 0]] = True
    leaves = np.flatnonzero(~has_child)
    leaf_cum = np.cumsum(_zipf_weights(len(leaves), cfg.label_zipf, rng))
    n_background = cfg.vocab_size // 10
    topics = rng.integers(n_background, cfg.vocab_size, size=(cfg.labels, cfg.topic_words))
    return _Tree(names, parent, sizes, chain, leaves, leaf_cum, topics)


def _pick(cum: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` indices drawn with probability proportional to the increments of ``cum``."""
    return np.minimum(np.searchsorted(cum, rng.random(size) * cum[-1], side="right"), len(cum) - 1)


def _sets_by_doc(doc: np.ndarray, label: np.ndarray, n_docs: int, n_labels: int):
    """Unique ``(doc, label)`` pairs sorted by doc then label: labels, counts and offsets."""
    codes = np.unique(doc * n_labels + label)
    counts = np.bincount(codes // n_labels, minlength=n_docs)
    return codes % n_labels, counts, np.concatenate([[0], np.cumsum(counts)])


def _chunk_lines(
    cfg: SyntheticConfig,
    tree: _Tree,
    words: list[str],
    bg_cum: np.ndarray,
    rng: np.random.Generator,
    n: int,
    first_id: int,
    split: str,
    stats: dict[str, int],
) -> tuple[str, np.ndarray]:
    """JSON lines of ``n`` documents, and the ids of the labels they carry."""
    c = cfg.labels
    # labels: leaves by popularity, then ancestors
    m = np.minimum(1 + rng.poisson(cfg.labels_per_doc - 1, n), len(tree.leaves))
    leaf_doc = np.repeat(np.arange(n), m)
    leaves = tree.leaves[_pick(tree.leaf_cum, rng, int(m.sum()))]
    chains = tree.chain[leaves]  # (total, depth)
    ok = chains >= 0
    fam_doc = np.broadcast_to(leaf_doc[:, None], chains.shape)[ok]
    family, fam_count, fam_off = _sets_by_doc(fam_doc, chains[ok], n, c)
    if cfg.ancestor_closed:
        labels, lab_count, lab_off = family, fam_count, fam_off
    else:
        labels, lab_count, lab_off = _sets_by_doc(leaf_doc, leaves, n, c)
    # tokens: topic words of the family, background words, shuffled within each document
    mu, sigma = np.log(cfg.doc_length) - 0.125, 0.5
    length = np.maximum(1, np.rint(rng.lognormal(mu, sigma, n))).astype(np.int64)
    n_topic = rng.binomial(length, cfg.topic_fraction)
    t_doc = np.repeat(np.arange(n), n_topic)
    which = fam_off[t_doc] + (rng.random(len(t_doc)) * fam_count[t_doc]).astype(np.int64)
    t_words = tree.topics[family[which], rng.integers(0, cfg.topic_words, len(t_doc))]
    b_doc = np.repeat(np.arange(n), length - n_topic)
    b_words = _pick(bg_cum, rng, len(b_doc))
    doc = np.concatenate([t_doc, b_doc])
    order = np.lexsort((rng.random(len(doc)), doc))
    tokens = [words[i] for i in np.concatenate([t_words, b_words])[order].tolist()]
    bounds = np.concatenate([[0], np.cumsum(length)]).tolist()
    names = [tree.names[i] for i in labels.tolist()]
    off = lab_off.tolist()
    stats["tokens"] += int(length.sum())
    stats["labels"] += int(lab_count.sum())
    stats["topic_tokens"] += int(n_topic.sum())
    lines = []
    for i in range(n):
        obj = {
            "id": f"{split}{first_id + i}",
            "text": " ".join(tokens[bounds[i] : bounds[i + 1]]),
            "labels": names[off[i] : off[i + 1]],
        }
        lines.append(json.dumps(obj, ensure_ascii=False))
    return "\n".join(lines) + "\n", labels


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _open_output(tmp: Path, gz: bool) -> Iterator[IO[bytes]]:
    with open(tmp, "wb") as raw:
        if not gz:
            yield raw
            return
        # no file name or time stamp in the header: the same config gives the same bytes
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as f:
            yield f


def generate_synthetic(
    out_dir: str | Path,
    config: SyntheticConfig | None = None,
    progress: Callable[[int], None] | bool | None = None,
) -> dict[str, Any]:
    """Write a synthetic hierarchical dataset to ``out_dir`` (see the module docstring).

    Writes ``hierarchy.tsv`` (``parent<TAB>child`` lines; top-level labels as children of
    ``Root``), ``train``, ``valid`` and ``test`` ``.jsonl`` (``.jsonl.gz`` with ``config.gz``)
    with lines ``{"id": "train0", "text": "...", "labels": ["L1_3", "L2_17", ...]}``, and
    ``synthetic.json`` (the config and this summary). Each file is written to a temporary
    sibling and renamed into place when complete; files of the same names are replaced.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    config : SyntheticConfig, optional
        Defaults to ``SyntheticConfig()``.
    progress : callable or bool, optional
        A callable gets the number of documents just written (e.g. a rich progress
        ``advance``); ``True`` shows a progress bar on stderr.

    Returns
    -------
    dict
        ``path``, ``labels``, ``levels`` (labels per level), ``leaves``, ``edges``, ``splits``
        (documents per split), ``labels_used`` (distinct labels in train), ``mean_labels``
        and ``mean_tokens`` per document, ``topic_token_share``, ``vocab_size``, ``files``,
        ``seconds``.

    Raises
    ------
    HyperIMError
        For invalid settings, or when ``out_dir`` holds the other compression's split files
        (``train.jsonl`` when writing ``train.jsonl.gz``, which would make the dataset
        ambiguous).
    """
    cfg = (config or SyntheticConfig()).validate()
    t0 = time.perf_counter()
    out = Path(out_dir).expanduser()
    suffix, other = (".jsonl.gz", ".jsonl") if cfg.gz else (".jsonl", ".jsonl.gz")
    names = [f"{s}{x}" for s in _SPLITS for x in (suffix, other)] + ["hierarchy.tsv"]
    clashes = [out / n for n in names if (out / n).exists()]
    if clashes:  # never overwrite a dataset (the user's, or an earlier synthetic one)
        raise HyperIMError(
            f"{out}: already holds a dataset ({clashes[0].name}); remove it or write to "
            "another folder"
        )
    check_output(out, "--out", folder=True)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)

    tree = _build_tree(cfg, np.random.default_rng([cfg.seed, 0]))
    words = pseudo_words(cfg.vocab_size)
    words = [words[i] for i in np.random.default_rng([cfg.seed, 2]).permutation(len(words))]
    bg_cum = np.cumsum(np.arange(1, cfg.vocab_size // 10 + 1, dtype=np.float64) ** -1.0)
    sizes = cfg.split_sizes()

    bar = None
    if progress is True:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = bar.add_task("docs", total=cfg.docs)
        progress = lambda k: bar.advance(task, k)  # noqa: E731
    report: Callable[[int], None] | None = progress or None  # type: ignore[assignment]

    files: dict[str, str] = {}
    stats = {"tokens": 0, "labels": 0, "topic_tokens": 0}
    train_labels = np.zeros(cfg.labels, dtype=bool)
    try:
        if bar is not None:
            bar.start()
        hierarchy = out / "hierarchy.tsv"
        lines = [f"Root\t{tree.names[i]}" for i in np.flatnonzero(tree.parent < 0)]
        lines += [f"{tree.names[p]}\t{tree.names[i]}" for i, p in enumerate(tree.parent) if p >= 0]
        _write_atomic(hierarchy, "\n".join(lines) + "\n")
        files["hierarchy"] = str(hierarchy)
        for s, split in enumerate(_SPLITS):
            path = out / f"{split}{suffix}"
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            try:
                with _open_output(tmp, cfg.gz) as f:
                    for c, lo in enumerate(range(0, sizes[split], CHUNK_DOCS)):
                        n = min(CHUNK_DOCS, sizes[split] - lo)
                        rng = np.random.default_rng([cfg.seed, 1, s, c])
                        text, used = _chunk_lines(
                            cfg, tree, words, bg_cum, rng, n, lo, split, stats
                        )
                        if split == "train":
                            train_labels[used] = True
                        f.write(text.encode("utf-8"))
                        if report:
                            report(n)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            files[split] = str(path)
    except BaseException:  # a full disk, Ctrl-C: no partial dataset blocks the retry
        for written in files.values():
            Path(written).unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.stop()

    edges = int((tree.parent >= 0).sum())
    summary: dict[str, Any] = {
        "path": str(out),
        "labels": cfg.labels,
        "levels": tree.level_sizes,
        "leaves": len(tree.leaves),
        "edges": edges,
        "splits": sizes,
        "labels_used": int(train_labels.sum()),
        "mean_labels": stats["labels"] / cfg.docs,
        "mean_tokens": stats["tokens"] / cfg.docs,
        "topic_token_share": stats["topic_tokens"] / max(1, stats["tokens"]),
        "vocab_size": cfg.vocab_size,
        "files": files,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    meta = {"config": cfg.to_dict(), **{k: v for k, v in summary.items() if k != "seconds"}}
    _write_atomic(out / "synthetic.json", json.dumps(meta, indent=2) + "\n")
    return summary
