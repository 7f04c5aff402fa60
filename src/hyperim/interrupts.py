"""Ctrl-C and ``kill`` (SIGINT, SIGTERM) as one exception, and stopping at a safe point.

Python turns SIGINT into :class:`KeyboardInterrupt`, which typer (and other libraries) catch
and turn into exit codes of their own. :func:`install` replaces both signals' handlers so that
they raise :class:`Interrupted` instead, which only the CLI's entry point handles: one line on
stderr and exit status 130 (SIGINT) or 143 (SIGTERM).

Work that can stop cleanly at a step boundary (training) runs inside :func:`deferred`: the
first signal then only sets a flag that the loop reads with :func:`requested` between steps
(so it can write a checkpoint of a consistent state and raise :class:`Interrupted` saying
what was saved); a second signal raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(BaseException):
    """The user stopped hyperim (Ctrl-C or SIGTERM); ``str(e)`` says what was saved.

    A :class:`BaseException`, like :class:`KeyboardInterrupt`, so ``except Exception`` does not
    swallow it."""

    def __init__(self, message: str | None = None, signum: int = signal.SIGINT) -> None:
        super().__init__(message or "interrupted")
        self.signum = signum
        #: whether the message says what was saved (False: a bare signal, the caller may tell)
        self.explained = message is not None

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 130)


_state = {"deferring": 0, "pending": None}


def _handler(signum: int, _frame: object) -> None:
    if _state["deferring"] and _state["pending"] is None:
        _state["pending"] = signum
        return
    raise Interrupted(signum=signum)


def install() -> None:
    """Route SIGINT and SIGTERM to :class:`Interrupted` (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in EXIT_STATUS:
        signal.signal(signum, _handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, the first signal is only recorded (see :func:`requested`)."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        if not _state["deferring"]:
            _state["pending"] = None


def requested() -> int | None:
    """The signal received inside :func:`deferred` and not yet acted on, or None."""
    return _state["pending"]


def raise_pending(message: str) -> None:
    """Raise :class:`Interrupted` with ``message`` for the pending signal."""
    signum = _state["pending"] or signal.SIGINT
    _state["pending"] = None
    raise Interrupted(message, signum)
