"""Detached processes, known by (pid, start time) so that a recycled pid is never signalled.

A process started here runs in its own session, so it outlives the command that started it and
a Ctrl-C in the terminal never reaches it. Its stdout and stderr go through `logwriter.py`
into a size-rotated file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from cortexlite.errors import CortexliteError

__all__ = ["LOG_KEEP", "LOG_MAX_BYTES", "ProcessRef", "Spawned", "identify", "run_streaming", "spawn", "terminate"]

LOG_MAX_BYTES = 10 * 2**20
LOG_KEEP = 3
_LOGWRITER = Path(__file__).with_name("logwriter.py")
# The processes `spawn` started, until their exit status is collected: the status stays readable and a
# Popen is never dropped while its process runs.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRef:
    """A process as recorded: its pid and its start time (seconds since the epoch, from the kernel)."""

    pid: int
    started: float

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not another process with its pid)."""
        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.started) < 0.05 and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def signal(self, sig: int) -> bool:
        """Send `sig` only after checking identity; False when the process is gone."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill_group(self) -> bool:
        """SIGKILL the process and its group (`spawn` makes it a session leader), after checking identity."""
        if not self.alive():
            return False
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return self.signal(signal.SIGKILL)
        return True

    def reap(self) -> int | None:
        """Collect the exit status when this process is our child (no zombie is left); else None."""
        child = _CHILDREN.get(self.pid)
        if child is not None:  # started by `spawn`: its Popen keeps the exit status
            code = child.poll()
            if code is not None:
                del _CHILDREN[self.pid]
            return code
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status) if pid else None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to end; True when it has."""
        deadline = time.monotonic() + timeout
        while self.alive():
            self.reap()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        self.reap()
        return True


def identify(pid: int) -> ProcessRef | None:
    try:
        return ProcessRef(pid, psutil.Process(pid).create_time())
    except psutil.Error:
        return None


@dataclass
class Spawned:
    ref: ProcessRef
    popen: subprocess.Popen[bytes]

    def exit_code(self) -> int | None:
        return self.popen.poll()


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    max_log_bytes: int = LOG_MAX_BYTES,
    keep_logs: int = LOG_KEEP,
) -> Spawned:
    """Start `argv` detached, its output going to `log_path` (rotated); return its identity."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    writer = subprocess.Popen(
        [sys.executable, "-I", "-S", str(_LOGWRITER), str(log_path), str(max_log_bytes), str(keep_logs), "--detach"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    assert writer.stdin is not None
    try:
        process = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=writer.stdin,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        )  # fmt: skip
    finally:
        writer.stdin.close()
        writer.wait(10)  # the writer's launcher, which exits as soon as the writer runs on its own
    _CHILDREN[process.pid] = process
    ref = identify(process.pid) or ProcessRef(process.pid, time.time())
    return Spawned(ref, process)


def terminate(refs: Sequence[ProcessRef], timeout: float) -> list[ProcessRef]:
    """SIGTERM each live process, wait up to `timeout` for all, SIGKILL the rest; return the killed ones."""
    signalled = [ref for ref in refs if ref.signal(signal.SIGTERM)]
    deadline = time.monotonic() + timeout
    remaining = list(signalled)
    while remaining and time.monotonic() < deadline:
        for ref in remaining:
            ref.reap()
        remaining = [ref for ref in remaining if ref.alive()]
        if remaining:
            time.sleep(0.05)
    for ref in remaining:
        ref.kill_group()  # the group too: a replica's predictor processes must not outlive it
    for ref in remaining:
        with contextlib.suppress(Exception):
            ref.wait(5)
    return remaining


def run_streaming(
    command: Sequence[str], what: str, log: Callable[[str], None], error: type[CortexliteError], tail: int = 20
) -> None:
    """Run `command` in the foreground, each output line to `log`; on failure raise `error` with its last lines."""
    lines: deque[str] = deque(maxlen=tail)
    try:
        process = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace",
        )  # fmt: skip
    except OSError as exc:
        raise error(f"{what}: cannot run {command[0]}: {exc.strerror or exc}") from exc
    with process:
        for line in process.stdout or ():
            if line.strip():
                lines.append(line.rstrip())
                log(line.rstrip())
    if process.returncode != 0:
        shown = "\n".join(f"  {line}" for line in lines) or "  (no output)"
        raise error(f"{what} failed (exit code {process.returncode}); last lines:\n{shown}")
