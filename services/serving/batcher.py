"""Dynamic micro-batching: concurrent requests to one deployment share one forward pass.

Requests wait in a bounded queue. One worker per deployment, on the event loop, takes the
oldest request, waits at most ``max_wait_ms`` for company (up to ``max_batch_size`` requests),
and hands the whole batch to ``run`` in a thread pool (never on the event loop). While a batch
runs, new requests queue up, so under load the next batch forms without waiting at all. A lone
request after a batch of one (no concurrent traffic) does not wait: the wait only buys batching
when requests overlap. ``max_batch_size`` 1 turns batching off. No gRPC here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

from forgeline.errors import ResourceExhausted, Unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class BatchingBounds:
    max_batch_size: int
    max_wait_ms: float
    # Most requests waiting at once; more are refused with RESOURCE_EXHAUSTED.
    max_queued: int


@dataclass
class BatchStats:
    """What the batcher did: batches run and the requests in them."""

    batches: int = 0
    items: int = 0
    largest: int = 0


class MicroBatcher(Generic[Item, Result]):
    """Groups submitted items into batches for ``run(items) -> results`` (one result per item,
    in order). Bound to the event loop of its first ``submit``."""

    def __init__(
        self,
        name: str,
        run: Callable[[list[Item]], Sequence[Result]],
        executor: Executor,
        bounds: BatchingBounds,
    ) -> None:
        self.name, self.bounds, self.stats = name, bounds, BatchStats()
        self._run, self._executor = run, executor
        self._queue: deque[tuple[Item, asyncio.Future]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closed = False
        # The previous batch's size (0: none yet): 1 means requests do not overlap.
        self._last_size = 0

    def submit_many(self, items: Sequence[Item]) -> list[asyncio.Future]:
        """Queues ``items`` (all or none) and returns their futures. Synchronous on purpose:
        a caller that looked the batcher up in the same step of the loop cannot miss it being
        closed in between."""
        if self._closed:
            raise Unavailable(
                f"deployment {self.name!r} is being replaced or removed; retry",
                reason="DEPLOYMENT_CLOSED",
                metadata={"deployment": self.name},
            )
        if len(self._queue) + len(items) > self.bounds.max_queued:
            raise ResourceExhausted(
                f"deployment {self.name!r} has {len(self._queue)} requests waiting (at most "
                f"{self.bounds.max_queued}); retry later",
                reason="SERVING_QUEUE_FULL",
                metadata={"deployment": self.name},
            )
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._arrived = asyncio.Event()
            self._worker = self._loop.create_task(self._work(), name=f"batcher-{self.name}")
        futures = [self._loop.create_future() for _ in items]
        self._queue.extend(zip(items, futures, strict=True))
        self._arrived.set()
        return futures

    async def submit(self, item: Item) -> Result:
        (future,) = self.submit_many([item])
        return await future

    async def drain(self) -> None:
        """Stops taking requests and returns once every queued one is answered."""
        self._closed = True
        if self._worker is not None:
            self._arrived.set()
            await asyncio.shield(self._worker)

    def close_soon(self) -> None:
        """``drain`` from any thread, without waiting (a replaced deployment finishes what it
        queued in the background)."""
        if self._loop is None:
            self._closed = True
            return
        try:
            self._loop.call_soon_threadsafe(self._close_on_loop)
        except RuntimeError:  # the loop is gone: nothing is left to answer
            self._closed = True

    def _close_on_loop(self) -> None:
        self._closed = True
        self._arrived.set()

    async def _work(self) -> None:
        while True:
            while not self._queue:
                if self._closed:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            batch = await self._collect()
            items = [item for item, _ in batch]
            try:
                results = await self._loop.run_in_executor(self._executor, self._run, items)
            except BaseException as exc:  # every waiter hears of it; the worker goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # its caller may have gone
                    future.set_result(result)

    async def _collect(self) -> list[tuple[Item, asyncio.Future]]:
        """The oldest request and whoever joins it within the wait (or is already queued)."""
        limit, queue = self.bounds.max_batch_size, self._queue
        batch = [queue.popleft()]
        if not queue and self._last_size == 1:
            return batch  # nobody else is asking: waiting would only add latency
        deadline = self._loop.time() + self.bounds.max_wait_ms / 1000
        while len(batch) < limit:
            if queue:
                batch.append(queue.popleft())
                continue
            left = deadline - self._loop.time()
            if left <= 0 or self._closed:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                break
        self._last_size = len(batch)
        return batch
