"""Predictor processes (`processes_per_replica > 1`): spawned children driven over a pipe.

The front process keeps HTTP, the global cap, the queue and the metrics; each child imports the
predictor, runs `__init__` once, and serves jobs on its own threads. A child that dies is
replaced, and the requests it held get a 500 saying so.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from queue import SimpleQueue
from typing import Any

from loguru import logger

from .errors import CortexliteError
from .executor import Inbox, Job, Scheduler
from .handler import Handler
from .loader import LoadPlan, build_handler, describe_handler, reload_predictor
from .logs import configure_logging
from .payload import Invocation, Outcome, error_outcome

__all__ = ["ProcessWorker"]

ReadyCallback = Callable[["ProcessWorker", dict[str, Any]], None]
FailedCallback = Callable[["ProcessWorker", str], None]


class ProcessWorker:
    def __init__(
        self,
        scheduler: Scheduler,
        plan: LoadPlan,
        *,
        threads: int,
        index: int,
        on_ready: ReadyCallback,
        on_failed: FailedCallback,
    ) -> None:
        self.capacity = threads
        self.free = 0  # no slots until the child's __init__ finished
        self.index = index
        self._scheduler = scheduler
        self._plan = plan
        self._on_ready = on_ready
        self._on_failed = on_failed
        self._jobs: dict[int, Job] = {}
        self._closing = False
        self._reloading: Future[tuple[bool, str, bool]] | None = None
        self._inbox = Inbox(scheduler.loop, self._on_message)
        self._spawn()

    @property
    def running(self) -> int:
        return sum(len(job.invocations) for job in self._jobs.values())

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def send(self, job: Job) -> None:
        self._jobs[job.id] = job
        try:
            self._conn.send((job.id, job.invocations))
        except OSError:
            pass  # the child died; its exit, already on its way, answers every job it held

    def reload(self, plan: LoadPlan, rerun_init: bool, answer: Future[tuple[bool, str, bool]]) -> None:
        """Have the child import the project again (on the event loop); `answer` gets (ok, error, kept_state)."""
        self._reloading = answer
        try:
            self._conn.send(("reload", plan, rerun_init))
        except OSError:
            answer.set_result((False, f"predictor process {self.index} is not running", False))
            self._reloading = None
            return
        self._plan = plan  # a replacement child starts from the new code

    def close(self, timeout: float) -> None:
        self._closing = True
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child_main, args=(child, self._plan, self.capacity, self.index), name=f"predictor-{self.index}"
        )
        self._process.start()
        child.close()
        conn, inbox = self._conn, self._inbox
        threading.Thread(target=_read, args=(conn, inbox), name=f"predictor-{self.index}-reader", daemon=True).start()

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "done":
            job = self._jobs.pop(message[1])
            self._scheduler.complete(self, job, message[2])
        elif kind == "ready":
            self.free = self.capacity
            self._on_ready(self, message[1])
            self._scheduler.pump()
        elif kind == "failed":
            self._on_failed(self, message[1])
        elif kind == "reloaded":
            self._answer_reload((message[1], message[2], message[3]))
        elif kind == "exit" and not self._closing:
            self._answer_reload((False, f"predictor process {self.index} exited during the reload", False))
            self._replace()

    def _answer_reload(self, result: tuple[bool, str, bool]) -> None:
        answer, self._reloading = self._reloading, None
        if answer is not None and not answer.done():
            answer.set_result(result)

    def _replace(self) -> None:
        self._process.join(1)
        code = self._process.exitcode
        logger.error(
            "predictor process {} (pid {}) exited with code {}; starting a new one", self.index, self.pid, code
        )
        self.free = 0
        lost, self._jobs = self._jobs, {}
        message = f"the predictor process exited (code {code}) while handling this request"
        for job in lost.values():
            self._scheduler.finish(job, [error_outcome(500, message, i.request_id) for i in job.invocations])
        self._spawn()


def _read(conn: Connection, inbox: Inbox) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            inbox.put(("exit",))
            return
        inbox.put(message)


def _child_main(conn: Connection, plan: LoadPlan, threads: int, index: int) -> None:
    # The front process owns signals: it drains, then tells us to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(plan.log_format, plan.log_level, **plan.log_context, process=str(index))
    try:
        handler = build_handler(plan)
    except CortexliteError as exc:
        logger.error("predictor process {} failed to start: {}", index, exc)
        conn.send(("failed", str(exc)))
        return
    conn.send(("ready", describe_handler(handler)))
    lock = threading.Lock()
    queue: SimpleQueue[tuple[int, list[Invocation]] | None] = SimpleQueue()

    def serve() -> None:
        while (item := queue.get()) is not None:
            job_id, invocations = item
            try:
                outcomes: list[Outcome] = handler.run(invocations)
            except BaseException as exc:
                logger.opt(exception=exc).error("internal error while predicting")
                outcomes = [error_outcome(500, f"internal error: {exc}", i.request_id) for i in invocations]
            with lock:
                conn.send(("done", job_id, outcomes))

    pool = [threading.Thread(target=serve, name=f"predict-{i}", daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        if message[0] == "reload":

            def send(result: tuple[Any, ...]) -> None:
                with lock:
                    conn.send(result)

            args = (handler, *message[1:], send)
            threading.Thread(target=_reload_child, args=args, name="reload", daemon=True).start()
            continue
        queue.put(message)
    for _ in pool:
        queue.put(None)
    for thread in pool:
        thread.join()
    conn.close()
    os._exit(0)


def _reload_child(handler: Handler, plan: LoadPlan, rerun_init: bool, send: Callable[[tuple[Any, ...]], None]) -> None:
    """A reload in a predictor process (on its own thread; serving goes on meanwhile)."""
    try:
        predictor = reload_predictor(plan, handler.predictor, rerun_init=rerun_init)
    except CortexliteError as exc:
        send(("reloaded", False, str(exc), False))
    except Exception as exc:
        logger.opt(exception=exc).error("internal error while reloading")
        send(("reloaded", False, f"internal error: {exc!r}", False))
    else:
        handler.replace(predictor)
        send(("reloaded", True, "", predictor.kept_state))
