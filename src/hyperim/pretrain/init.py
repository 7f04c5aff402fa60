"""Where HyperIM's embeddings start: the paper's H-hier set-up, wired into training.

``--label-init``
    ``random`` (H-rand), ``hierarchy`` (Eq. 2 on the dataset's label hierarchy, H-hier),
    ``auto`` (``hierarchy`` when the dataset has one, else ``random``), or the path of an
    embedding file (word2vec text format, see :mod:`hyperim.pretrain.io`).
``--word-init``
    ``random``, ``glove`` (Poincaré GloVe, Eq. 3, on the training split), ``glove+wordnet``
    (GloVe refined with WordNet hypernym pairs, Eq. 4), or an embedding file.

Pre-trained tables are computed once per run and cached in ``<run>/pretrained/`` (embedding
file + sidecar + a JSON of statistics), so ``--resume`` and reruns reuse them. Every table
has the model's shape (``n_balls × ball_dim``) and product distance (``aggregate``).
Rows are matched by name: words or labels the file lacks keep their random initialisation,
and the match rate is reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from hyperim.atomic import atomic_write_text
from hyperim.data.hierarchy import Hierarchy
from hyperim.data.vocab import Vocabulary
from hyperim.errors import HyperIMError
from hyperim.pretrain.io import load_embeddings, save_embeddings

LABEL_INITS = ("auto", "random", "hierarchy")
WORD_INITS = ("random", "glove", "glove+wordnet", "glove6b")

Log = Callable[[str], None]


def check_init(kind: str, spec: str) -> str:
    """Validate an init option: a known name or an existing file."""
    names = LABEL_INITS if kind == "label" else WORD_INITS
    if spec in names or Path(spec).expanduser().is_file():
        return spec
    raise HyperIMError(
        f"--{kind}-init {spec!r}: expected one of {', '.join(names)} or an embedding file"
    )


def align(
    names: Sequence[str],
    points: torch.Tensor,
    wanted: Sequence[str],
    n_balls: int,
    ball_dim: int,
    source: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``points`` reordered to ``wanted``: ``(table (len(wanted), n, d), found mask)``.

    Names are compared after replacing whitespace by ``_`` (what the text format stores).
    """
    if tuple(points.shape[1:]) != (n_balls, ball_dim):
        raise HyperIMError(
            f"{source}: embedding shape {points.shape[1]}x{points.shape[2]}D does not match "
            f"the model's {n_balls}x{ball_dim}D (set --n-balls/--ball-dim to match)"
        )
    row = {name: i for i, name in enumerate(names)}
    idx = torch.tensor([row.get("_".join(w.split()), -1) for w in wanted], dtype=torch.long)
    found = idx >= 0
    table = torch.zeros(len(wanted), n_balls, ball_dim, dtype=points.dtype)
    table[found] = points[idx[found]]
    return table, found


def label_points(
    spec: str,
    hierarchy: Hierarchy | None,
    labels: Sequence[str],
    *,
    n_balls: int,
    ball_dim: int,
    aggregate: str,
    seed: int,
    cache: Path,
    log: Log = print,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Initial label table for ``spec`` (``None`` for ``random``), and its found mask."""
    if spec == "auto":
        spec = "hierarchy" if hierarchy is not None and hierarchy.edges else "random"
    if spec == "random":
        return None
    if spec == "hierarchy":
        if hierarchy is None or not hierarchy.edges:
            raise HyperIMError(
                "--label-init hierarchy: the dataset has no label hierarchy "
                "(hierarchy.tsv or *.taxonomy); use --label-init random"
            )
        path = cache / "labels.hierarchy.txt"
        if not path.exists():
            from hyperim.pretrain.hierarchy import HierarchyEmbeddingConfig

            cfg = HierarchyEmbeddingConfig(
                n_balls=n_balls,
                ball_dim=ball_dim,
                aggregate=aggregate,  # type: ignore[arg-type]
                seed=seed,
            )
            log(f"pre-training label embeddings on {len(hierarchy.edges)} hierarchy edges (Eq. 2)")
            names, points, stats = embed_hierarchy(hierarchy, cfg)
            quality = stats["reconstruction"]
            _save(path, names, points, aggregate, stats)
            log(
                f"label embeddings: mean rank {quality['mean_rank']:.2f}, "
                f"MAP {quality['map']:.3f} ({stats['seconds']:.1f}s)"
            )
    else:
        path = Path(spec).expanduser()
    names, points = load_embeddings(path)
    table, found = align(names, points, labels, n_balls, ball_dim, str(path))
    log(f"label init from {path}: {int(found.sum())}/{len(labels)} labels found")
    return table, found


def embed_hierarchy(
    hierarchy: Hierarchy, config: Any, progress: Callable[[int, int, float], None] | None = None
) -> tuple[list[str], torch.Tensor, dict[str, Any]]:
    """Eq. (2) on ``hierarchy``'s edges with ``config`` (a ``HierarchyEmbeddingConfig``); the
    statistics carry the reconstruction of the transitive closure under ``"reconstruction"``.

    A label that is an ancestor of every other (a single explicit root) is not trained: under
    Eq. (2)'s orientation its only negative is itself, its pairs' loss cannot go below
    ``log(1 + K)``, and training pushed it to the boundary (``mammal.n.01`` at norm 0.99995 in
    WordNet's mammal closure). It is placed at the origin, the point nearest to every other;
    a label whose only pairs were its pairs keeps the random start. ``stats["fixed_at_origin"]``
    names them.
    """
    from hyperim.pretrain.hierarchy import reconstruction_metrics, train_hierarchy_embedding

    universal = hierarchy.universal_ancestors()
    edges = [(p, c) for p, c in hierarchy.edges if p not in universal]
    if not edges:  # a star under one root: nothing else to learn from
        universal, edges = set(), list(hierarchy.edges)
    names, points, stats = train_hierarchy_embedding(edges, config, progress)
    nodes = sorted(set(names) | {n for edge in hierarchy.edges for n in edge})
    if len(nodes) > len(names):
        gen = torch.Generator().manual_seed(config.seed + 1)
        full = torch.empty(len(nodes), *points.shape[1:], dtype=points.dtype)
        full.uniform_(-config.init_range, config.init_range, generator=gen)
        row = {name: i for i, name in enumerate(nodes)}
        full[[row[n] for n in names]] = points
        full[[row[n] for n in sorted(universal)]] = 0.0
        names, points = nodes, full
    quality = reconstruction_metrics(
        names, points, hierarchy.transitive_closure(), config.aggregate
    )
    stats = {**stats, "n_nodes": len(names), "fixed_at_origin": sorted(universal)}
    return names, points, {**stats, "reconstruction": quality}


def check_word_init(spec: str, cache: Path, wordnet_dir: str | Path | None = None) -> None:
    """Fail now, before any pre-training, if ``spec`` will need a WordNet that is not there
    (a table already in ``cache`` needs none)."""
    if spec == "glove6b":
        from hyperim.pretrain.vectors import require_glove6b

        require_glove6b()
    if spec == "glove+wordnet" and not (cache / "words.glove-wordnet.txt").exists():
        from hyperim.data.wordnet import WordNet

        try:
            WordNet.files(wordnet_dir)
        except HyperIMError as e:
            raise HyperIMError(f"{e}; or use --word-init glove (no WordNet)") from None


def word_points(
    spec: str,
    documents: Sequence[Sequence[str]],
    vocab: Vocabulary,
    *,
    n_balls: int,
    ball_dim: int,
    aggregate: str,
    seed: int,
    cache: Path,
    wordnet_dir: str | Path | None = None,
    radius: float = 0.1,
    log: Log = print,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Initial word table for ``spec`` (``None`` for ``random``), and its found mask.

    ``glove6b``: Stanford's GloVe 6B 50-d vectors lifted into the balls
    (:mod:`hyperim.pretrain.ball_vectors`) with per-ball RMS tangent norm ``radius``; words
    that GloVe lacks keep their random start."""
    if spec == "random":
        return None
    if spec == "glove6b":
        from hyperim.pretrain.ball_vectors import ball_points
        from hyperim.pretrain.vectors import load_glove6b, vectors_for_vocab

        t0 = time.time()
        names, vectors = load_glove6b()
        table, found = vectors_for_vocab(names, vectors, vocab.tokens)
        found[: len(Vocabulary.SPECIALS)] = False  # <pad>, <unk> keep their own start
        points, stats = ball_points(table, found, n_balls, ball_dim, radius, seed)
        log(
            f"word init from GloVe 6B: {int(found.sum())}/{len(vocab)} words found, per-ball "
            f"norm mean {stats['mean_ball_norm']:.3f} ({time.time() - t0:.1f}s)"
        )
        return points, torch.from_numpy(found)
    if spec in ("glove", "glove+wordnet"):
        path = cache / f"words.{spec.replace('+', '-')}.txt"
        if not path.exists():
            points, stats = pretrain_words(
                documents,
                vocab,
                n_balls=n_balls,
                ball_dim=ball_dim,
                aggregate=aggregate,
                seed=seed,
                wordnet=spec == "glove+wordnet",
                wordnet_dir=wordnet_dir,
                glove_cache=cache / "words.glove.txt",
                log=log,
            )
            _save(path, vocab.tokens, points, aggregate, stats)
    else:
        path = Path(spec).expanduser()
    names, points = load_embeddings(path)
    table, found = align(names, points, vocab.tokens, n_balls, ball_dim, str(path))
    found[: len(Vocabulary.SPECIALS)] = False  # <pad>, <unk> keep their own initialisation
    log(f"word init from {path}: {int(found.sum())}/{len(vocab)} words found")
    return table, found


def pretrain_words(
    documents: Sequence[Sequence[str]],
    vocab: Vocabulary,
    *,
    n_balls: int,
    ball_dim: int,
    aggregate: str,
    seed: int,
    wordnet: bool,
    wordnet_dir: str | Path | None = None,
    glove_cache: Path | None = None,
    epochs: int | None = None,
    log: Log = print,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Poincaré GloVe (Eq. 3) on ``documents`` over ``vocab``; then, with ``wordnet``, the
    WordNet hypernym refinement (Eq. 4). Returns ``(points (V, n, d), statistics)``.

    ``glove_cache``, when given, is where the plain GloVe table is kept (and reused), so that
    ``glove`` and ``glove+wordnet`` runs share one GloVe fit.
    """
    from hyperim.pretrain.cooccurrence import cooccurrence_matrix, encode_corpus
    from hyperim.pretrain.glove import GloveConfig, train_glove

    stats: dict[str, Any] = {}
    wn = None
    if wordnet:  # read WordNet first: a missing database fails before minutes of GloVe
        from hyperim.data.wordnet import WordNet

        try:
            wn = WordNet.load(wordnet_dir)
        except HyperIMError as err:
            raise HyperIMError(f"{err}; or use --word-init glove (no WordNet)") from None
    if glove_cache is not None and glove_cache.exists():
        names, points = load_embeddings(glove_cache)
        points, _ = align(names, points, vocab.tokens, n_balls, ball_dim, str(glove_cache))
        stats["glove"] = json.loads(_stats_path(glove_cache).read_text()).get("glove", {})
        log(f"reusing Poincaré GloVe from {glove_cache}")
    else:
        t0 = time.perf_counter()
        cooc = cooccurrence_matrix(encode_corpus(documents, vocab), len(vocab))
        log(f"co-occurrences: {cooc.nnz:,} nonzero pairs ({time.perf_counter() - t0:.1f}s)")
        gcfg = GloveConfig(n_balls=n_balls, ball_dim=ball_dim, aggregate=aggregate, seed=seed)
        if epochs is not None:
            gcfg.epochs = epochs
        log(f"pre-training word embeddings: Poincaré GloVe (Eq. 3), {gcfg.epochs} epochs")
        points, gstats = train_glove(cooc, gcfg)
        stats["glove"] = {"nnz": int(cooc.nnz), **gstats.to_dict()}
        if glove_cache is not None:
            _save(glove_cache, vocab.tokens, points, aggregate, {"glove": stats["glove"]})
    if wn is not None:
        from hyperim.pretrain.wordnet_refine import (
            RefineConfig,
            hypernym_pairs,
            pair_ids,
            refine_embeddings,
        )

        pairs = hypernym_pairs(vocab.tokens, wn)
        log(f"WordNet: {len(pairs):,} hypernym pairs among the vocabulary (Eq. 4)")
        rcfg = RefineConfig(aggregate=aggregate, seed=seed)
        points, rstats = refine_embeddings(points, pair_ids(pairs, vocab), rcfg)
        stats["wordnet"] = {"pairs": len(pairs), **_as_dict(rstats)}
    return points, stats


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return asdict(obj)


def _stats_path(path: Path) -> Path:
    return path.with_name(path.name + ".stats.json")


def _save(
    path: Path, names: Sequence[str], points: torch.Tensor, aggregate: str, stats: dict
) -> None:
    """Write the statistics, then the table and its sidecar (each atomically: table last)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(_stats_path(path), json.dumps(stats, indent=1, default=str) + "\n")
    save_embeddings(path, names, points, aggregate)
