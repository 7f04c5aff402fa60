"""A real hierarchical multi-label dataset made from WordNet 3.0 noun glosses.

Construction (:func:`build_wordnet_dataset`):

* **Documents.** Every noun synset is a candidate document; its text is the synset's gloss
  (definition plus quoted examples, :meth:`WordNet.gloss`), its id the NLTK-style name
  (``dog.n.01``).
* **Labels.** A document's candidate labels are its hypernym ancestors (instance hypernyms
  count as hypernyms; the synset itself is never its own label) whose depth is between 1 and
  ``depth`` inclusive, where the depth of a synset is the length of its shortest hypernym
  path to ``entity.n.01`` (depth 0, so never a label: it is an ancestor of everything).
  Synsets with no ancestor in that range (``entity.n.01`` and its three children) are not
  candidates.
* **Cap.** When ``max_docs`` is set, ``max_docs`` candidates are drawn without replacement,
  deterministically by ``seed``; the label filter below then counts within that sample, so
  every label of the written dataset really has ``min_docs`` documents.
* **Label filter.** Labels that fewer than ``min_docs`` documents carry are dropped, then the
  documents left with no label. Labels remain closed under ancestors within the depth range
  (an in-range parent has at least the documents of its child).
* **Split.** The documents, in the seeded random order, are cut 70/10/20 into train, valid
  and test (each written sorted by id).
* **Hierarchy.** ``hierarchy.tsv`` holds the direct hypernym edges ``parent<TAB>child``
  between kept labels, sorted; kept depth-1 labels (whose only parent, ``entity.n.01``, is
  not a label) are the roots. A kept label with neither a kept parent nor a kept child would
  be missing from the file, so it gets a ``Root<TAB>label`` line (the project's marker for a
  top-level label).

The folder (``train.jsonl``, ``valid.jsonl``, ``test.jsonl``, ``hierarchy.tsv``,
``meta.json``, ``README.md``) is filled in a temporary sibling and renamed into place only
when complete (:func:`hyperim.atomic.atomic_directory`), so a failure leaves no half dataset.
The output is byte-identical for identical options and WordNet files.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from hyperim.atomic import atomic_directory, atomic_output, atomic_write_text, check_output
from hyperim.data.hierarchy import ROOT
from hyperim.data.reader import tokenize
from hyperim.data.wordnet import WordNet, default_wordnet_dir
from hyperim.errors import HyperIMError

#: Shares of the documents in train, valid and test.
SPLIT_SHARES = {"train": 0.7, "valid": 0.1, "test": 0.2}


def _check_options(depth: int, min_docs: int, max_docs: int | None, seed: int) -> None:
    if depth < 1:
        raise HyperIMError(f"--depth must be >= 1, got {depth}")
    if min_docs < 1:
        raise HyperIMError(f"--min-docs must be >= 1, got {min_docs}")
    if max_docs is not None and max_docs < 0:
        raise HyperIMError(f"--max-docs must be >= 0 (0 = all documents), got {max_docs}")
    if seed < 0:
        raise HyperIMError(f"--seed must be >= 0, got {seed}")


def _check_out(out: Path) -> None:
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            raise HyperIMError(
                f"--out {out}: folder is not empty ({entries[0]}); remove it or write to "
                "another folder"
            )
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise HyperIMError(f"--out {out}: {out.parent} is not writable")
    check_output(out, "--out", folder=True)


def _split_sizes(n: int) -> dict[str, int]:
    train, valid = round(n * SPLIT_SHARES["train"]), round(n * SPLIT_SHARES["valid"])
    return {"train": train, "valid": valid, "test": n - train - valid}


def build_wordnet_dataset(
    out: str | Path,
    wordnet: str | Path | WordNet | None = None,
    depth: int = 4,
    min_docs: int = 50,
    max_docs: int | None = 20000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the WordNet gloss dataset to the folder ``out`` (see the module docstring).

    Parameters
    ----------
    out : str or Path
        Dataset folder to create; it must not exist or be empty.
    wordnet : str, Path or WordNet, optional
        The folder holding ``index.noun`` and ``data.noun`` (default
        :func:`~hyperim.data.wordnet.default_wordnet_dir`), or an already loaded
        :class:`~hyperim.data.wordnet.WordNet`.
    depth : int
        Deepest label level (labels have depth ``1..depth``).
    min_docs : int
        Labels carried by fewer documents are dropped.
    max_docs : int or None
        Documents drawn before the label filter; ``None`` or ``0`` keeps all candidates.
    seed : int
        Seeds the draw and the split.

    Returns
    -------
    dict
        ``path``, ``options``, ``candidates`` (synsets with an in-range ancestor),
        ``sampled``, ``dropped_documents`` (left with no label), ``documents``, ``splits``
        (documents per split), ``labels``, ``labels_per_depth``, ``edges``, ``roots``,
        ``mean_labels`` and ``mean_tokens`` per document (tokens as
        :func:`~hyperim.data.reader.tokenize` counts them), ``seconds``.

    Raises
    ------
    HyperIMError
        For bad options, an ``out`` that is a file or a non-empty folder, missing WordNet
        files, or options that leave no training document. ``DataError`` for a malformed
        WordNet file.
    """
    t0 = time.perf_counter()
    _check_options(depth, min_docs, max_docs, seed)
    out = Path(out).expanduser()
    _check_out(out)
    if isinstance(wordnet, WordNet):
        wn, source = wordnet, None
    else:
        source = Path(wordnet).expanduser() if wordnet is not None else default_wordnet_dir()
        wn = WordNet.load(source)

    # candidate documents and their in-range ancestors, in file order
    candidates: list[tuple[str, list[str]]] = []
    for synset in wn.all_synsets():
        labels = sorted(a for a in wn.hypernym_closure(synset) if 1 <= wn.depth(a) <= depth)
        if labels:
            candidates.append((synset, labels))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(candidates))
    if max_docs:
        order = order[:max_docs]
    sample = [candidates[i] for i in order]

    counts = Counter(label for _, labels in sample for label in labels)
    kept = {label for label, n in counts.items() if n >= min_docs}
    docs = []
    for synset, labels in sample:
        labels = [label for label in labels if label in kept]
        if labels:
            docs.append({"id": synset, "text": wn.gloss(synset), "labels": labels})
    sizes = _split_sizes(len(docs))
    if sizes["train"] == 0:
        raise HyperIMError(
            f"no training documents with --depth {depth} --min-docs {min_docs} "
            f"--max-docs {max_docs}: {len(docs)} documents keep a label; lower --min-docs "
            "or raise --max-docs"
        )
    splits: dict[str, list[dict[str, Any]]] = {}
    start = 0
    for split, size in sizes.items():
        splits[split] = sorted(docs[start : start + size], key=lambda d: d["id"])
        start += size

    edges = sorted({(p, c) for c in kept for p in wn.hypernyms(c) if p in kept})
    linked = {node for edge in edges for node in edge}
    isolated = sorted(kept - linked)
    roots = sorted(label for label in kept if not any(p in kept for p in wn.hypernyms(label)))
    per_depth = Counter(wn.depth(label) for label in kept)
    summary: dict[str, Any] = {
        "path": str(out),
        "options": {
            "wordnet": str(source) if source is not None else None,
            "depth": depth,
            "min_docs": min_docs,
            "max_docs": max_docs or None,
            "seed": seed,
        },
        "candidates": len(candidates),
        "sampled": len(sample),
        "dropped_documents": len(sample) - len(docs),
        "documents": len(docs),
        "splits": sizes,
        "labels": len(kept),
        "labels_per_depth": {str(d): per_depth[d] for d in sorted(per_depth)},
        "edges": len(edges),
        "roots": len(roots),
        "isolated_labels": len(isolated),
        "mean_labels": sum(len(d["labels"]) for d in docs) / len(docs),
        "mean_tokens": sum(len(tokenize(d["text"])) for d in docs) / len(docs),
    }

    with atomic_directory(out) as tmp:
        for split, rows in splits.items():
            with atomic_output(tmp / f"{split}.jsonl", compress=False) as f:
                for row in rows:
                    f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        lines = [f"{ROOT}\t{label}" for label in isolated] + [f"{p}\t{c}" for p, c in edges]
        atomic_write_text(tmp / "hierarchy.tsv", "".join(line + "\n" for line in lines))
        meta = {k: v for k, v in summary.items() if k != "path"}  # the folder may move
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2) + "\n")
        atomic_write_text(tmp / "README.md", _readme(summary))
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _readme(s: dict[str, Any]) -> str:
    o = s["options"]
    per_depth = ", ".join(f"{n} at depth {d}" for d, n in s["labels_per_depth"].items())
    cap = f"{o['max_docs']:,} drawn (seed {o['seed']})" if o["max_docs"] else "all kept"
    return (
        "# WordNet 3.0 noun glosses — hierarchical multi-label text classification\n\n"
        "Built by `hyperim data wordnet` (`hyperim.data.wordnet_dataset`), options "
        f"`--depth {o['depth']} --min-docs {o['min_docs']} --max-docs {o['max_docs'] or 0} "
        f"--seed {o['seed']}`.\n\n"
        "- Documents: the gloss (definition and quoted examples) of a noun synset; id the "
        f"synset name. {s['candidates']:,} candidates, {cap}, {s['dropped_documents']:,} "
        f"left with no label dropped: {s['documents']:,} documents.\n"
        f"- Labels: the synset's hypernym ancestors (instance hypernyms included) of depth 1 "
        f"to {o['depth']} (shortest hypernym path to entity.n.01, which is never a label), "
        f"kept when at least {o['min_docs']} documents carry them: {s['labels']} labels "
        f"({per_depth}); {s['mean_labels']:.2f} labels and {s['mean_tokens']:.1f} tokens "
        "per document on average.\n"
        f"- Hierarchy: `hierarchy.tsv`, {s['edges']} direct hypernym edges "
        f"`parent<TAB>child` between kept labels; {s['roots']} roots.\n"
        f"- Split: seeded random 70/10/20: train {s['splits']['train']:,} / valid "
        f"{s['splits']['valid']:,} / test {s['splits']['test']:,}.\n"
        "- Licence: WordNet 3.0 licence (Princeton University), free to use and redistribute "
        "with its copyright notice.\n"
    )
