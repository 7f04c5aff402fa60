"""Micro-batching of concurrent predictions, off the event loop.

Requests arriving within ``window_ms`` of each other (up to ``max_batch`` documents) are
scored as one call of :meth:`hyperim.api.HyperIM.predict` in a single worker thread, so the
event loop never waits for the model and a burst of small requests costs one forward pass.
Each document is asked for the largest ``k`` and evidence count in its batch and then cut to
its own, so a request's answer does not depend on what it was batched with (beyond float
rounding of padded batches).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from hyperim.api import HyperIM, Prediction

T = TypeVar("T")


@dataclass
class _Pending:
    text: str
    k: int
    evidence: int
    future: asyncio.Future = field(repr=False)


def _cut(predictions: list[Prediction], k: int, evidence: int) -> list[Prediction]:
    return [Prediction(p.label, p.probability, p.evidence[:evidence]) for p in predictions[:k]]


class MicroBatcher:
    """Collects :meth:`predict` calls for ``window_ms`` and scores them as one batch.

    Start it inside the running event loop (:meth:`start`) and :meth:`stop` it on shutdown.
    ``window_ms=0`` still batches whatever is already queued, without waiting for more.
    """

    def __init__(self, model: HyperIM, window_ms: float = 5.0, max_batch: int = 64) -> None:
        self.model = model
        self.window_s = max(window_ms, 0.0) / 1000.0
        self.max_batch = max(int(max_batch), 1)
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        # one thread: torch runs one batch at a time; the loop stays free meanwhile
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hyperim-infer")
        #: batches scored and documents in them (for /v1/health)
        self.batches = 0
        self.documents = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def predict(self, texts: list[str], k: int, evidence: int) -> list[list[Prediction]]:
        """The top ``k`` labels of each text with ``evidence`` words per label."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        loop = asyncio.get_running_loop()
        pending = [_Pending(t, k, evidence, loop.create_future()) for t in texts]
        for p in pending:
            self._queue.put_nowait(p)
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the inference thread (one model call at a time, off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    while len(batch) < self.max_batch and not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            await self._score(loop, batch)

    async def _score(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        k = max(p.k for p in batch)
        evidence = max(p.evidence for p in batch)
        texts = [p.text for p in batch]
        try:
            results = await loop.run_in_executor(
                self._executor, lambda: self.model.predict(texts, k=k, evidence=evidence)
            )
        except Exception as e:  # a failure answers every request of the batch, never the loop
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        self.batches += 1
        self.documents += len(batch)
        for p, preds in zip(batch, results, strict=True):
            if not p.future.done():  # a client gone meanwhile cancels its future
                p.future.set_result(_cut(preds, p.k, p.evidence))
