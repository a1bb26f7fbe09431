"""Handing requests to the predictor: a scheduler on the event loop, and the in-process worker.

The scheduler gives each job (one request, or one batch) to a worker with a free slot, and
queues it otherwise, so with P processes x T threads, P x T requests run at once and a busy
process never holds a request that an idle one could serve (Cortex issue #839). Completions
come back through an `Inbox`, which wakes the event loop once per burst rather than once per
request.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Protocol

from loguru import logger

from .handler import Handler
from .inline import InlinePolicy
from .payload import Invocation, Outcome, error_outcome

__all__ = ["Inbox", "Job", "Scheduler", "ThreadWorker", "Worker"]

_ids = itertools.count(1)


class Job:
    __slots__ = ("future", "id", "invocations")

    def __init__(self, invocations: list[Invocation], future: asyncio.Future[list[Outcome]]) -> None:
        self.invocations = invocations
        self.future = future
        self.id = next(_ids)


class Worker(Protocol):
    capacity: int
    free: int

    @property
    def running(self) -> int:
        """Requests executing on this worker now (not waiting in its queue)."""

    def send(self, job: Job) -> None: ...

    def close(self, timeout: float) -> None: ...


class Inbox:
    """Items put from any thread, handled on the event loop; one loop wake-up per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handle: Callable[[Any], None]) -> None:
        self._loop = loop
        self._handle = handle
        self._items: deque[Any] = deque()
        self._scheduled = False

    def put(self, item: Any) -> None:
        self._items.append(item)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            self._handle(items.popleft())


class Scheduler:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.workers: list[Worker] = []
        self.pending: deque[Job] = deque()

    def submit(self, invocations: list[Invocation]) -> asyncio.Future[list[Outcome]]:
        job = Job(invocations, self.loop.create_future())
        worker = self._free_worker()
        if worker is None:
            self.pending.append(job)
        else:
            self._start(worker, job)
        return job.future

    @property
    def active_requests(self) -> int:
        return sum(worker.running for worker in self.workers)

    def complete(self, worker: Worker, job: Job, outcomes: list[Outcome]) -> None:
        """Called on the loop when `worker` finished `job`."""
        worker.free += 1
        self.finish(job, outcomes)
        self.pump()

    def finish(self, job: Job, outcomes: list[Outcome]) -> None:
        """Answer `job` without returning its slot (its worker is gone)."""
        if not job.future.done():
            job.future.set_result(outcomes)

    def pump(self) -> None:
        """Start queued jobs on workers with free slots."""
        while self.pending:
            free = self._free_worker()
            if free is None:
                break
            self._start(free, self.pending.popleft())

    def _start(self, worker: Worker, job: Job) -> None:
        worker.free -= 1
        worker.send(job)

    def _free_worker(self) -> Worker | None:
        best = None
        for worker in self.workers:
            if worker.free > 0 and (best is None or worker.free > best.free):
                best = worker
        return best

    def close(self, timeout: float) -> None:
        for worker in self.workers:
            worker.close(timeout)


class ThreadWorker:
    """The predictor in this process, on `threads` threads (the `processes_per_replica: 1` case).

    Being the only worker, it takes every job at once into its own queue: a thread that finishes
    a job picks the next one without waiting for the event loop, so under load neither thread
    sleeps between requests and the loop is woken once per burst of completions.
    """

    def __init__(
        self, scheduler: Scheduler, handler: Handler, threads: int, inline: InlinePolicy | None = None
    ) -> None:
        self.capacity = threads
        self.free = sys.maxsize
        self._inline = inline
        self._outstanding = 0  # jobs handed to the threads and not yet finished
        self._held: deque[Job] = deque()  # jobs for the inline path, waiting for the threads to drain
        self._busy = [0] * threads  # requests running on each thread; each thread writes only its own
        self._scheduler = scheduler
        self._handler = handler
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._inbox = Inbox(scheduler.loop, self._finished)
        self._threads = [
            threading.Thread(target=self._serve, args=(i,), name=f"predict-{i}", daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def running(self) -> int:
        return sum(self._busy)

    def send(self, job: Job) -> None:
        inline = self._inline
        if inline is None or not inline.allowed:
            self._dispatch(job)
        elif self._outstanding == 0 and not self._held:
            self._run_inline(job, inline)
        else:
            # Back on the loop, but the threads still hold jobs: wait for them, keeping the order.
            self._held.append(job)

    def _dispatch(self, job: Job) -> None:
        self._outstanding += 1
        self._queue.put(job)

    def _run_inline(self, job: Job, inline: InlinePolicy) -> None:
        started = time.perf_counter()
        # Hide the running loop, so that predict (and payload parsing) sees what it sees on its
        # thread: no loop, and asyncio.run() works.
        loop = asyncio_events._get_running_loop()
        asyncio_events._set_running_loop(None)
        try:
            outcomes = _run(self._handler, job)
        finally:
            asyncio_events._set_running_loop(loop)
        inline.observe(time.perf_counter() - started, inline=True)
        self._scheduler.complete(self, job, outcomes)

    def _release_held(self) -> None:
        """Run one held job inline (one per loop iteration, so I/O goes on between them)."""
        if not self._held or self._outstanding:
            return
        inline = self._inline
        if inline is None or not inline.allowed:  # a slow inline call: the rest go to the threads
            while self._held:
                self._dispatch(self._held.popleft())
            return
        self._run_inline(self._held.popleft(), inline)
        if self._held:
            self._scheduler.loop.call_soon(self._release_held)

    def close(self, timeout: float) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self, index: int) -> None:
        handler, queue, inbox, busy = self._handler, self._queue, self._inbox, self._busy
        while (job := queue.get()) is not None:
            busy[index] = len(job.invocations)
            started = time.perf_counter()
            outcomes = _run(handler, job)
            busy[index] = 0
            inbox.put((job, outcomes, time.perf_counter() - started))

    def _finished(self, item: tuple[Job, list[Outcome], float]) -> None:
        job, outcomes, seconds = item
        self._outstanding -= 1
        if self._inline is not None:
            self._inline.observe(seconds, inline=False)
        self._scheduler.complete(self, job, outcomes)
        if self._outstanding == 0 and self._held:
            self._scheduler.loop.call_soon(self._release_held)


def _run(handler: Handler, job: Job) -> list[Outcome]:
    try:
        return handler.run(job.invocations)
    except BaseException as exc:  # the handler catches user errors; this is a bug of ours (or SystemExit)
        logger.opt(exception=exc).error("internal error while predicting")
        return [error_outcome(500, f"internal error: {exc!r}", i.request_id) for i in job.invocations]
