"""The one exception type for problems a user can cause (bad files, bad options).

The CLI turns a :class:`HyperIMError` into a single line on stderr and exit status 2;
anything else is a bug and may show a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class HyperIMError(Exception):
    """A problem caused by the user's input or options; its message is one line."""


class DataError(HyperIMError):
    """A problem in an input file, located by file and (when known) line number.

    ``str(err)`` is ``"<path>:<line>: <problem>"`` (or ``"<path>: <problem>"`` without a line).
    """

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


def check_all(
    checks: Iterable[tuple[bool, str]],
    prefix: str = "invalid option: ",
    error: type[Exception] = HyperIMError,
) -> None:
    """Raise ``error(prefix + message)`` for the first ``(ok, message)`` that is not ok: the
    ``validate()`` of every options dataclass."""
    for ok, message in checks:
        if not ok:
            raise error(f"{prefix}{message}")
