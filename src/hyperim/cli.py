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
data_app = typer.Typer(
    no_args_is_help=True, help="Datasets: generate synthetic ones, build one from WordNet."
)
app.add_typer(data_app, name="data")
pretrain_app = typer.Typer(
    no_args_is_help=True, help="Pre-train embeddings: label hierarchy (Eq. 2), words (Eq. 3, 4)."
)
app.add_typer(pretrain_app, name="pretrain")
plot_app = typer.Typer(
    no_args_is_help=True,
    help="Pictures (PNG or SVG): the labels in the Poincaré disk, one document's words.",
)
app.add_typer(plot_app, name="plot")


def _version(value: bool) -> None:
    if value:
        from hyperim import __version__

        typer.echo(f"hyperim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Hyperbolic Interaction Model for hierarchical multi-label text classification."""


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


def train_defaults() -> dict[str, object]:
    """:class:`~hyperim.config.TrainConfig`'s literal defaults, read from its source so that
    ``train --help`` shows them without importing torch (a test checks them against the
    class)."""
    import ast
    import contextlib

    source = (Path(__file__).parent / "config.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == "TrainConfig":
            out = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    with contextlib.suppress(ValueError, TypeError):  # not a literal
                        out[item.target.id] = ast.literal_eval(item.value)
            return out
    return {}


_DEFAULTS = train_defaults()


def registered_families() -> list[str]:
    """The names in :data:`hyperim.models.registry.FAMILIES`, read from its source so that
    ``train --help`` lists them without importing torch (a test checks them against it)."""
    import ast

    source = (Path(__file__).parent / "models" / "registry.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "FAMILIES"
            and isinstance(node.value, ast.Dict)
        ):
            return [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
    return []


def _default(name: str) -> str:
    value = _DEFAULTS.get(name)
    return "none" if value is None else str(value)


_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(
    context_settings=_EXTRA,
    epilog="Options of the model family (its \\[model] table) follow as --name VALUE, "
    "--flag/--no-flag: `hyperim models NAME` lists them with their defaults.",
)
def train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    data: DataOpt = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            help=f"Model family: {' | '.join(registered_families())} (`hyperim models`).",
        ),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="TOML file of options; flags override it.")
    ] = None,
    epochs: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("epochs"),
        ),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("seed"),
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run in --out.")
    ] = False,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("batch_size"),
        ),
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            show_default=_default("lr"),
        ),
    ] = None,
    hyper_lr: Annotated[
        Optional[float],
        typer.Option(show_default=_default("hyper_lr"), help="Riemannian Adam lr (default: --lr)."),
    ] = None,
    word_lr: Annotated[
        Optional[float],
        typer.Option(show_default=_default("word_lr"), help="lr of the word embeddings."),
    ] = None,
    head_lr: Annotated[
        Optional[float],
        typer.Option(
            show_default=_default("head_lr"),
            help="Adam lr of the prediction layers (default: --lr).",
        ),
    ] = None,
    lr_schedule: Annotated[
        Optional[str],
        typer.Option(
            show_default=_default("lr_schedule"),
            help="constant | cosine | linear (decay to 0 at the last epoch).",
        ),
    ] = None,
    warmup_steps: Annotated[
        Optional[int],
        typer.Option(show_default=_default("warmup_steps"), help="Linear lr warm-up steps."),
    ] = None,
    weight_decay: Annotated[
        Optional[float],
        typer.Option(
            show_default=_default("weight_decay"),
            help="Decoupled (AdamW) decay of the Euclidean weight matrices.",
        ),
    ] = None,
    negatives: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("negatives"),
            help="Sampled negatives per document (Eq. 7); 0 = all labels.",
        ),
    ] = None,
    max_len: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("max_len"),
        ),
    ] = None,
    dtype: Annotated[
        Optional[str], typer.Option(show_default=_default("dtype"), help="float32 | float64")
    ] = None,
    device: Annotated[
        Optional[str],
        typer.Option(show_default=_default("device"), help="auto | cpu | cuda | cuda:N"),
    ] = None,
    patience: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("patience"),
        ),
    ] = None,
    max_steps_per_epoch: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("max_steps_per_epoch"),
        ),
    ] = None,
    max_minutes: Annotated[
        Optional[float],
        typer.Option(
            show_default=_default("max_minutes"),
            help="Time budget of the training steps; the epoch then running ends.",
        ),
    ] = None,
    eval_batch_size: Annotated[
        Optional[int],
        typer.Option(
            show_default=_default("eval_batch_size"),
            help="Documents per batch when the validation split is scored.",
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip (and count) invalid lines.")
    ] = False,
    threshold_policy: Annotated[
        Optional[str],
        typer.Option(
            show_default=_default("threshold_policy"),
            help="Label-set thresholds chosen on the validation split: fixed | global | "
            "per-level | per-label | auto (the best of them in 2-fold CV).",
        ),
    ] = None,
    label_closure: Annotated[
        bool,
        typer.Option("--label-closure", help="A predicted label brings its ancestors."),
    ] = False,
) -> None:
    """Train a model (HyperIM by default); the best one (by validation nDCG@5) lands in
    OUT/model."""
    from hyperim.config import TrainConfig
    from hyperim.train import train as run_train

    flags = dict(
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        hyper_lr=hyper_lr,
        word_lr=word_lr,
        head_lr=head_lr,
        lr_schedule=lr_schedule,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        negatives=negatives,
        max_len=max_len,
        dtype=dtype,
        device=device,
        patience=patience,
        max_steps_per_epoch=max_steps_per_epoch,
        max_minutes=max_minutes,
        eval_batch_size=eval_batch_size,
        skip_invalid=skip_invalid or None,
        threshold_policy=threshold_policy,
        label_closure=label_closure or None,
    )
    flags = {k: v for k, v in flags.items() if v is not None}
    if resume:  # train() refuses, by name, the options a resumed run cannot change
        refused = ["--config"] if config else []
        refused += ["--model"] if model else []
        refused += [a for a in ctx.args if a.startswith("--")]  # the family's options
        if refused:
            raise HyperIMError(
                f"--resume cannot change {', '.join(refused)} (that would be another run)"
            )
        summary = run_train(data, out, resume=True, epochs=epochs, **flags)
    else:
        cfg = TrainConfig.from_toml(config) if config else TrainConfig()
        cfg = cfg.updated(model=model)
        cfg = cfg.updated(**flags, **parse_model_options(cfg.model, ctx.args))
        summary = run_train(data, out, cfg, epochs=epochs)
    typer.echo(json.dumps(summary))


def parse_model_options(model: str, args: list[str]) -> dict:
    """``["--n-balls", "10", "--no-label-bias"]`` -> ``{"n_balls": 10, "label_bias": False}``,
    checked against the fields of ``model``'s config."""
    from dataclasses import MISSING

    from hyperim.models.registry import get_family

    fields = {f.name: f for f in get_family(model).config_class.option_fields()}
    out: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise HyperIMError(f"unexpected argument {arg!r}")
        key, _, inline = arg[2:].partition("=")
        name = key.replace("-", "_")
        negated = name.startswith("no_") and name[3:] in fields
        if negated:
            name = name[3:]
        f = fields.get(name)
        if f is None:
            raise HyperIMError(
                f"no such option --{key} for model {model} (its options: "
                + ", ".join("--" + n.replace("_", "-") for n in fields)
                + ")"
            )
        kind = str(f.type)
        if kind == "bool":
            if inline:
                raise HyperIMError(f"--{key} is a flag: give --{key} or --no-{key}")
            out[name] = not negated
            i += 1
            continue
        if negated:
            raise HyperIMError(f"--{key}: only flags have a --no- form")
        if inline:
            value = inline
            i += 1
        elif i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            raise HyperIMError(f"--{key} needs a value")
        out[name] = _convert(value, kind, key)
        assert f.default is not MISSING or f.default_factory is not MISSING
    return out


def _convert(value: str, kind: str, key: str):
    parts = [p.strip() for p in kind.split("|")]
    if "None" in parts and value.lower() in ("none", ""):
        return None
    for part, cast in (("int", int), ("float", float), ("str", str)):
        if part in parts:
            try:
                return cast(value)
            except ValueError:
                continue
    raise HyperIMError(f"--{key} must be {kind}, got {value!r}")


@app.command()
def models(
    name: Annotated[Optional[str], typer.Argument(help="A model family.")] = None,
) -> None:
    """List the model families, or the options of one (its \\[model] table) with defaults."""
    from dataclasses import MISSING

    from hyperim.models.registry import FAMILIES, get_family

    if name is None:
        for key, (_, _, description) in FAMILIES.items():
            typer.echo(f"{key:<12} {description}")
        return
    family = get_family(name)
    typer.echo(f"{name}: {family.description}")
    typer.echo(f"options (hyperim train --model {name} --NAME VALUE, or [model] in TOML):")
    for f in family.config_class.option_fields():
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        typer.echo(f"  --{f.name.replace('_', '-'):<20} {f.type!s:<14} default {default!r}")


@app.command()
def info(
    model: Annotated[Path, typer.Option("--model", help="Run folder or saved model folder.")],
    labels: Annotated[
        bool, typer.Option("--labels", help="List the model's labels, one per line.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What a trained model is: family, options, sizes, the epoch kept and its validation
    scores (and, with --labels, its labels)."""
    from hyperim.api import HyperIM

    m = HyperIM.from_pretrained(model, device="cpu")
    if labels:
        for name in m.labels.labels:
            typer.echo(name)
        return
    from dataclasses import asdict

    summary = {
        "model_type": m.model_type,
        "labels": len(m.labels),
        "vocabulary": len(m.vocab),
        "parameters": sum(p.numel() for p in m.model.parameters()),
        "threshold": m.threshold,
        "thresholds": (
            None
            if m.thresholds is None
            else {
                "policy": m.thresholds.policy,
                "closure": m.thresholds.closure,
                **m.thresholds.notes,
            }
        ),
        "epoch": m.meta.get("epoch"),
        "valid": m.meta.get("valid"),
        "data": m.meta.get("data"),
        "config": asdict(m.model.config),
    }
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    typer.echo(
        f"{summary['model_type']} model: {summary['labels']} labels, "
        f"{summary['vocabulary']} words, {summary['parameters']:,} parameters"
    )
    if summary["epoch"] is not None:
        typer.echo(f"kept epoch {summary['epoch']}, trained on {summary['data']}")
    if summary["valid"]:
        typer.echo("validation: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["valid"].items()))
    if m.thresholds is None:
        typer.echo(f"threshold {m.threshold:g} for every label")
    else:
        notes = ", ".join(f"{k} {v:g}" for k, v in m.thresholds.notes.items())
        closure = ", ancestors added" if m.thresholds.closure else ""
        typer.echo(f"thresholds: {m.thresholds.policy} ({notes}{closure})")
    typer.echo("options: " + ", ".join(f"{k}={v}" for k, v in summary["config"].items()))


@app.command()
def evaluate(
    model: Annotated[
        Optional[Path], typer.Option("--model", help="Run folder or saved model folder.")
    ] = None,
    predictions: Annotated[
        Optional[Path],
        typer.Option(help="A `predict --output` file: evaluate it, no model needed."),
    ] = None,
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
    """Evaluate a trained model: P@1/3/5, nDCG@3/5 (Eq. 8), micro/macro-F1; or, with
    --predictions, a saved predictions file (ranking metrics only)."""
    from hyperim.api import HyperIM
    from hyperim.data import bundled_dataset_path, load_dataset

    if split not in ("train", "valid", "test"):
        raise HyperIMError(f"--split must be train, valid or test, not {split!r}")
    if (model is None) == (predictions is None):
        raise HyperIMError("give either --model DIR or --predictions FILE")
    if predictions is not None:
        from hyperim.data.reader import find_dataset_files
        from hyperim.inference import evaluate_predictions

        files = find_dataset_files(data or bundled_dataset_path())
        gold = {"train": files.train, "valid": files.valid, "test": files.test}[split]
        _echo_metrics("predictions", evaluate_predictions(predictions, gold), as_json)
        return
    if threshold is not None and not 0 < threshold < 1:
        raise HyperIMError(f"--threshold must be in (0, 1), got {threshold}")
    m = HyperIM.from_pretrained(model, device=device)
    data_dir = data or Path(m.meta.get("data") or bundled_dataset_path())
    ds = load_dataset(data_dir)
    docs = getattr(ds, split)
    if not docs:
        raise HyperIMError(f"{data_dir}: the {split} split has no documents to evaluate")
    gold = [label for d in docs for label in d.labels]
    if not gold:
        raise HyperIMError(f"{data_dir}: no document of the {split} split has a label")
    known = set(m.labels.labels)
    unknown = [label for label in gold if label not in known]
    if unknown and len(unknown) == len(gold):
        raise HyperIMError(
            f"{data_dir}: none of the {split} split's labels is one the model knows "
            f"(e.g. {unknown[0]!r}); is this the dataset it was trained on?"
        )
    if unknown:
        typer.echo(
            f"hyperim: warning: {len(unknown)} of {len(gold)} gold labels "
            f"({len(set(unknown))} distinct, e.g. {unknown[0]!r}) are unknown to the model "
            "and count as misses",
            err=True,
        )
    scores = m.predict_proba([d.tokens for d in docs])
    truth = [set(m.labels.encode(d.labels)) for d in docs]
    _echo_metrics(m.model_type, m.metrics(scores, truth, threshold), as_json)


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
    output: Annotated[
        Optional[Path],
        typer.Option(
            help="Stream --input into this JSON Lines file (constant memory, progress bar)."
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Labels per document.")] = 5,
    evidence: Annotated[int, typer.Option(help="Evidence words per label (with --output).")] = 0,
    batch_size: Annotated[int, typer.Option()] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per document.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Predict the top-k labels of TEXT or of every document in --input, with evidence words."""
    from hyperim.api import HyperIM
    from hyperim.atomic import check_output

    if (text is None) == (input_file is None):
        raise HyperIMError("give either TEXT or --input FILE")
    if output is not None and input_file is None:
        raise HyperIMError("--output needs --input FILE")
    if k < 1 or batch_size < 1 or evidence < 0:
        raise HyperIMError("-k and --batch-size must be >= 1, --evidence >= 0")
    if input_file is not None and not input_file.is_file():
        problem = "is a folder" if input_file.is_dir() else "file not found"
        raise HyperIMError(f"--input {input_file}: {problem}")
    if output is not None:
        check_output(output, "--output")
    m = HyperIM.from_pretrained(model, device=device)
    if output is not None:
        from hyperim.inference import predict_file

        summary = predict_file(
            m, input_file, output, k=k, batch_size=batch_size, evidence=evidence, progress=True
        )
        typer.echo(json.dumps(summary, default=str))
        return
    if text is not None:
        ids, texts = [None], [text]
    else:
        from hyperim.inference import iter_inputs

        pairs = list(iter_inputs(input_file))
        ids, texts = [i for i, _ in pairs], [t for _, t in pairs]
    for doc_id, t, preds in zip(
        ids, texts, m.predict(texts, k=k, evidence=evidence or 3), strict=True
    ):
        if as_json:  # the records of --output (same keys, full precision)
            record = {"id": doc_id, "labels": [[p.label, p.probability] for p in preds]}
            ids = [m.labels.index(p.label) for p in preds]
            record["set"] = m.top_label_set(ids, [p.probability for p in preds])
            record["evidence"] = {p.label: p.evidence for p in preds}
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            head = (t if isinstance(t, str) else " ".join(t)).replace("\n", " ")[:70]
            typer.echo(f"{head}")
            for p in preds:
                typer.echo(f"  {p.probability:6.3f}  {p.label:<32} {', '.join(p.evidence)}")


@app.command()
def serve(
    model: Annotated[Path, typer.Option("--model", help="Run folder or saved model folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port (0: any free one, printed).")] = 8000,
    hierarchy: Annotated[
        Optional[Path],
        typer.Option(help="hierarchy.tsv for /v1/labels (default: the training data's)."),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body in bytes (413 above).")
    ] = 1 << 20,
    batch_window_ms: Annotated[
        float, typer.Option(help="How long concurrent requests are collected into one batch.")
    ] = 5.0,
    max_batch: Annotated[int, typer.Option(help="Documents scored together at most.")] = 64,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N")] = "cpu",
) -> None:
    """Serve the model over HTTP: POST /v1/suggest, /v1/suggest-batch; GET /v1/labels,
    /v1/health; the web page at /, OpenAPI docs at /docs."""
    from hyperim.serve import serve as run_server

    def ready(bound_host: str, bound_port: int) -> None:
        typer.echo(f"hyperim: serving {model} on http://{bound_host}:{bound_port}/", err=True)

    run_server(
        model,
        host=host,
        port=port,
        hierarchy=hierarchy,
        max_body_bytes=max_body,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        device=device,
        on_ready=ready,
    )


def _budget_options(epochs: Optional[int], budget: Optional[float]) -> dict:
    if epochs is None and budget is None:
        raise HyperIMError("give --epochs N or --budget MINUTES (or both)")
    if epochs is not None and epochs < 1:
        raise HyperIMError("--epochs must be >= 1")
    if budget is not None and not budget > 0:
        raise HyperIMError("--budget must be > 0 minutes")
    return {"epochs": epochs, "minutes": budget}


def _apply_options(entries: list, options: list[str]) -> None:
    """``--option KEY=VALUE`` for every neural entry whose training or family knows KEY; the
    label-set options (``threshold_policy``, ...) for the baselines too, so that every row's
    F1 comes from thresholds chosen the same way."""
    from dataclasses import fields as dc_fields

    from hyperim.benchmark import BASELINES
    from hyperim.config import TrainConfig
    from hyperim.models.registry import get_family

    parsed = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HyperIMError(f"--option {item!r}: expected KEY=VALUE")
        try:
            parsed[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.replace("-", "_")] = value
    train_keys = {f.name for f in dc_fields(TrainConfig)}
    used = set()
    from hyperim.benchmark import THRESHOLD_KEYS

    for e in entries:
        if e.model in BASELINES:
            for k in THRESHOLD_KEYS:
                if k in parsed:
                    e.options.setdefault(k, parsed[k])
                    used.add(k)
            continue
        known = train_keys | {f.name for f in get_family(e.model).config_class.option_fields()}
        for k, v in parsed.items():
            if k in known:
                e.options.setdefault(k, v)
                used.add(k)
    unused = sorted(set(parsed) - used)
    if unused:
        raise HyperIMError(f"--option {', '.join(unused)}: no listed model has such an option")


def _run_entries(entries, data, out, seeds, epochs, budget, split, option):
    """Options applied, every entry run (resumable); returns the results and a table title."""
    from hyperim.atomic import check_output
    from hyperim.benchmark import run_entries
    from hyperim.data import bundled_dataset_path

    check_output(out, "--out", folder=True)
    _apply_options(entries, option or [])
    data_dir = data or bundled_dataset_path()
    results = run_entries(
        entries,
        data_dir,
        out,
        seeds,
        **_budget_options(epochs, budget),
        split=split,
        log=lambda m: typer.echo(m, err=True),
        progress=sys.stderr.isatty(),
    )
    return results, f"{data_dir.name}, {split} split"


@app.command()
def benchmark(
    out: Annotated[Path, typer.Option(help="Folder for runs, results.md and results.jsonl.")],
    data: DataOpt = None,
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated: hyperim,euclidean,tfidf,frequency")
    ] = "hyperim,euclidean,tfidf,frequency",
    seeds: Annotated[int, typer.Option(help="Seeds per model (mean ± std).")] = 1,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per neural model.")] = None,
    budget: Annotated[
        Optional[float], typer.Option(help="Training minutes per neural model and seed.")
    ] = None,
    split: Annotated[str, typer.Option(help="valid | test")] = "test",
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", help="KEY=VALUE for every model that has KEY (repeatable)."),
    ] = None,
) -> None:
    """The paper's Table 2 on your data: train and evaluate each model on the same splits with
    the same budget; writes OUT/results.md and OUT/results.jsonl (resumable)."""
    from hyperim.benchmark import parse_models, write_benchmark

    entries = parse_models(models)
    results, title = _run_entries(entries, data, out, seeds, epochs, budget, split, option)
    path = write_benchmark(results, out, title)
    typer.echo(path.read_text(), nl=False)


@app.command()
def ablation(
    out: Annotated[Path, typer.Option(help="Folder for runs, results.md and ablation.png.")],
    data: DataOpt = None,
    dims: Annotated[
        str, typer.Option(help="Embedding dimensions (even: HyperIM uses dim/2 balls of 2-D).")
    ] = "2,4,10,20,50,150",
    seeds: Annotated[int, typer.Option(help="Seeds per variant (mean ± std).")] = 1,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per run.")] = None,
    budget: Annotated[Optional[float], typer.Option(help="Training minutes per run.")] = None,
    split: Annotated[str, typer.Option(help="valid | test")] = "test",
    word_init: Annotated[
        Optional[str],
        typer.Option(help="Word start of both families (default: each family's own)."),
    ] = None,
    option: Annotated[
        Optional[list[str]],
        typer.Option("--option", help="KEY=VALUE for every run whose model has KEY."),
    ] = None,
) -> None:
    """The paper's ablation (Fig. 3): E-rand, E-hier, H-rand, H-hier by embedding dimension;
    writes OUT/results.md and OUT/ablation.png."""
    from hyperim.benchmark import ablation_entries, write_ablation

    try:
        dim_list = [int(x) for x in dims.split(",") if x.strip()]
    except ValueError:
        raise HyperIMError(f"--dims {dims!r}: expected comma-separated integers") from None
    if not dim_list:
        raise HyperIMError("--dims: give at least one dimension")
    entries = ablation_entries(dim_list, word_init)
    results, title = _run_entries(entries, data, out, seeds, epochs, budget, split, option)
    md, png = write_ablation(results, out, title)
    typer.echo(md.read_text(), nl=False)
    typer.echo(f"plot: {png}")


class _EpochBar:
    """A rich progress bar over epochs, fed by the pre-training progress callbacks."""

    def __init__(self, what: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn(f"[bold]{what}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            console=Console(stderr=True),
            transient=True,
            disable=not sys.stderr.isatty(),
        )
        self.task = self.progress.add_task(what, total=total, loss=float("nan"))

    def __enter__(self) -> _EpochBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, epoch: int, loss: float) -> None:
        self.progress.update(self.task, completed=epoch, loss=loss)


@data_app.command("synthetic")
def data_synthetic(
    out: Annotated[Path, typer.Option(help="Dataset folder to write.")],
    preset: Annotated[
        Optional[str], typer.Option(help="rcv1 | wikilshtc: the paper's corpus shapes.")
    ] = None,
    labels: Annotated[Optional[int], typer.Option(help="Number of labels.")] = None,
    docs: Annotated[Optional[int], typer.Option(help="Documents over all three splits.")] = None,
    depth: Annotated[Optional[int], typer.Option(help="Levels of the label tree.")] = None,
    vocab_size: Annotated[Optional[int], typer.Option()] = None,
    doc_length: Annotated[Optional[float], typer.Option(help="Mean words per document.")] = None,
    labels_per_doc: Annotated[
        Optional[float], typer.Option(help="Mean leaf labels per document.")
    ] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    gz: Annotated[bool, typer.Option("--gz", help="Write .jsonl.gz files.")] = False,
) -> None:
    """Write a synthetic hierarchical multi-label dataset (train/valid/test + hierarchy.tsv)."""
    from hyperim.data.synthetic import PRESETS, SyntheticConfig, generate_synthetic

    if preset is not None and preset not in PRESETS:
        raise HyperIMError(f"--preset must be one of {', '.join(PRESETS)}, not {preset!r}")
    base = PRESETS[preset] if preset else SyntheticConfig()
    cfg = base.updated(
        labels=labels,
        docs=docs,
        depth=depth,
        vocab_size=vocab_size,
        doc_length=doc_length,
        labels_per_doc=labels_per_doc,
        seed=seed,
        gz=gz or None,
    ).validate()
    summary = generate_synthetic(out, cfg, progress=True)
    typer.echo(json.dumps(summary, default=str))


@data_app.command("wordnet")
def data_wordnet(
    out: Annotated[
        Path, typer.Option(help="Dataset folder to write (must not exist or be empty).")
    ],
    depth: Annotated[int, typer.Option(help="Deepest label level (entity.n.01 is depth 0).")] = 4,
    min_docs: Annotated[int, typer.Option(help="Drop labels with fewer documents.")] = 50,
    max_docs: Annotated[
        int, typer.Option(help="Documents drawn before the label filter (0 = all).")
    ] = 20000,
    seed: Annotated[int, typer.Option(help="Seeds the draw and the 70/10/20 split.")] = 0,
    wordnet: Annotated[
        Optional[Path],
        typer.Option(help="Folder with index.noun and data.noun (default /usr/share/wordnet)."),
    ] = None,
) -> None:
    """Write a dataset of WordNet noun glosses labelled by their hypernyms (see
    hyperim.data.wordnet_dataset)."""
    from hyperim.data.wordnet_dataset import build_wordnet_dataset

    s = build_wordnet_dataset(out, wordnet, depth, min_docs, max_docs or None, seed)
    sp = s["splits"]
    typer.echo(
        f"{s['path']}: train {sp['train']:,} / valid {sp['valid']:,} / test {sp['test']:,} "
        f"documents, {s['labels']} labels (depth 1-{depth}), {s['edges']} edges "
        f"({s['seconds']:.1f} s)"
    )


@pretrain_app.command("labels")
def pretrain_labels(
    hierarchy: Annotated[
        Path, typer.Option(help="Hierarchy file: parent<TAB>child... lines (Root = top level).")
    ],
    out: Annotated[Path, typer.Option(help="Output embedding file (word2vec text format).")],
    dim: Annotated[int, typer.Option(help="Total dimension (n_balls x ball_dim).")] = 10,
    n_balls: Annotated[int, typer.Option(help="Number of balls (the model uses 75 of 2D).")] = 1,
    epochs: Annotated[int, typer.Option()] = 50,
    negatives: Annotated[int, typer.Option(help="Negatives sampled per pair.")] = 10,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default 0.3).")] = None,
    aggregate: Annotated[str, typer.Option(help="sum | riemannian (products of balls)")] = "sum",
    direct: Annotated[
        bool, typer.Option("--direct", help="Train on direct edges, not the transitive closure.")
    ] = False,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Embed a label hierarchy in the Poincaré ball (Eq. 2) and report its reconstruction."""
    from hyperim.atomic import check_output
    from hyperim.data.hierarchy import read_hierarchy
    from hyperim.pretrain.hierarchy import HierarchyEmbeddingConfig
    from hyperim.pretrain.init import embed_hierarchy
    from hyperim.pretrain.io import save_embeddings

    check_output(out, "--out")
    h = read_hierarchy(hierarchy)
    if not h.edges:
        raise HyperIMError(f"{hierarchy}: no parent-child edges to embed")
    options = dict(
        dim=dim,
        n_balls=n_balls,
        epochs=epochs,
        negatives=negatives,
        aggregate=aggregate,
        closure=not direct,
        seed=seed,
    )
    if lr is not None:
        options["lr"] = lr
    cfg = HierarchyEmbeddingConfig(**options)  # type: ignore[arg-type]
    with _EpochBar("embedding labels", epochs) as bar:
        names, points, stats = embed_hierarchy(
            h, cfg, progress=lambda e, _n, loss: bar.update(e, loss)
        )
    quality = stats["reconstruction"]
    save_embeddings(out, names, points, cfg.aggregate)
    result = {
        "mean_rank": quality["mean_rank"],
        "map": quality["map"],
        "nodes": stats["n_nodes"],
        "closure_pairs": stats["n_closure_pairs"],
        "epochs": epochs,
        "seconds": round(stats["seconds"], 2),
        "loss": stats["losses"][-1] if stats["losses"] else None,
        "out": str(out),
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(
            f"{stats['n_nodes']} labels, {stats['n_closure_pairs']} closure pairs: "
            f"mean rank {quality['mean_rank']:.2f}, MAP {quality['map']:.3f} "
            f"({stats['seconds']:.1f}s) -> {out}"
        )


@pretrain_app.command("words")
def pretrain_words(
    out: Annotated[Path, typer.Option(help="Output embedding file (word2vec text format).")],
    data: DataOpt = None,
    wordnet: Annotated[
        bool, typer.Option("--wordnet/--no-wordnet", help="Refine with WordNet hypernyms (Eq. 4).")
    ] = True,
    wordnet_dir: Annotated[
        Optional[Path], typer.Option(help="WordNet 3.0 folder (default /usr/share/wordnet).")
    ] = None,
    n_balls: Annotated[int, typer.Option()] = 75,
    ball_dim: Annotated[int, typer.Option()] = 2,
    aggregate: Annotated[str, typer.Option(help="sum | riemannian")] = "riemannian",
    epochs: Annotated[Optional[int], typer.Option(help="GloVe epochs.")] = None,
    min_count: Annotated[int, typer.Option()] = 2,
    max_vocab: Annotated[int, typer.Option()] = 50_000,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Poincaré GloVe word embeddings (Eq. 3) of a dataset's training split, refined with
    WordNet hypernyms (Eq. 4); the vocabulary is the one `hyperim train` builds."""
    from hyperim.atomic import check_output
    from hyperim.data import Vocabulary, bundled_dataset_path, load_dataset
    from hyperim.pretrain.init import pretrain_words as run
    from hyperim.pretrain.io import save_embeddings

    check_output(out, "--out")
    ds = load_dataset(data or bundled_dataset_path())
    vocab = Vocabulary.build((d.tokens for d in ds.train), min_count, max_vocab)
    points, stats = run(
        [d.tokens for d in ds.train],
        vocab,
        n_balls=n_balls,
        ball_dim=ball_dim,
        aggregate=aggregate,
        seed=seed,
        wordnet=wordnet,
        wordnet_dir=wordnet_dir,
        epochs=epochs,
        log=lambda m: typer.echo(m, err=True),
    )
    save_embeddings(out, vocab.tokens, points, aggregate)
    if as_json:
        typer.echo(json.dumps({"words": len(vocab), "out": str(out), **stats}, default=str))
    else:
        typer.echo(f"{len(vocab)} words -> {out}")


@baseline_app.command("tfidf")
def baseline_tfidf(
    data: DataOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of metrics.")
    ] = False,
    split: Annotated[str, typer.Option(help="valid | test")] = "test",
    threshold_policy: Annotated[
        str,
        typer.Option(
            help="Label-set thresholds chosen on the validation split, as train's: "
            "fixed | global | per-level | per-label | auto (F1 at 0.5 is reported too)."
        ),
    ] = "auto",
    label_closure: Annotated[
        bool, typer.Option("--label-closure", help="A predicted label brings its ancestors.")
    ] = False,
) -> None:
    """TF-IDF + one-vs-rest logistic regression, evaluated like HyperIM."""
    from hyperim.baselines.tfidf import TfidfBaseline
    from hyperim.data import LabelIndex, bundled_dataset_path, load_dataset
    from hyperim.thresholds import POLICIES, tuned_metrics

    if split not in ("valid", "test"):
        raise HyperIMError(f"--split must be valid or test, not {split!r}")
    if threshold_policy not in POLICIES:
        raise HyperIMError(f"--threshold-policy must be one of {', '.join(POLICIES)}")
    ds = load_dataset(data or bundled_dataset_path())
    index = LabelIndex(ds.labels)
    model = TfidfBaseline().fit(
        [" ".join(d.tokens) for d in ds.train],
        [index.encode(d.labels) for d in ds.train],
        len(index),
    )

    def scored(docs: list) -> tuple:
        texts = [" ".join(d.tokens) for d in docs]
        return model.predict_proba(texts), [set(index.encode(d.labels)) for d in docs]

    metrics = tuned_metrics(
        *scored(getattr(ds, split)), lambda: scored(ds.valid), threshold_policy,
        hierarchy=ds.hierarchy, names=index.labels, closure=label_closure,
    )  # fmt: skip
    _echo_metrics("TF-IDF+LR", metrics, as_json)


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


def _internal_error(e: BaseException) -> int:
    """A bug, not the user's doing: one line naming the error and where its traceback went
    (``HYPERIM_DEBUG=1`` shows it on stderr instead)."""
    import os
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(e))
    if os.environ.get("HYPERIM_DEBUG"):
        typer.echo(text, err=True, nl=False)
        return 1
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    with tempfile.NamedTemporaryFile(
        "w", prefix="hyperim-crash-", suffix=".txt", delete=False, encoding="utf-8"
    ) as f:
        f.write(text)
    typer.echo(
        f"hyperim: internal error: {type(e).__name__}: {first} "
        f"(a bug; traceback in {f.name}, please report it)",
        err=True,
    )
    return 1


def _os_error_line(e: OSError) -> str:
    where = e.filename if e.filename is not None else ""
    if getattr(e, "filename2", None):
        where = f"{where} -> {e.filename2}"
    reason = e.strerror or str(e)
    return f"{where}: {reason}" if where else reason


def _out_of_memory(e: BaseException) -> str | None:
    """A one-line message when ``e`` is an allocator's refusal (CPU or CUDA), else None."""
    text = str(e)
    if not (
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"  # torch.OutOfMemoryError (CUDA)
        or (isinstance(e, RuntimeError) and "can't allocate memory" in text)
    ):
        return None
    import re

    asked = re.search(r"allocate (\d+) bytes", text)
    size = f" ({int(asked.group(1)) / 2**30:,.1f} GiB asked for)" if asked else ""
    return f"out of memory{size}; try a smaller --batch-size or --max-len"


PlotModelOpt = Annotated[Path, typer.Option("--model", help="Run folder or saved model folder.")]
PlotOutOpt = Annotated[Path, typer.Option("--out", help="Picture to write: a .png or .svg file.")]
BallOpt = Annotated[
    Optional[int],
    typer.Option(
        "--ball",
        help="Ball to draw (0-based). Default: the one where the hierarchy is spread most, "
        "the largest mean hyperbolic distance between a parent and its child.",
    ),
]
HierarchyOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--hierarchy",
        help="Hierarchy file (default: hierarchy.tsv of the data the model was trained on).",
    ),
]


def _plot_inputs(model: Path, out: Path, hierarchy: Optional[Path]):
    from hyperim.api import HyperIM
    from hyperim.atomic import check_output
    from hyperim.viz.plots import output_format
    from hyperim.viz.scene import find_hierarchy

    output_format(out)
    check_output(out, "--out")
    m = HyperIM.from_pretrained(model, device="cpu")
    tree, source = find_hierarchy(m.meta, hierarchy)
    where = f"hierarchy {_short(source)}" if source else "no hierarchy found: no edges drawn"
    return m, tree, f"{m.model_type} model {_short(model)} · {where}"


def _short(path: Path | str) -> str:
    """The last two parts of ``path`` (a title's worth)."""
    return "/".join(Path(path).resolve().parts[-2:])


@plot_app.command("labels")
def plot_labels(
    model: PlotModelOpt, out: PlotOutOpt, ball: BallOpt = None, hierarchy: HierarchyOpt = None
) -> None:
    """The label embeddings in the Poincaré disk (HyperIM) or the plane (label vectors).

    HyperIM: a 2-D ball as it is; a higher-dimensional ball by the log map at 0, its tangent
    vectors' two principal axes and the exp map. A family whose labels are vectors (euclidean,
    exam, dxml, hrdgcnn): the plane of their two principal axes (PCA). Hierarchy edges as
    geodesics, depth as colour, top-level labels named (as many as fit without overlapping).
    """
    from hyperim.viz.plots import draw_labels
    from hyperim.viz.scene import label_scene

    m, tree, subtitle = _plot_inputs(model, out, hierarchy)
    scene = label_scene(m.model, m.labels.labels, tree, ball)
    named = draw_labels(scene, out, subtitle)
    typer.echo(
        f"wrote {out}: {len(scene['labels'])} labels, {len(named)} named; {scene['projection']}"
    )


@plot_app.command("document")
def plot_document(
    text: Annotated[str, typer.Argument(help="The document to draw.")],
    model: PlotModelOpt,
    out: PlotOutOpt,
    ball: BallOpt = None,
    hierarchy: HierarchyOpt = None,
    k: Annotated[int, typer.Option("-k", help="Predicted labels to highlight.")] = 5,
) -> None:
    """One document's encoded words with the labels, as in the paper's Figure 4.

    Each word is linked to its nearest label (the model's own distance over all balls); the
    top-k predicted labels are highlighted with their probabilities.
    """
    from hyperim.viz.plots import draw_document
    from hyperim.viz.scene import document_scene

    if k < 1:
        raise HyperIMError("-k must be >= 1")
    m, tree, subtitle = _plot_inputs(model, out, hierarchy)
    scene = document_scene(m, text, tree, ball, k)
    draw_document(scene, out, subtitle)
    typer.echo(f"wrote {out}: {len(scene['words'])} words; {scene['projection']}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user-caused failure is one line on stderr and exit status 2; an
    interrupt (Ctrl-C, SIGTERM) one line and 130 (143); a bug one line and 1."""
    from hyperim import interrupts

    interrupts.install()
    try:
        status = app(args=argv, standalone_mode=False)
    except HyperIMError as e:
        typer.echo(f"hyperim: error: {e}", err=True)
        sys.exit(2)
    except interrupts.Interrupted as e:
        typer.echo(f"hyperim: {e}", err=True)
        sys.exit(e.exit_status)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("hyperim: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # usage errors (a bad flag or value): one line too
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare command: its help
            e.show()
            sys.exit(2)
        ctx = getattr(e, "ctx", None)
        see = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"hyperim: error: {e.format_message()}{see}", err=True)
        sys.exit(2)
    except OSError as e:  # the file system said no: full disk, permissions, a path in the way
        typer.echo(f"hyperim: error: {_os_error_line(e)}", err=True)
        sys.exit(2)
    except Exception as e:  # MemoryError and torch's allocator errors: the user's to size
        oom = _out_of_memory(e)
        if oom is not None:
            typer.echo(f"hyperim: error: {oom}", err=True)
            sys.exit(2)
        sys.exit(_internal_error(e))
    # standalone_mode=False returns the code of a typer.Exit raised inside (typer's own
    # Ctrl-C handling among them) instead of exiting with it
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
