"""Faults a user can cause, each through the real CLI in a subprocess: bad paths, corrupt files,
interrupts (SIGINT, SIGKILL), empty splits, option values at their limits.

Every case asserts the exit status (2 for the user's error, 130 for an interrupt), that stderr
ends in one line naming the problem (no traceback), and that nothing on disk was changed or
lost. ``pytest tests/test_faults.py`` ends with the count of cases checked (BENCHMARKS.md: fault
cases)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_dataset

ENV = {**os.environ, "HYPERIM_COMPILE": "0", "OMP_NUM_THREADS": "1"}
SMALL = ["--epochs", "1", "--n-balls", "2", "--max-len", "16"]


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hyperim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hyperim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


#: fault cases checked (each ``fails`` or ``last_line``: one run's exit and message), which
#: conftest's terminal summary prints ("fault cases checked through the CLI: N")
CASES = {"checked": 0}


def last_line(stderr: str) -> str:
    CASES["checked"] += 1
    return _last_line(stderr)


def _last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, "no message on stderr"
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def fails(p: subprocess.CompletedProcess, *needles: str, status: int = 2) -> None:
    """Exit ``status``, exactly one line on stderr holding every needle, no traceback."""
    assert p.returncode == status, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    line = last_line(p.stderr)  # counts the case
    assert line.startswith("hyperim: "), line
    for needle in needles:
        assert needle in line, line


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256 (what must not change)."""
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("faults") / "ds", n_train=40, n_eval=10)


@pytest.fixture(scope="module")
def trained(data: Path) -> Path:
    run = data.parent / "run"
    p = cli("train", "--data", str(data), "--out", str(run), *SMALL)
    assert p.returncode == 0, p.stderr
    return run


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


# ------------------------------------------------------------------------- paths in the way
def test_output_paths_in_the_way(data: Path, trained: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    inputs = tmp_path / "in.txt"
    inputs.write_text("kitten meow\n")
    before = snapshot(tmp_path)
    cases = [
        (("train", "--data", str(data), "--out", str(a_file), *SMALL), "is a file"),
        (("train", "--data", str(data), "--out", str(a_file / "run"), *SMALL), "is a file"),
        (
            ("predict", "--model", str(trained), "--input", str(inputs), "--output", str(tmp_path)),
            "is a folder",
        ),
        (
            (
                "predict",
                "--model",
                str(trained),
                "--input",
                str(inputs),
                "--output",
                str(a_file / "p.jsonl"),
            ),
            "is a file",
        ),
        (
            (
                "pretrain",
                "labels",
                "--hierarchy",
                str(data / "hierarchy.tsv"),
                "--out",
                str(a_file / "x.txt"),
            ),
            "is a file",
        ),
        (("pretrain", "words", "--data", str(data), "--out", str(tmp_path)), "is a folder"),
        (("benchmark", "--data", str(data), "--out", str(a_file), "--epochs", "1"), "is a file"),
        (("data", "synthetic", "--out", str(a_file)), "is a file"),
    ]
    for args, needle in cases:
        fails(cli(*args), needle)
    assert snapshot(tmp_path) == before


def test_unwritable_place_is_one_line(data: Path) -> None:
    # /proc refuses new entries even to root (CI runs as root, where chmod does not bind)
    fails(cli("train", "--data", str(data), "--out", "/proc/hyperim-run", *SMALL), "/proc")


def test_missing_inputs(data: Path, trained: Path, tmp_path: Path) -> None:
    fails(cli("predict", "--model", str(tmp_path / "nope"), "x"), "nope")
    fails(cli("predict", "--model", str(trained), "--input", str(tmp_path / "no.txt")), "no.txt")
    fails(cli("train", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "r")), "nodata")
    fails(cli("train", "--config", str(tmp_path / "no.toml"), "--out", str(tmp_path / "r")))
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    fails(cli("train", "--config", str(bad), "--out", str(tmp_path / "r")), "bad.toml")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------ a failed start is no run
@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--device", "cuda:7"), "CUDA is not available"),
        (("--label-init", "BAD"), "does not match"),
        (("--wordnet-dir", "/nonexistent"), "WordNet"),
        (("--word-init", "/nonexistent.vec"), "nonexistent.vec"),
    ],
)
def test_failed_start_leaves_nothing(
    data: Path, tmp_path: Path, extra: tuple[str, ...], needle: str
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nanimal 0.1 0.2 0.1\ntool 0.1 0.1 0.0\n")
    extra = tuple(str(bad) if x == "BAD" else x for x in extra)
    out = tmp_path / "run"
    p = cli("train", "--data", str(data), "--out", str(out), *SMALL, *extra)
    assert p.returncode == 2 and needle in last_line(p.stderr), p.stderr
    assert "pre-training" not in p.stderr, p.stderr  # checked before any long work
    assert not out.exists()


def test_failed_start_in_an_existing_folder_keeps_the_rest(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's\n")
    p = cli("train", "--data", str(data), "--out", str(out), *SMALL, "--device", "cuda:7")
    assert p.returncode == 2
    assert sorted(x.name for x in out.iterdir()) == ["notes.txt"]


def test_empty_validation_split_is_refused(data: Path, tmp_path: Path) -> None:
    ds = Path(shutil.copytree(data, tmp_path / "ds"))
    (ds / "valid.jsonl").write_text("")
    out = tmp_path / "run"
    fails(cli("train", "--data", str(ds), "--out", str(out), *SMALL), "validation split")
    assert not out.exists()


def _gz_corrupt(ds: Path) -> None:
    (ds / "train.jsonl.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    (ds / "train.jsonl").unlink()


def _gz_truncated(ds: Path) -> None:
    whole = gzip.compress((ds / "train.jsonl").read_bytes())
    (ds / "train.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (ds / "train.jsonl").unlink()


def _no_labels(split: str):
    def damage(ds: Path) -> None:
        lines = (ds / f"{split}.jsonl").read_text().splitlines()
        docs = [{**json.loads(x), "labels": []} for x in lines]
        (ds / f"{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))

    return damage


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_gz_corrupt, "train.jsonl.gz:1: "),
        (_gz_truncated, "truncated"),
        (_no_labels("train"), "nothing to learn"),
        (_no_labels("valid"), "best epoch cannot be chosen"),
    ],
    ids=["gzip-corrupt", "gzip-truncated", "train-without-labels", "valid-without-labels"],
)
def test_datasets_that_cannot_train(data: Path, tmp_path: Path, damage, needle: str) -> None:
    ds = Path(shutil.copytree(data, tmp_path / "ds"))
    damage(ds)
    out = tmp_path / "run"
    fails(cli("train", "--data", str(ds), "--out", str(out), *SMALL), needle)
    assert not out.exists()


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    fails(cli("train"), "Missing option '--out'", "--help")
    fails(cli("nosuchcommand"), "No such command")
    fails(cli("predict", "--model"), "requires an argument")


# ------------------------------------------------------------------------- option limits
@pytest.mark.parametrize(
    "option",
    [
        ("--epochs", "0"),
        ("--batch-size", "0"),
        ("--lr", "0"),
        ("--lr", "nan"),
        ("--max-len", "1"),
        ("--negatives", "-1"),
        ("--patience", "0"),
        ("--max-minutes", "0"),
        ("--dtype", "float16"),
        ("--n-balls", "0"),
        ("--phi", "nosuch"),
        ("--model", "nosuchmodel"),
        ("--lr", "inf"),  # passes "> 0", then every score is NaN after the first step
        ("--head-lr", "-inf"),
        ("--word-init-scale", "nan"),
        ("--seed", "-1"),
        ("--seed", "99999999999999999999"),
        ("--epochs", "abc"),  # a usage error: one line too, not click's box
        ("--max-len", "100000000"),  # out of memory building the model: the user's to size
    ],
)
def test_train_option_limits(data: Path, tmp_path: Path, option: tuple[str, str]) -> None:
    out = tmp_path / "run"
    p = cli("train", "--data", str(data), "--out", str(out), "--epochs", "1", *option)
    fails(p)
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("predict", "-k", "0", "x"),
        ("predict", "--batch-size", "0", "x"),
        ("predict", "--evidence", "-1", "x"),
        ("evaluate", "--threshold", "1.5"),
        ("evaluate", "--threshold", "0"),
        ("evaluate", "--split", "dev"),
    ],
)
def test_inference_option_limits(trained: Path, args: tuple[str, ...]) -> None:
    fails(cli(args[0], "--model", str(trained), *args[1:]))


# ---------------------------------------------------------------------------- resume
def test_resume_refuses_what_would_make_another_run(run_copy: Path) -> None:
    before = snapshot(run_copy)
    fails(cli("train", "--out", str(run_copy), "--resume", "--lr", "0.1"), "--lr")
    fails(cli("train", "--out", str(run_copy), "--resume", "--n-balls", "3"), "--n-balls")
    assert snapshot(run_copy) == before


def test_resume_checks_the_dataset(run_copy: Path, data: Path, tmp_path: Path) -> None:
    other = write_dataset(tmp_path / "other", n_train=30, n_eval=10)
    before = snapshot(run_copy)
    fails(cli("train", "--out", str(run_copy), "--resume", "--data", str(other)), "not the files")
    assert snapshot(run_copy) == before
    moved = Path(shutil.copytree(data, tmp_path / "moved"))  # the same files, elsewhere
    p = cli("train", "--out", str(run_copy), "--resume", "--data", str(moved), "--epochs", "2")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["epochs_run"] == 2


def test_resume_with_other_numerics_says_it_will_not_repeat_exactly(run_copy: Path) -> None:
    run = json.loads((run_copy / "run.json").read_text())
    assert run["numerics"]["threads"] >= 1 and "torch" in run["numerics"]
    run["numerics"]["threads"] += 1  # as if it had started with another thread count
    (run_copy / "run.json").write_text(json.dumps(run))
    p = cli("train", "--out", str(run_copy), "--resume", "--epochs", "2")
    assert p.returncode == 0, p.stderr
    assert "bit for bit" in p.stderr and "threads" in p.stderr, p.stderr


def test_already_a_run(trained: Path, data: Path) -> None:
    before = snapshot(trained)
    fails(cli("train", "--data", str(data), "--out", str(trained), *SMALL), "already holds a run")
    assert snapshot(trained) == before


# ------------------------------------------------------------------------- corrupt files
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "damage", "needle"),
    [
        ("checkpoint.pt", _truncate, "corrupt checkpoint"),
        ("checkpoint.pt", _flip, "corrupt checkpoint"),
        ("run.json", lambda p: p.write_text("{not json"), "corrupt run file"),
        ("run.json", lambda p: p.write_text("[]"), "corrupt run file"),
    ],
)
def test_corrupt_run_files(run_copy: Path, name: str, damage, needle: str) -> None:
    damage(run_copy / name)
    before = snapshot(run_copy)
    fails(cli("train", "--out", str(run_copy), "--resume", "--epochs", "2"), needle)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.safetensors", _truncate),
        ("model.safetensors", _flip),
        ("config.json", lambda p: p.write_text("{")),
        ("vocab.json", lambda p: p.write_text("[1, 2")),
        ("labels.json", _truncate),
    ],
)
def test_corrupt_saved_model(run_copy: Path, name: str, damage) -> None:
    damage(run_copy / "model" / name)
    before = snapshot(run_copy)
    fails(cli("predict", "--model", str(run_copy), "a kitten"), name)
    fails(cli("info", "--model", str(run_copy)), name)
    assert snapshot(run_copy) == before


# ------------------------------------------------------------------------- silent wrong results
def test_evaluate_refuses_what_would_be_silent_zeros(trained: Path, data: Path, tmp_path: Path):
    ds = Path(shutil.copytree(data, tmp_path / "ds"))
    (ds / "test.jsonl").write_text("")
    fails(cli("evaluate", "--model", str(trained), "--data", str(ds)), "no documents")
    (ds / "test.jsonl").write_text(json.dumps({"text": "kitten", "labels": ["zebra"]}) + "\n")
    fails(cli("evaluate", "--model", str(trained), "--data", str(ds)), "none of the test")
    (ds / "test.jsonl").write_text(json.dumps({"text": "kitten", "labels": []}) + "\n")
    fails(cli("evaluate", "--model", str(trained), "--data", str(ds)), "has a label")
    (ds / "test.jsonl").write_text(
        json.dumps({"text": "kitten", "labels": ["zebra", "animal"]}) + "\n"
    )
    p = cli("evaluate", "--model", str(trained), "--data", str(ds), "--json")
    assert p.returncode == 0 and "unknown to the model" in p.stderr, p.stderr


def test_synthetic_never_overwrites_a_dataset(data: Path, tmp_path: Path) -> None:
    ds = Path(shutil.copytree(data, tmp_path / "ds"))
    before = snapshot(ds)
    fails(cli("data", "synthetic", "--out", str(ds)), "already holds a dataset")
    assert snapshot(ds) == before


# ------------------------------------------------------------------------- interrupts
def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.1)


def _training_past_its_first_epoch(data: Path, out: Path) -> subprocess.Popen:
    """A long ``train`` into ``out``, returned once its first epoch is logged."""
    proc = start("train", "--data", str(data), "--out", str(out), "--n-balls", "2",
                 "--max-len", "16", "--epochs", "400", "--patience", "400")  # fmt: skip
    _wait_for(out / "log.jsonl", proc)
    return proc


def test_sigint_during_training_checkpoints_and_resumes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _training_past_its_first_epoch(data, out)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    line = last_line(stderr)
    assert "interrupted" in line and "--resume" in line and "checkpoint" in line, line
    assert (out / "checkpoint.pt").exists() and (out / "model" / "config.json").exists()
    p = cli("train", "--out", str(out), "--resume", "--epochs", "3")  # a resume may end sooner
    assert p.returncode == 0, p.stderr


def test_sigkill_during_training_then_resume(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _training_past_its_first_epoch(data, out)
    proc.kill()
    proc.communicate(timeout=60)
    p = cli("train", "--out", str(out), "--resume", "--epochs", "3")
    assert p.returncode == 0, p.stderr


def test_sigint_during_predict_output_leaves_no_partial_file(trained: Path, tmp_path: Path):
    inputs = tmp_path / "in.txt"
    inputs.write_text("a kitten and a saw with a drill bit\n" * 400_000)
    out = tmp_path / "preds.jsonl"
    proc = start("predict", "--model", str(trained), "--input", str(inputs), "--output", str(out))
    time.sleep(8)
    assert proc.poll() is None, "prediction ended before the interrupt"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in last_line(stderr)
    assert not out.exists() and not list(tmp_path.glob(".preds.jsonl*"))


def test_sigterm_is_an_interrupt_too(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _training_past_its_first_epoch(data, out)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "--resume" in last_line(stderr)


# ------------------------------------------------------------------------- newcomer frictions
def test_version_info_and_help(trained: Path) -> None:
    from hyperim import __version__

    p = cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"hyperim {__version__}"
    p = cli("info", "--model", str(trained), "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["model_type"] == "hyperim" and info["labels"] == 6 and info["epoch"] == 1
    assert set(info["valid"]) >= {"nDCG@5", "P@1"}
    p = cli("info", "--model", str(trained), "--labels")
    assert p.stdout.split() == ["animal", "animal::cat", "animal::dog", "tool", "tool::drill",
                                "tool::saw"]  # fmt: skip
    p = cli("train", "--help")
    assert p.returncode == 0 and "default: (14)" in p.stdout.replace("[", "").replace("]", "")


def test_help_defaults_are_the_config_defaults() -> None:
    from dataclasses import asdict

    from hyperim.cli import train_defaults
    from hyperim.config import TrainConfig

    shown = train_defaults()
    actual = asdict(TrainConfig())
    assert len(shown) >= 20 and all(actual[k] == v for k, v in shown.items())


def test_help_lists_every_registered_family() -> None:
    from hyperim.cli import registered_families
    from hyperim.models import family_names

    assert registered_families() == family_names() and "hmcnf" in family_names()
    p = cli("train", "--help")
    flat = " ".join(p.stdout.split()).replace("│", "")
    assert p.returncode == 0 and all(name in flat for name in family_names())


def test_predict_json_keeps_ids_and_precision(trained: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"x{i}", "text": t}) + "\n"
                              for i, t in enumerate(["kitten meow", "saw blade"])))  # fmt: skip
    p = cli("predict", "--model", str(trained), "--input", str(inputs), "--json", "-k", "3")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    out = tmp_path / "preds.jsonl"
    q = cli("predict", "--model", str(trained), "--input", str(inputs), "--output", str(out),
            "-k", "3", "--evidence", "3")  # fmt: skip
    assert q.returncode == 0, q.stderr
    assert lines == [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["x0", "x1"]


def test_python_api_refuses_a_bare_string(trained: Path) -> None:
    from hyperim import HyperIM
    from hyperim.errors import HyperIMError

    m = HyperIM.from_pretrained(trained)
    with pytest.raises(HyperIMError, match="one string"):
        m.predict("a kitten")
    assert len(m.predict(["a kitten"])) == 1


# ------------------------------------------------------------- full disks, read-only places
@pytest.fixture
def small_fs(tmp_path: Path):
    """``small_fs(size, read_only=False, fill=None)``: a tmpfs of ``size`` (``fill`` copied
    into it before it is made read-only); needs root's mount (CI runs as root), else skips."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False, fill: Path | None = None) -> Path:
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        p = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
        )
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")
        mounted.append(where)
        if fill is not None:
            shutil.copytree(fill, where / fill.name)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_full_disk_fails_in_one_line_and_leaves_nothing_half_written(
    trained: Path, data: Path, tmp_path: Path, small_fs
) -> None:
    fs = small_fs("64k")
    many = tmp_path / "many.txt"
    many.write_text("kitten meow puppy bark drill hammer\n" * 20000)
    fails(cli("predict", "--model", str(trained), "--input", str(many), "--output",
              str(fs / "pred.jsonl")), "pred.jsonl", "No space left")  # fmt: skip
    fails(cli("data", "synthetic", "--out", str(fs / "syn"), "--docs", "20000"), "No space left")
    fails(cli("pretrain", "labels", "--hierarchy", str(data / "hierarchy.tsv"), "--out",
              str(fs / "labels.txt"), "--dim", "20000"), "No space left")  # fmt: skip
    p = cli("train", "--data", str(data), "--out", str(fs / "run"), *SMALL, "--n-balls", "400")
    assert p.returncode == 2 and "No space left" in last_line(p.stderr), p.stderr  # after logs
    assert sorted(os.listdir(fs)) == []  # no partial file, no dataset half there, no run
    # a device is written in place, never replaced by a file
    fails(cli("predict", "--model", str(trained), "--input", str(many), "--output", "/dev/full"),
          "/dev/full", "No space left")  # fmt: skip
    assert Path("/dev/full").is_char_device()


def test_read_only_run_folder(trained: Path, small_fs) -> None:
    fs = small_fs("20m", read_only=True, fill=trained)
    run = fs / trained.name
    fails(cli("train", "--out", str(run), "--resume", "--epochs", "2"), "not writable")
    p = cli("predict", "--model", str(run), "kitten")  # reading still works
    assert p.returncode == 0, p.stderr


def test_sigint_during_pretraining_writes_nothing(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.txt"
    proc = start("pretrain", "labels", "--hierarchy", str(data / "hierarchy.tsv"),
                 "--out", str(out), "--epochs", "1000000")  # fmt: skip
    time.sleep(8)  # into the epochs (start-up is about 4 s)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in last_line(stderr), stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_sigint_during_benchmark_then_the_same_command_finishes(data: Path, tmp_path: Path):
    out = tmp_path / "bench"
    args = ("benchmark", "--data", str(data), "--out", str(out), "--models", "tfidf,hyperim",
            "--epochs", "1000", "--budget", "0.25", "--option", "patience=1000",
            "--option", "n_balls=2", "--option", "max_len=16")  # fmt: skip
    proc = start(*args)
    log = None
    while log is None:  # the neural run has logged its first epoch
        assert proc.poll() is None, proc.communicate()
        log = next(iter(out.glob("runs/hyperim-*/log.jsonl")), None)
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "run the same command again" in last_line(stderr), stderr
    assert not (out / "results.md").exists()
    p = cli(*args)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["model"] for r in rows) == ["hyperim", "tfidf"], rows


# ------------------------------------------------------------------- bad data, named exactly
def _line(split: str, i: int, text: str):
    def damage(ds: Path) -> None:
        path = ds / f"{split}.jsonl"
        lines = path.read_text().splitlines()
        lines[i] = text
        path.write_text("\n".join(lines) + "\n")

    return damage


def _append_bytes(name: str, raw: bytes):
    return lambda ds: (ds / name).write_bytes((ds / name).read_bytes() + raw)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_line("train", 3, '{"id": 1, "text": "x"'), "train.jsonl:4: bad JSON"),
        (_line("train", 3, '{"id": "a", "labels": ["animal"]}'), "train.jsonl:4: missing 'text'"),
        (_line("train", 3, '{"text": 5, "labels": []}'), "train.jsonl:4: 'text' must be a string"),
        (_line("train", 3, '{"text": null, "labels": []}'), "train.jsonl:4: 'text' must be"),
        (_line("train", 3, '{"text": "x", "labels": "animal"}'), "train.jsonl:4: 'labels' must"),
        (_line("valid", 2, "[1, 2]"), "valid.jsonl:3: expected a JSON object"),
        (_append_bytes("train.jsonl", b'{"text": "\xff\xfe", "labels": []}\n'), "not valid UTF-8"),
        (lambda ds: (ds / "train.jsonl").write_text(""), "training split has no documents"),
        (lambda ds: (ds / "train.jsonl").unlink(), "no training split"),
        (_append_bytes("hierarchy.tsv", b"animal::dog\tanimal\n"), "hierarchy.tsv:5: cycle"),
        (_append_bytes("hierarchy.tsv", b"animal\tanimal\n"), "hierarchy.tsv:5: cycle"),
        (_append_bytes("hierarchy.tsv", b"lonely\n"), "hierarchy.tsv:5: expected a parent"),
        (lambda ds: (ds / "hierarchy.tsv").write_bytes(b"\x00\x01\xff\n"), "hierarchy.tsv:1: not"),
    ],
    ids=[
        "json",
        "no-text",
        "text-int",
        "text-null",
        "labels-str",
        "array",
        "utf8",
        "empty",
        "missing",
        "cycle",
        "self-loop",
        "one-field",
        "binary-hierarchy",
    ],
)
def test_bad_datasets_name_the_file_and_line(
    data: Path, trained: Path, tmp_path: Path, damage, needle: str
) -> None:
    ds = Path(shutil.copytree(data, tmp_path / "ds"))
    damage(ds)
    before = snapshot(ds)
    out = tmp_path / "run"
    fails(cli("train", "--data", str(ds), "--out", str(out), *SMALL), needle)
    assert not out.exists() and snapshot(ds) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("predict", "--model", "RUN", "--input", "BIN"), "not valid UTF-8"),
        (("predict", "--model", "RUN", "--input", "TMP"), "is a folder"),
        (("predict", "--model", "RUN", "--input", "IN", "--output", "IN"), "overwrite the input"),
        (("predict", "--model", "RUN", "--device", "nosuch", "x"), "unknown device"),
        (("predict", "--model", "RUN"), "give either TEXT or --input"),
        (("info", "--model", "DATA"), "not a saved hyperim model"),
        (("evaluate", "--model", "RUN", "--data", "DATA", "--split", "dev"), "--split"),
        (("baseline", "tfidf", "--data", "DATA", "--split", "dev"), "--split"),
        (
            ("benchmark", "--data", "DATA", "--out", "NEW", "--models", "nosuch", "--epochs", "1"),
            "unknown nosuch",
        ),
        (("benchmark", "--data", "DATA", "--out", "NEW", "--budget", "0"), "--budget"),
        (
            ("benchmark", "--data", "DATA", "--out", "NEW", "--epochs", "1", "--option", "junk"),
            "KEY=VALUE",
        ),
        (("ablation", "--data", "DATA", "--out", "NEW", "--epochs", "1", "--dims", "x"), "--dims"),
        (("ablation", "--data", "DATA", "--out", "NEW", "--epochs", "1", "--dims", "3"), "even"),
        (("pretrain", "labels", "--hierarchy", "HIER", "--out", "NEW", "--dim", "0"), "dim 0"),
        (("pretrain", "labels", "--hierarchy", "HIER", "--out", "NEW", "--lr", "nan"), "lr"),
        (
            ("pretrain", "words", "--data", "DATA", "--out", "NEW", "--wordnet-dir", "TMP/none"),
            "WordNet",
        ),
        (("data", "synthetic", "--out", "NEW", "--docs", "0"), "docs must be"),
        (("data", "synthetic", "--out", "NEW", "--preset", "nosuch"), "--preset"),
        (("models", "nosuch"), "unknown model"),
    ],
)
def test_other_commands_refuse_in_one_line(
    data: Path, trained: Path, tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    (tmp_path / "bin.txt").write_bytes(b"\x00\xff\xfe binary\n")
    (tmp_path / "in.txt").write_text("kitten meow\n")
    where = {
        "RUN": trained,
        "DATA": data,
        "HIER": data / "hierarchy.tsv",
        "TMP": tmp_path,
        "BIN": tmp_path / "bin.txt",
        "IN": tmp_path / "in.txt",
        "NEW": tmp_path / "new",
    }

    def resolve(arg: str) -> str:  # "TMP/none" -> tmp_path / "none"
        head, sep, rest = arg.partition("/")
        return str(where[head]) + sep + rest if head in where else arg

    argv = [resolve(a) for a in args]
    before = snapshot(tmp_path)
    fails(cli(*argv), needle)
    assert snapshot(tmp_path) == before and not (tmp_path / "new").exists()
