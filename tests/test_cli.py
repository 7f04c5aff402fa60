"""The command line: bad input is one line on stderr with exit status 2; verbs work end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_dataset


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hyperim", *args], capture_output=True, text=True, timeout=300
    )


def one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds", n_train=20, n_eval=5)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "JSON"),
        ('{"text": "x"}', "label"),
        ('{"text": "x", "labels": "animal"}', "label"),
        ('{"token": "x y", "label": ["a"]}', "token"),
    ],
)
def test_bad_line_is_one_line_error(data: Path, tmp_path: Path, line: str, problem: str) -> None:
    with open(data / "train.jsonl", "a") as f:
        f.write(line + "\n")
    p = run("train", "--data", str(data), "--out", str(tmp_path / "r"), "--epochs", "1")
    one_line_error(p, "train.jsonl:21", problem)


def test_non_utf8_and_skip_invalid(data: Path, tmp_path: Path) -> None:
    with open(data / "train.jsonl", "ab") as f:
        f.write(b'{"text": "caf\xe9", "labels": ["tool"]}\n')
    one_line_error(
        run("train", "--data", str(data), "--out", str(tmp_path / "r")), "train.jsonl:21"
    )
    p = run(
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "r2"),
        "--epochs",
        "1",
        "--skip-invalid",
        "--n-balls",
        "2",
        "--max-len",
        "16",
    )
    assert p.returncode == 0, p.stderr
    assert "1 invalid lines skipped" in p.stderr


def test_cycle_and_missing_split(data: Path, tmp_path: Path) -> None:
    with open(data / "hierarchy.tsv", "a") as f:
        f.write("animal::cat\tanimal\n")
    one_line_error(
        run("train", "--data", str(data), "--out", str(tmp_path / "r")), "hierarchy.tsv:5", "cycle"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(run("train", "--data", str(empty), "--out", str(tmp_path / "r")), "train")


def test_train_evaluate_predict(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = run(
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--n-balls",
        "2",
        "--max-len",
        "16",
        "--phi",
        "identity",
        "--no-label-bias",
        "--head-pool",
    )
    assert p.returncode == 0, p.stderr
    model_cfg = json.loads((out / "model" / "config.json").read_text())["model"]
    got = (model_cfg["phi"], model_cfg["label_bias"], model_cfg["head_pool"])
    assert got == ("identity", False, True)
    p = run("evaluate", "--model", str(out), "--json")
    assert p.returncode == 0, p.stderr
    metrics = json.loads(p.stdout)
    # F1 of the model's label sets (thresholds by the auto policy by default), and at 0.5
    assert set(metrics) == {"P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "micro_f1", "macro_f1",
                            "micro_f1@0.5", "macro_f1@0.5"}  # fmt: skip
    assert all(0 <= v <= 100 for v in metrics.values())
    p = run("predict", "--model", str(out), "a puppy and a drill", "-k", "2")
    assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 3, p.stderr
    inp = tmp_path / "in.txt"
    inp.write_text("kitten meow\nsaw blade\n")
    p = run("predict", "--model", str(out), "--input", str(inp), "--json")
    assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 2, p.stderr
    # streaming batch prediction into a file, evaluated later without the model
    preds = tmp_path / "preds.jsonl"
    p = run("predict", "--model", str(out), "--input", str(data / "test.jsonl"),
            "--output", str(preds), "-k", "5")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["documents"] == 5 and len(preds.read_text().splitlines()) == 5
    p = run("evaluate", "--predictions", str(preds), "--data", str(data), "--json")
    assert p.returncode == 0, p.stderr
    from_file = json.loads(p.stdout)
    assert all(abs(from_file[k] - metrics[k]) < 1e-6 for k in from_file)
    one_line_error(run("evaluate"), "--model DIR or --predictions FILE")
    one_line_error(run("predict", "--model", str(tmp_path / "nope"), "x"), "nope")
    one_line_error(run("train", "--data", str(data), "--out", str(out)), "already holds a run")


def test_rcv1_format_loads(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "rcv1-sample"
    if not src.exists():
        pytest.skip("shared rcv1 sample not present")
    d = tmp_path / "rcv1"
    shutil.copytree(src, d)
    p = run(
        "train",
        "--data",
        str(d),
        "--out",
        str(tmp_path / "r"),
        "--epochs",
        "1",
        "--n-balls",
        "2",
        "--max-len",
        "32",
        "--negatives",
        "5",
    )
    assert p.returncode == 0, p.stderr


def test_data_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    p = run("data", "synthetic", "--out", str(out), "--preset", "rcv1", "--docs", "300")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["labels"] == 103 and summary["splits"]["train"] == 240
    from hyperim.data import load_dataset

    ds = load_dataset(out)
    assert len(ds.train) == 240 and ds.hierarchy is not None
    one_line_error(run("data", "synthetic", "--out", str(out), "--preset", "nope"), "--preset")


def test_unknown_flag_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    p = run("evaluate", "--bogus")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "No such option: --bogus" in p.stderr
    # train passes unknown flags to the model family, which names its own options
    p = run("train", "--out", str(tmp_path / "r"), "--bogus", "1")
    one_line_error(p, "no such option --bogus for model hyperim")
    one_line_error(run("train", "--out", str(tmp_path / "r"), "--n-balls", "x"), "--n-balls")
    one_line_error(
        run("train", "--out", str(tmp_path / "r"), "--model", "nope"), "unknown model 'nope'"
    )
    assert not (tmp_path / "r").exists()
