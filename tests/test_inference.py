"""Streaming inference: chunked top-k, predict_file == HyperIM.predict, atomic output, evaluation."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperim import inference
from hyperim.api import HyperIM
from hyperim.data import LabelIndex, Vocabulary, tokenize
from hyperim.data.batching import pad_tokens
from hyperim.errors import DataError, HyperIMError
from hyperim.inference import evaluate_predictions, predict_file, topk_labels
from hyperim.metrics import evaluate_scores
from hyperim.models import HyperIMConfig, HyperIMModel
from tests.conftest import HIERARCHY, make_docs


def random_model(n_labels: int, vocab_size: int, dtype=torch.float64, **kw) -> HyperIMModel:
    torch.manual_seed(0)
    cfg = HyperIMConfig(
        vocab_size=vocab_size,
        n_labels=n_labels,
        max_len=16,
        n_balls=3,
        ball_dim=2,
        label_bias=True,
        logit_offset=-0.7,
        label_init_scale=0.5,
        word_init_scale=0.5,
        **kw,
    )
    model = HyperIMModel(cfg).to(dtype)
    with torch.no_grad():  # small distinct biases: no exact ties, text still decides
        model.head.label_bias.copy_(0.05 * torch.randn(n_labels, dtype=dtype))
    return model.eval()


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return make_docs(45, seed=7)


@pytest.fixture(scope="module")
def tiny(docs: list[dict]) -> HyperIM:
    vocab = Vocabulary.build([tokenize(d["text"]) for d in docs[:30]])  # some words unknown
    labels = sorted({x for d in docs for x in d["labels"]} | {p for p, _ in HIERARCHY})
    model = random_model(len(labels), len(vocab), dtype=torch.float32)
    return HyperIM(model, vocab, LabelIndex(labels), 0.5)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_streaming_topk_equals_full_topk() -> None:
    model = random_model(37, 50)
    gen = torch.Generator().manual_seed(1)
    lengths = [16, 3, 9, 1, 12]
    seqs = [torch.randint(2, 50, (n,), generator=gen).numpy() for n in lengths]
    tokens, mask = pad_tokens(seqs)
    full = model.score_all(tokens, mask)
    assert len(set(full.flatten().tolist())) == full.numel()  # no ties to order
    for k in (1, 4, 37, 50):
        ref_v, ref_i = full.topk(min(k, 37), dim=1)
        for chunk in (1, 2, 3, 5, 8, 36, 37, 100):
            v, i = topk_labels(model, tokens, mask, k, label_chunk=chunk)
            assert torch.equal(i, ref_i), (k, chunk)
            torch.testing.assert_close(v, ref_v, rtol=1e-12, atol=1e-12)
    with pytest.raises(HyperIMError):
        topk_labels(model, tokens, mask, 0)


def test_output_equals_predict(
    tiny: HyperIM, docs: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference, "WINDOW_BATCHES", 2)  # several windows of 2 batches
    rows = [{k: v for k, v in d.items() if k != "labels" or i % 2} for i, d in enumerate(docs)]
    rows[5].pop("id")  # no id: the line number stands in
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    summary = predict_file(
        tiny, src, tmp_path / "out" / "pred.jsonl", k=3, batch_size=4, evidence=2, label_chunk=2
    )
    assert summary["documents"] == len(docs) and summary["skipped"] == 0
    assert summary["docs_per_s"] > 0 and summary["k"] == 3
    out = read_jsonl(tmp_path / "out" / "pred.jsonl")
    expected = tiny.predict([d["text"] for d in docs], k=3, evidence=2)
    assert [o["id"] for o in out] == [d.get("id", 6) for d in rows]
    for o, preds in zip(out, expected, strict=True):
        assert [x[0] for x in o["labels"]] == [p.label for p in preds]
        np.testing.assert_allclose(
            [x[1] for x in o["labels"]], [p.probability for p in preds], atol=1e-6, rtol=0
        )
        assert o["evidence"] == {p.label: p.evidence for p in preds}
    # k larger than the label set is clipped; no evidence key without evidence
    predict_file(tiny, src, tmp_path / "all.jsonl", k=100)
    first = read_jsonl(tmp_path / "all.jsonl")[0]
    assert len(first["labels"]) == len(tiny.labels) and "evidence" not in first


def test_plain_text_and_gzip(tiny: HyperIM, docs: list[dict], tmp_path: Path) -> None:
    texts = [d["text"] for d in docs[:10]]
    src = tmp_path / "in.txt"
    src.write_text("\n".join([texts[0], "", *texts[1:]]) + "\n", encoding="utf-8")
    predict_file(tiny, src, tmp_path / "txt.jsonl", k=2, progress=True)
    out = read_jsonl(tmp_path / "txt.jsonl")
    assert [o["id"] for o in out] == [1, *range(3, 12)]  # line numbers; the blank line skipped
    expected = tiny.predict(texts, k=2, evidence=0)
    assert [[x[0] for x in o["labels"]] for o in out] == [[p.label for p in e] for e in expected]
    # gzip in and out (and "auto" sniffing JSON Lines from an unknown suffix)
    gz = write_jsonl(tmp_path / "in.data.gz", [{"text": t} for t in texts])
    predict_file(tiny, gz, tmp_path / "gz.jsonl.gz", k=2)
    out_gz = read_jsonl(tmp_path / "gz.jsonl.gz")
    assert [o["labels"] for o in out_gz] == [o["labels"] for o in out]
    # pre-tokenised input
    tok = write_jsonl(tmp_path / "tok.jsonl", [{"token": tokenize(t)} for t in texts])
    predict_file(tiny, tok, tmp_path / "tok_out.jsonl", k=2)
    assert [o["labels"] for o in read_jsonl(tmp_path / "tok_out.jsonl")] == [
        o["labels"] for o in out
    ]


def test_bad_line_leaves_no_output(tiny: HyperIM, docs: list[dict], tmp_path: Path) -> None:
    rows = [json.dumps({"text": d["text"]}) for d in docs[:200]]
    rows[2] = '{"text": 5}'
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(rows) + "\n")
    dst = tmp_path / "pred.jsonl"
    with pytest.raises(DataError, match=rf"^{re.escape(str(src))}:3: 'text' must be a string"):
        predict_file(tiny, src, dst, batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no file, no temp
    dst.write_text("old\n")
    with pytest.raises(DataError):
        predict_file(tiny, src, dst)
    assert dst.read_text() == "old\n"  # an existing output is untouched by a failed run
    summary = predict_file(tiny, src, dst, skip_invalid=True)
    assert summary["documents"] == len(rows) - 1 and summary["skipped"] == 1
    bad_utf8 = tmp_path / "bad.txt"
    bad_utf8.write_bytes(b"fine words\n\xff oops\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(bad_utf8))}:2: not valid UTF-8"):
        predict_file(tiny, bad_utf8, tmp_path / "x.jsonl")
    with pytest.raises(DataError, match="cannot open"):
        predict_file(tiny, tmp_path / "missing.jsonl", tmp_path / "y.jsonl")
    with pytest.raises(HyperIMError, match="overwrite the input"):
        predict_file(tiny, src, src)
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()


def test_evaluate_predictions(tiny: HyperIM, docs: list[dict], tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "gold.jsonl", docs)
    pred = tmp_path / "pred.jsonl"
    predict_file(tiny, src, pred, k=5)
    got = evaluate_predictions(pred, src, tiny.labels, batch=7)
    scores = tiny.predict_proba([d["text"] for d in docs])
    truth = [{tiny.labels.index(x) for x in d["labels"]} for d in docs]
    ref = evaluate_scores(scores, truth)
    assert set(got) == {"P@1", "P@3", "P@5", "nDCG@3", "nDCG@5"}
    for key, value in got.items():
        assert value == pytest.approx(ref[key], abs=1e-9)
    # label lists or Documents work as gold too, with or without a label list
    assert evaluate_predictions(pred, [d["labels"] for d in docs]) == pytest.approx(got)
    with pytest.raises(DataError, match="45 predictions but 44 gold documents"):
        evaluate_predictions(pred, [d["labels"] for d in docs[:44]])
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", docs[1:] + docs[:1])
    with pytest.raises(DataError, match=r"pred.jsonl:1: id 'd0' does not match"):
        evaluate_predictions(pred, shuffled)
