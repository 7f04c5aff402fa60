"""Streaming batch inference: classify a file of any size into a JSON Lines file of top-k labels.

:func:`predict_file` reads its input lazily (JSON Lines or plain text, optionally gzipped),
scores windows of documents in length-sorted batches, and writes one line per document, so
memory stays flat however long the input is. Top-k labels are found by :func:`topk_labels`,
a streaming selection over label chunks that never builds a ``(batch, n_labels)`` matrix, so
36,504 labels (WikiLSHTC) cost no more memory than a few thousand. The output appears under
its final name only when complete. :func:`evaluate_predictions` scores a predictions file
against gold labels later, without the model.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hyperim.atomic import atomic_output
from hyperim.data.batching import pad_tokens
from hyperim.data.lines import BadLine, decode, decode_line, iter_raw_lines
from hyperim.data.reader import Document, iter_documents, parse_document, tokenize
from hyperim.data.vocab import LabelIndex, Vocabulary
from hyperim.errors import DataError, HyperIMError
from hyperim.geometry.pairwise import compile_if_worth_it
from hyperim.metrics import ranking_metrics
from hyperim.models.base import LABEL_CHUNK, TextModel

if TYPE_CHECKING:
    from hyperim.api import HyperIM

__all__ = [
    "LABEL_CHUNK",
    "atomic_output",
    "batches",
    "evaluate_predictions",
    "evidence_words",
    "iter_inputs",
    "iter_predictions",
    "predict_file",
    "proba_encoded",
    "topk_labels",
]
#: Batches read, length-sorted and scored together (bounds padding and memory).
WINDOW_BATCHES = 16
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


# ------------------------------------------------------------------------------ scoring
def batches(
    seqs: Sequence[np.ndarray], batch_size: int, device: torch.device
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Length-sorted batches (little padding); yields ``(positions, tokens, mask)``."""
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        tokens, mask = pad_tokens([seqs[i] for i in idx])
        yield idx, tokens.to(device), mask.to(device)


@torch.no_grad()
def proba_encoded(
    model: TextModel, seqs: Sequence[np.ndarray], batch_size: int = 128
) -> np.ndarray:
    """Probabilities ``(N, C)`` of every label for encoded token id sequences."""
    compile_if_worth_it(len(seqs))
    out = np.zeros((len(seqs), model.n_labels), dtype=np.float32)
    for idx, tokens, mask in batches(seqs, batch_size, model.device):
        out[idx] = torch.sigmoid(model.score_all(tokens, mask)).float().cpu().numpy()
    return out


@torch.no_grad()
def topk_labels(
    model: TextModel,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    label_chunk: int = LABEL_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` highest calibrated logits of each document and their label ids.

    Scores ``label_chunk`` labels at a time and merges them into the running top-k
    (:func:`hyperim.models.base.merge_topk`), so the largest score tensor is
    ``(B, k + label_chunk)``, never ``(B, n_labels)``. Equals
    ``torch.topk(model.score_all(tokens, mask), k)`` (logits include the logit offset), up to
    the order of exact ties.

    Parameters
    ----------
    model : TextModel
        Any registered family.
    tokens, mask : torch.Tensor
        ``(B, T)`` token ids (right-padded) and bool mask.
    k : int
        Labels per document, >= 1; clipped to ``n_labels``.
    label_chunk : int
        Labels scored at a time, >= 1 (any value; it need not divide ``n_labels``).

    Returns
    -------
    values : torch.Tensor
        ``(B, k)`` logits, descending.
    indices : torch.Tensor
        ``(B, k)`` label ids (long).
    """
    return model.topk(tokens, mask, k, label_chunk)


def evidence_words(
    model: TextModel,
    vocab: Vocabulary,
    encoded: Any,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    top: torch.Tensor,
    evidence: int,
) -> list[list[list[str]]]:
    """Per document and top label, the ``evidence`` words that speak most for the label (the
    highest word–label scores, ``<unk>`` and repeats skipped); empty lists for a family
    without per-word scores."""
    s = model.word_label_scores(encoded, top) if evidence > 0 else None  # (B, k, T)
    if s is None:
        return [[[] for _ in range(top.shape[1])] for _ in range(tokens.shape[0])]
    s = s.masked_fill(~mask[:, None, :], float("-inf"))
    out = []
    for row in range(tokens.shape[0]):
        n_tok = int(mask[row].sum())
        words = [vocab.tokens[i] for i in tokens[row, :n_tok].tolist()]
        per_label = []
        for j in range(top.shape[1]):
            best = s[row, j, :n_tok].topk(min(evidence * 3, n_tok)).indices.tolist()
            ev: list[str] = []
            for pos in best:
                if words[pos] not in ev and words[pos] != "<unk>":
                    ev.append(words[pos])
            per_label.append(ev[:evidence])
        out.append(per_label)
    return out


# ------------------------------------------------------------------------------ input
def _input_format(path: Path, fmt: str, first: bytes | None) -> str:
    if fmt != "auto":
        if fmt not in ("jsonl", "text"):
            raise HyperIMError(f"unknown input format {fmt!r}; choose auto, jsonl or text")
        return fmt
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".txt"):
        return "text"
    return (
        "jsonl"
        if first is not None and first.lstrip(b"\xef\xbb\xbf \t").startswith(b"{")
        else "text"
    )


def iter_inputs(
    path: str | Path, fmt: str = "auto", skip_invalid: bool = False
) -> Iterator[tuple[str | int, list[str] | None]]:
    """Stream ``(id, tokens)`` pairs from a prediction input, one line at a time.

    Parameters
    ----------
    path : str or Path
        JSON Lines (``{"text": ...}`` or ``{"token": [...]}``, optional ``"id"`` and labels,
        as :func:`hyperim.data.iter_documents` reads) or plain text (one document per line);
        gzip-compressed if the name ends in ``.gz``. Blank lines are skipped.
    fmt : str
        ``"jsonl"``, ``"text"`` or ``"auto"``: ``.jsonl``/``.json``/``.ndjson`` mean JSON
        Lines, ``.txt`` plain text, anything else is JSON Lines if its first non-blank line
        starts with ``{``.
    skip_invalid : bool
        Yield ``(line_number, None)`` for an invalid line instead of raising.

    Yields
    ------
    (id, tokens)
        ``id`` is the document's ``"id"`` (a string) when it has one, else its 1-based line
        number (an int).

    Raises
    ------
    DataError
        ``"<file>:<line>: <problem>"`` for the first invalid line (bad JSON, keys or UTF-8),
        or an unreadable file.
    """
    path = Path(path)
    lines = iter_raw_lines(path)
    head: list[tuple[int, bytes]] = []
    for lineno, raw in lines:
        head.append((lineno, raw))
        if raw.strip():
            break
    fmt = _input_format(path, fmt, head[-1][1] if head else None)
    for lineno, raw in itertools.chain(head, lines):
        if not raw.strip():
            continue
        item: tuple[str | int, list[str] | None]
        try:
            if fmt == "jsonl":
                doc, _ = parse_document(raw, lineno, require_labels=False)
                item = (doc.id if doc.id is not None else lineno), doc.tokens
            else:
                item = lineno, tokenize(decode(raw, lineno))
        except BadLine as e:
            if not skip_invalid:
                raise DataError(path, lineno, str(e)) from None
            item = lineno, None
        yield item


# ------------------------------------------------------------------------------ output
def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("predicting"),
        TextColumn("{task.completed:,.0f} docs"),
        TextColumn("{task.fields[rate]:,.0f} docs/s"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=True,
    )


@torch.no_grad()
def predict_file(
    model: HyperIM,
    input_path: str | Path,
    output_path: str | Path,
    k: int = 5,
    batch_size: int = 64,
    evidence: int = 0,
    progress: bool = False,
    *,
    label_chunk: int = LABEL_CHUNK,
    input_format: str = "auto",
    skip_invalid: bool = False,
) -> dict[str, Any]:
    """Predict the top-k labels of every document of ``input_path`` into ``output_path``.

    Each input document gives one output line, in input order::

        {"id": <input "id", else the line number>, "labels": [[label, probability], ...]}

    with ``k`` labels by descending probability (``k`` clipped to the number of labels), and
    with ``evidence > 0`` also ``"evidence": {label: [word, ...]}``, the words closest to each
    label (as :meth:`HyperIM.predict`). Results equal :meth:`HyperIM.predict`'s.

    Documents are read lazily in windows of ``WINDOW_BATCHES * batch_size``, sorted by
    length inside a window (little padding), scored with :func:`topk_labels` and written
    back in input order, so memory does not grow with the input. The output is written to a
    temporary sibling and renamed at the end: a failed run (say, an invalid input line)
    leaves no file under ``output_path``. A ``.gz`` output name means gzip.

    Parameters
    ----------
    model : HyperIM
    input_path : str or Path
        See :func:`iter_inputs` (JSON Lines or plain text, optionally ``.gz``).
    output_path : str or Path
        Replaced if it exists; its folder is created.
    k : int
        Labels per document, >= 1.
    batch_size : int
        Documents per forward pass.
    evidence : int
        Evidence words per label (0: none, faster).
    progress : bool
        Show documents and documents/s on stderr (rich).
    label_chunk : int
        Labels scored at a time (see :func:`topk_labels`).
    input_format : str
        ``"auto"``, ``"jsonl"`` or ``"text"``.
    skip_invalid : bool
        Skip invalid input lines (counted in the summary) instead of failing.

    Returns
    -------
    dict
        ``documents``, ``skipped``, ``seconds``, ``docs_per_s``, ``output``, ``k``.

    Raises
    ------
    DataError
        ``"<file>:<line>: <problem>"`` for an invalid input line, or an unreadable input.
    HyperIMError
        For ``k``, ``batch_size`` or ``label_chunk`` < 1, ``evidence`` < 0, or an output
        path that is the input.
    """
    if k < 1 or batch_size < 1 or label_chunk < 1 or evidence < 0:
        raise HyperIMError("k, batch_size and label_chunk must be >= 1 and evidence >= 0")
    src, dst = Path(input_path), Path(output_path)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise HyperIMError(f"{dst}: the output would overwrite the input")
    dst.parent.mkdir(parents=True, exist_ok=True)
    net, vocab, names = model.model, model.vocab, model.labels.labels
    k = min(k, len(names))
    window = batch_size * WINDOW_BATCHES
    t0 = time.perf_counter()
    n_docs = n_skipped = 0
    items = iter_inputs(src, input_format, skip_invalid)
    with _progress_bar(progress) as bar, atomic_output(dst) as out:
        task = bar.add_task("predict", total=None, rate=0.0)
        while True:
            chunk = list(itertools.islice(items, window))
            if not chunk:
                break
            if n_docs == 0:  # compile when the file holds enough work (a full first window)
                compile_if_worth_it(math.inf if len(chunk) == window else len(chunk))
            chunk_ok = [(i, t) for i, t in chunk if t is not None]
            n_skipped += len(chunk) - len(chunk_ok)
            seqs = [
                np.asarray(vocab.encode(t, net.config.max_len), dtype=np.int64) for _, t in chunk_ok
            ]
            lines: list[str | None] = [None] * len(seqs)
            order = np.argsort([len(s) for s in seqs], kind="stable")
            for lo in range(0, len(order), batch_size):
                idx = order[lo : lo + batch_size]
                tokens, mask = pad_tokens([seqs[i] for i in idx])
                tokens, mask = tokens.to(model.device), mask.to(model.device)
                encoded = net.encode_batch(tokens, mask)
                values, top = net.topk_encoded(encoded, k, label_chunk)
                probs = torch.sigmoid(values).tolist()
                words = (
                    evidence_words(net, vocab, encoded, tokens, mask, top, evidence)
                    if evidence
                    else None
                )
                for row, (i, label_ids) in enumerate(zip(idx.tolist(), top.tolist(), strict=True)):
                    obj: dict[str, Any] = {
                        "id": chunk_ok[i][0],
                        "labels": [
                            [names[j], p] for j, p in zip(label_ids, probs[row], strict=True)
                        ],
                        "set": model.top_label_set(label_ids, probs[row]),
                    }
                    if words is not None:
                        obj["evidence"] = {
                            names[j]: w for j, w in zip(label_ids, words[row], strict=True)
                        }
                    lines[i] = json.dumps(obj, ensure_ascii=False)
            if lines:
                out.write(("\n".join(lines) + "\n").encode("utf-8"))  # type: ignore[arg-type]
            n_docs += len(lines)
            elapsed = time.perf_counter() - t0
            bar.update(task, completed=n_docs, rate=n_docs / max(elapsed, 1e-9))
    seconds = time.perf_counter() - t0
    return {
        "documents": n_docs,
        "skipped": n_skipped,
        "seconds": round(seconds, 3),
        "docs_per_s": n_docs / max(seconds, 1e-9),
        "output": str(dst),
        "k": k,
    }


# ------------------------------------------------------------------------------ evaluation
def iter_predictions(path: str | Path) -> Iterator[tuple[int, Any, list[str]]]:
    """Stream ``(line_number, id, labels)`` from a :func:`predict_file` output.

    Raises
    ------
    DataError
        For a line that is not ``{"labels": [[label, probability], ...], ...}``.
    """
    path = Path(path)
    for lineno, raw in iter_raw_lines(path):
        if not raw.strip():
            continue
        try:
            obj = json.loads(decode_line(path, lineno, raw))
        except json.JSONDecodeError as e:
            raise DataError(path, lineno, f"bad JSON: {e.msg} (column {e.colno})") from None
        labels = obj.get("labels") if isinstance(obj, dict) else None
        if not isinstance(labels, list) or not all(
            isinstance(x, list) and x and isinstance(x[0], str) for x in labels
        ):
            raise DataError(path, lineno, 'expected {"labels": [[label, probability], ...]}')
        yield lineno, obj.get("id"), [x[0] for x in labels]


def _gold_iter(gold: str | Path | Iterable[Document] | Iterable[Collection[str]]):
    """``(id or None, labels)`` per gold document."""
    if isinstance(gold, str | Path):
        for doc in iter_documents(Path(gold), require_labels=True):
            yield doc.id, doc.labels
        return
    for item in gold:
        if isinstance(item, Document):
            yield item.id, item.labels
        else:
            yield None, list(item)


def evaluate_predictions(
    pred_path: str | Path,
    gold: str | Path | Iterable[Document] | Iterable[Collection[str]],
    label_list: Sequence[str] | LabelIndex | None = None,
    ks: Sequence[int] = (1, 3, 5),
    batch: int = 4096,
) -> dict[str, float]:
    """P@k and nDCG@k (Eq. 8, percent) of a :func:`predict_file` output against gold labels.

    Predictions and gold documents are matched by position and streamed, so no model and
    no ``(N, C)`` matrix is needed. A gold document with an ``id`` must have the same ``id``
    in the predictions. Ranking metrics read only the top ``max(ks)`` predicted labels; a
    file written with a smaller ``k`` counts the missing ranks as wrong.

    Parameters
    ----------
    pred_path : str or Path
        Output of :func:`predict_file`.
    gold : str, Path or iterable
        A labelled JSON Lines file (e.g. the input of :func:`predict_file`, or a dataset's
        ``test.jsonl``), or the gold :class:`Document` objects or label lists in order.
    label_list : sequence of str or LabelIndex, optional
        The model's labels: gold labels outside it are dropped, as in training-time
        evaluation (a model cannot predict them). None keeps every gold label.
    ks : sequence of int
        Cut-offs.
    batch : int
        Documents scored at a time.

    Returns
    -------
    dict
        ``{"P@1": ..., "P@3": ..., "P@5": ..., "nDCG@3": ..., "nDCG@5": ...}``.

    Raises
    ------
    DataError
        For invalid lines, different numbers of documents, or mismatched ids.
    """
    pred_path = Path(pred_path)
    names = label_list.labels if isinstance(label_list, LabelIndex) else label_list
    index: dict[str, int] = {x: i for i, x in enumerate(names)} if names is not None else {}
    fixed = names is not None

    def ids(labels: Iterable[str], gold_side: bool) -> list[int]:
        out = []
        for x in labels:
            i = index.get(x)
            if i is None:
                if fixed:
                    if gold_side:
                        continue
                    i = -1  # a label the model doesn't know is never right
                else:
                    i = index[x] = len(index)
            out.append(i)
        return out

    kmax = max(ks)
    totals: dict[str, float] = {}
    n = 0
    ranked: list[list[int]] = []
    truth: list[set[int]] = []

    def flush() -> None:
        if ranked:
            for key, v in ranking_metrics(ranked, truth, ks).items():
                totals[key] = totals.get(key, 0.0) + v * len(ranked)
            ranked.clear()
            truth.clear()

    preds, golds = iter_predictions(pred_path), _gold_iter(gold)
    for pair in itertools.zip_longest(preds, golds):
        p, g = pair
        if p is None or g is None:
            n_pred = n + (p is not None) + sum(1 for _ in preds)
            n_gold = n + (g is not None) + sum(1 for _ in golds)
            raise DataError(pred_path, None, f"{n_pred} predictions but {n_gold} gold documents")
        lineno, pred_id, labels = p
        gold_id, gold_labels = g
        if gold_id is not None and str(pred_id) != gold_id:
            raise DataError(
                pred_path, lineno, f"id {pred_id!r} does not match gold document {gold_id!r}"
            )
        ranked.append(ids(labels[:kmax], False))
        truth.append(set(ids(gold_labels, True)))
        n += 1
        if len(ranked) >= batch:
            flush()
    flush()
    if n == 0:
        raise DataError(pred_path, None, "no predictions")
    return {key: v / n for key, v in totals.items()}
