"""Server-side batching: one self-contained queue in front of the scheduler.

A batch goes to the predictor when it holds `max_batch_size` requests, or when `batch_interval`
has passed since its first request: a timer, never polling. A batch is never empty, and a batch
that fails fails for each of its requests (the handler turns one error into one 500 each).
"""

from __future__ import annotations

import asyncio

from .executor import Scheduler
from .metrics import Histogram
from .payload import Invocation, Outcome, error_outcome

__all__ = ["Batcher"]


class Batcher:
    def __init__(self, scheduler: Scheduler, max_batch_size: int, batch_interval: float, sizes: Histogram) -> None:
        self._scheduler = scheduler
        self._loop = scheduler.loop
        self._max = max_batch_size
        self._interval = batch_interval
        self._sizes = sizes
        self._items: list[Invocation] = []
        self._futures: list[asyncio.Future[Outcome]] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._items)

    def submit(self, invocation: Invocation) -> asyncio.Future[Outcome]:
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._items.append(invocation)
        self._futures.append(future)
        if len(self._items) >= self._max:
            self._flush()
        elif len(self._items) == 1:
            self._timer = self._loop.call_later(self._interval, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        if not items:
            return
        self._sizes.observe(len(items))
        job = self._scheduler.submit(items)
        job.add_done_callback(lambda done: _fan_out(done, items, futures))


def _fan_out(
    done: asyncio.Future[list[Outcome]], items: list[Invocation], futures: list[asyncio.Future[Outcome]]
) -> None:
    outcomes = done.result()
    if len(outcomes) != len(futures):  # cannot happen unless the handler has a bug; never hang a client
        outcomes = [
            error_outcome(500, "internal error: batch answered with the wrong size", i.request_id) for i in items
        ]
    for future, outcome in zip(futures, outcomes, strict=True):
        if not future.done():
            future.set_result(outcome)
