"""Shared fixtures: a tiny synthetic hierarchical dataset whose labels follow its words."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest
import torch

# Tests run the interaction and GRU eagerly (compiling costs seconds per process and shape);
# tests/test_compiled.py turns compilation on and checks it against the eager path.
os.environ.setdefault("HYPERIM_COMPILE", "0")

HIERARCHY = [
    ("animal", "animal::cat"),
    ("animal", "animal::dog"),
    ("tool", "tool::saw"),
    ("tool", "tool::drill"),
]
KEYWORDS = {
    "animal::cat": ["cat", "kitten", "meow"],
    "animal::dog": ["dog", "puppy", "bark"],
    "tool::saw": ["saw", "blade", "cut"],
    "tool::drill": ["drill", "bit", "bore"],
}
FILLER = ["the", "a", "of", "and", "with", "for", "this", "is", "package", "some", "data"]


def make_docs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        leaves = rng.sample(sorted(KEYWORDS), rng.choice([1, 1, 2]))
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
        for leaf in leaves:
            words += rng.sample(KEYWORDS[leaf], 2)
        rng.shuffle(words)
        labels = sorted(set(leaves) | {leaf.split("::")[0] for leaf in leaves})
        docs.append({"id": f"d{i}", "text": " ".join(words), "labels": labels})
    return docs


def write_dataset(root: Path, n_train: int = 160, n_eval: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 0), ("valid", n_eval, 1), ("test", n_eval, 2)):
        with open(root / f"{name}.jsonl", "w") as f:
            for d in make_docs(n, seed):
                f.write(json.dumps(d) + "\n")
    (root / "hierarchy.tsv").write_text("".join(f"{p}\t{c}\n" for p, c in HIERARCHY))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def interrupt_adam(monkeypatch: pytest.MonkeyPatch):
    """``interrupt_adam(n)``: the ``n``-th Adam step raises KeyboardInterrupt (a crash mid-run,
    like kill -9 after the last checkpoint); ``interrupt_adam(None)`` restores Adam."""
    real_step = torch.optim.Adam.step

    def arm(n: int | None) -> None:
        if n is None:
            monkeypatch.setattr(torch.optim.Adam, "step", real_step)
            return
        calls = {"n": 0}

        def crashing_step(self, *a, **kw):
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
            return real_step(self, *a, **kw)

        monkeypatch.setattr(torch.optim.Adam, "step", crashing_step)

    return arm


def pytest_terminal_summary(terminalreporter) -> None:
    """The count of fault cases :mod:`tests.test_faults` checked, when it ran."""
    faults = sys.modules.get("tests.test_faults")
    if faults is not None and faults.CASES["checked"]:
        terminalreporter.write_line(
            f"fault cases checked through the CLI: {faults.CASES['checked']}"
        )
