"""Detached processes on the real OS: identity checks before signals, logs, stopping whole groups."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil

from cortexlite.processes import ProcessRef, identify, spawn, terminate


def _wait_for(predicate: object, timeout: float = 10) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_spawned_process_is_detached_logged_and_known_by_pid_and_start_time(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    script = "import sys, time; print('hello', flush=True); print('oops', file=sys.stderr, flush=True); time.sleep(60)"
    spawned = spawn([sys.executable, "-c", script], env=dict(os.environ), cwd=tmp_path, log_path=log)
    try:
        ref = spawned.ref
        assert ref == identify(ref.pid)
        assert ref.alive()
        assert os.getsid(ref.pid) == ref.pid  # its own session: a terminal's Ctrl-C never reaches it
        assert _wait_for(lambda: "hello" in log.read_text() and "oops" in log.read_text())

        impostor = ProcessRef(ref.pid, ref.started + 100)  # the same pid, another start: a recycled pid
        assert not impostor.alive()
        assert not impostor.signal(signal.SIGTERM)
        assert ref.alive()
    finally:
        assert terminate([spawned.ref], timeout=10) == []
    assert not spawned.ref.alive()
    assert spawned.exit_code() == -signal.SIGTERM


def test_terminate_kills_what_ignores_sigterm_and_its_whole_group(tmp_path: Path) -> None:
    script = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    log = tmp_path / "out.log"
    spawned = spawn([sys.executable, "-c", script], env=dict(os.environ), cwd=tmp_path, log_path=log)
    assert _wait_for(lambda: log.read_text().strip().isdigit())
    child = psutil.Process(int(log.read_text().strip()))
    killed = terminate([spawned.ref], timeout=0.5)
    assert killed == [spawned.ref]
    assert not spawned.ref.alive()
    assert _wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE)


def test_a_gone_process_is_not_signalled(tmp_path: Path) -> None:
    spawned = spawn([sys.executable, "-c", "pass"], env=dict(os.environ), cwd=tmp_path, log_path=tmp_path / "l.log")
    assert _wait_for(lambda: spawned.exit_code() is not None)
    assert not spawned.ref.alive()
    assert not spawned.ref.signal(signal.SIGTERM)
    assert terminate([spawned.ref], timeout=1) == []
