"""``hyperim`` command line: one verb per task (train, evaluate, predict, baseline)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hyperim.errors import HyperIMError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Hyperbolic Interaction Model for hierarchical multi-label text classification.",
)
baseline_app = typer.Typer(no_args_is_help=True, help="Baselines evaluated by the same code.")
app.add_typer(baseline_app, name="baseline")

DeviceOpt = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")]
DataOpt = Annotated[
    Optional[Path], typer.Option("--data", help="Dataset folder (default: bundled debtags).")
]


def _echo_metrics(name: str, metrics: dict[str, float], as_json: bool) -> None:
    from hyperim.metrics import format_table

    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        typer.echo(format_table({name: metrics}))


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    data: DataOpt = None,
    config: Annotated[
        Optional[Path], typer.Option(help="TOML file of options; flags override it.")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run in --out.")
    ] = False,
    batch_size: Annotated[Optional[int], typer.Option()] = None,
    lr: Annotated[Optional[float], typer.Option()] = None,
    hyper_lr: Annotated[
        Optional[float], typer.Option(help="Riemannian Adam lr (default: --lr).")
    ] = None,
    word_lr: Annotated[
        Optional[float], typer.Option(help="Riemannian Adam lr of the word embeddings.")
    ] = None,
    negatives: Annotated[
        Optional[int], typer.Option(help="Sampled negatives per document (Eq. 7); 0 = all labels.")
    ] = None,
    max_len: Annotated[Optional[int], typer.Option()] = None,
    n_balls: Annotated[Optional[int], typer.Option()] = None,
    ball_dim: Annotated[Optional[int], typer.Option()] = None,
    aggregate: Annotated[Optional[str], typer.Option(help="sum | riemannian")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="float32 | float64")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N")] = None,
    patience: Annotated[Optional[int], typer.Option()] = None,
    max_steps_per_epoch: Annotated[Optional[int], typer.Option()] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip (and count) invalid lines.")
    ] = False,
) -> None:
    """Train HyperIM; the best model (by validation nDCG@5) lands in OUT/model."""
    from hyperim.config import TrainConfig
    from hyperim.train import train as run_train

    if resume:
        summary = run_train(None, out, resume=True, epochs=epochs)
    else:
        cfg = TrainConfig.from_toml(config) if config else TrainConfig()
        cfg = cfg.updated(
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            hyper_lr=hyper_lr,
            word_lr=word_lr,
            negatives=negatives,
            max_len=max_len,
            n_balls=n_balls,
            ball_dim=ball_dim,
            aggregate=aggregate,
            dtype=dtype,
            device=device,
            patience=patience,
            max_steps_per_epoch=max_steps_per_epoch,
            skip_invalid=skip_invalid or None,
        )
        summary = run_train(data, out, cfg, epochs=epochs)
    typer.echo(json.dumps(summary))


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="Run folder or saved model folder.")],
    data: Annotated[
        Optional[Path], typer.Option(help="Dataset folder (default: the one it was trained on).")
    ] = None,
    split: Annotated[str, typer.Option(help="train | valid | test")] = "test",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of metrics.")
    ] = False,
    threshold: Annotated[
        Optional[float], typer.Option(help="F1 threshold (default: the model's).")
    ] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Evaluate a trained model: P@1/3/5, nDCG@3/5 (Eq. 8), micro/macro-F1."""
    from hyperim.api import HyperIM
    from hyperim.data import bundled_dataset_path, load_dataset
    from hyperim.metrics import evaluate_scores

    if split not in ("train", "valid", "test"):
        raise HyperIMError(f"--split must be train, valid or test, not {split!r}")
    m = HyperIM.from_pretrained(model, device=device)
    data_dir = data or Path(m.meta.get("data") or bundled_dataset_path())
    ds = load_dataset(data_dir)
    docs = getattr(ds, split)
    scores = m.predict_proba([d.tokens for d in docs])
    truth = [set(m.labels.encode(d.labels)) for d in docs]
    thr = m.threshold if threshold is None else threshold
    _echo_metrics("HyperIM", evaluate_scores(scores, truth, threshold=thr), as_json)


@app.command()
def predict(
    model: Annotated[Path, typer.Option("--model", help="Run folder or saved model folder.")],
    text: Annotated[Optional[str], typer.Argument(help="A document to classify.")] = None,
    input_file: Annotated[
        Optional[Path],
        typer.Option(
            "--input", help='JSONL ({"text"} or {"token"}) or plain text, one document per line.'
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Labels per document.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per document.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Predict the top-k labels of TEXT or of every document in --input, with evidence words."""
    from hyperim.api import HyperIM

    if (text is None) == (input_file is None):
        raise HyperIMError("give either TEXT or --input FILE")
    m = HyperIM.from_pretrained(model, device=device)
    texts = [text] if text is not None else _read_inputs(input_file)
    for t, preds in zip(texts, m.predict(texts, k=k), strict=True):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "labels": [[p.label, round(p.probability, 4)] for p in preds],
                        "evidence": {p.label: p.evidence for p in preds},
                    }
                )
            )
        else:
            head = (t if isinstance(t, str) else " ".join(t)).replace("\n", " ")[:70]
            typer.echo(f"{head}")
            for p in preds:
                typer.echo(f"  {p.probability:6.3f}  {p.label:<32} {', '.join(p.evidence)}")


def _read_inputs(path: Path) -> list:
    from hyperim.data import iter_documents

    if path.suffix in (".jsonl", ".json", ".gz"):
        return [d.tokens for d in iter_documents(path, require_labels=False)]
    from hyperim.errors import DataError

    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(path, None, f"not UTF-8 ({e.reason})") from None


@baseline_app.command("tfidf")
def baseline_tfidf(
    data: DataOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of metrics.")
    ] = False,
    split: Annotated[str, typer.Option(help="valid | test")] = "test",
) -> None:
    """TF-IDF + one-vs-rest logistic regression, evaluated like HyperIM."""
    from hyperim.baselines.tfidf import TfidfBaseline
    from hyperim.data import LabelIndex, bundled_dataset_path, load_dataset
    from hyperim.metrics import evaluate_scores

    ds = load_dataset(data or bundled_dataset_path())
    index = LabelIndex(ds.labels)
    model = TfidfBaseline().fit(
        [" ".join(d.tokens) for d in ds.train],
        [index.encode(d.labels) for d in ds.train],
        len(index),
    )
    docs = getattr(ds, split)
    scores = model.predict_proba([" ".join(d.tokens) for d in docs])
    _echo_metrics(
        "TF-IDF+LR", evaluate_scores(scores, [set(index.encode(d.labels)) for d in docs]), as_json
    )


@baseline_app.command("frequency")
def baseline_frequency(
    data: DataOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of metrics.")
    ] = False,
) -> None:
    """Rank labels by training frequency alone (the sanity anchor a model must beat)."""
    from hyperim.baselines.frequency import FrequencyBaseline
    from hyperim.data import LabelIndex, bundled_dataset_path, load_dataset
    from hyperim.metrics import evaluate_scores

    ds = load_dataset(data or bundled_dataset_path())
    index = LabelIndex(ds.labels)
    model = FrequencyBaseline().fit([index.encode(d.labels) for d in ds.train], len(index))
    scores = model.predict_proba(len(ds.test))
    _echo_metrics(
        "frequency",
        evaluate_scores(scores, [set(index.encode(d.labels)) for d in ds.test]),
        as_json,
    )


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        app(standalone_mode=False)
    except HyperIMError as e:
        typer.echo(f"hyperim: error: {e}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("hyperim: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click usage errors (bad flag, missing option)
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
