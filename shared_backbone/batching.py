"""Dynamic micro-batching: concurrent requests share one forward pass.

On a CPU a forward pass over 32 short texts costs far less than 32 passes over one, so the backbone
server parks each request for at most ``max_wait_s`` while others arrive, then encodes them together
on one worker thread (the event loop never runs the model). A request larger than ``max_batch_texts``
goes through alone; the encoder splits it into its own batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from prometheus_client import Histogram

BATCH_TEXTS = Histogram(
    "spine_backbone_batch_texts", "Texts per coalesced forward pass", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
)
QUEUE_WAIT = Histogram(
    "spine_backbone_queue_seconds",
    "Time a request waited to join a forward pass",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)
ENCODE_TIME = Histogram(
    "spine_backbone_encode_seconds", "Duration of one coalesced forward pass", buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5)
)


T = TypeVar("T")


class BatcherStopped(RuntimeError):
    """The batcher is stopping or stopped: the request was not encoded."""


class BatcherBusy(RuntimeError):
    """The queue is full: shed load rather than let latency grow without bound."""


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Coalesces ``submit()`` calls into calls of ``encode(texts) -> (n, dim) array``."""

    def __init__(
        self, encode: Callable[[Sequence[str]], np.ndarray], *, max_batch_texts: int = 64, max_wait_s: float = 0.005, max_queued: int = 1024
    ) -> None:
        if max_batch_texts < 1 or max_wait_s < 0 or max_queued < 1:
            raise ValueError("max_batch_texts >= 1, max_wait_s >= 0 and max_queued >= 1 are needed")
        self.encode = encode
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_s
        self.max_queued = max_queued
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._carried: _Pending | None = None  # the request that did not fit the last batch: it leads the next
        self._in_flight: list[_Pending] = []

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Cancel the worker and fail every request still waiting (none is left hanging)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        waiting = [*self._in_flight, *([self._carried] if self._carried else [])]
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for pending in waiting:
            if not pending.future.done():
                pending.future.set_exception(BatcherStopped("the backbone server is shutting down"))
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self._worker = self._executor = self._queue = self._carried = None

    async def submit(self, texts: Sequence[str]) -> np.ndarray:
        if self._queue is None:
            raise BatcherStopped("the micro-batcher is not running")
        if self._queue.qsize() >= self.max_queued:
            raise BatcherBusy(f"{self._queue.qsize()} requests already queued")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(list(texts), future))
        return await future

    async def run_exclusive(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function`` on the encode thread, between passes: the tokenizer and the model are not thread-safe together."""
        if self._executor is None:
            raise BatcherStopped("the micro-batcher is not running")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _collect(self, first: _Pending) -> list[_Pending]:
        """The first request plus whatever else arrives within the wait, up to the batch size."""
        assert self._queue is not None
        batch, size = [first], len(first.texts)
        self._in_flight = batch  # held here while collecting, so a stop() mid-collection fails them too
        deadline = time.perf_counter() + self.max_wait_s
        while size < self.max_batch_texts:
            remaining = deadline - time.perf_counter()
            try:
                pending = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self._queue.get(), remaining)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if size + len(pending.texts) > self.max_batch_texts:
                self._carried = pending
                break
            batch.append(pending)
            size += len(pending.texts)
        return batch

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first, self._carried = self._carried, None
            batch = await self._collect(first or await self._queue.get())
            live = [p for p in batch if not p.future.done()]  # a caller that gave up (timeout, disconnect) costs nothing
            if not live:
                continue
            started = time.perf_counter()
            for pending in live:
                QUEUE_WAIT.observe(started - pending.queued_at)
            self._in_flight = live
            texts = [text for pending in live for text in pending.texts]
            BATCH_TEXTS.observe(len(texts))
            try:
                vectors = await loop.run_in_executor(self._executor, self.encode, texts)
            except Exception as exc:  # every waiting request gets the error; the loop keeps serving
                for pending in live:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                self._in_flight = []
                continue
            finally:
                ENCODE_TIME.observe(time.perf_counter() - started)
            self._in_flight = []  # (left in place when cancelled, so that stop() can fail them)
            offset = 0
            for pending in live:
                rows = vectors[offset : offset + len(pending.texts)]
                offset += len(pending.texts)
                if not pending.future.done():
                    pending.future.set_result(rows)
