"""Interrupted and failed updates: detect them, take over when asked, roll them back.

An update leaves `rollout.json` while it runs. When its owner is gone (Ctrl-C, a crash, a killed
terminal) the next command that touches the API rolls it back: to the previous release with its
replica count, or, for an API that was being created, to nothing.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path

from cortexlite.errors import BusyError
from cortexlite.files import Lock
from cortexlite.state import RolloutMarker
from cortexlite.updater import DEFAULT_READY_TIMEOUT_S, Report, Updater
from cortexlite.workspace import Workspace

__all__ = ["acquire", "recover", "restore", "updater_for"]

_TAKE_OVER_TIMEOUT_S = 60.0


def updater_for(ws: Workspace, report: Report, ready_timeout: float | None = None) -> Updater:
    timeout = DEFAULT_READY_TIMEOUT_S if ready_timeout is None else ready_timeout
    return Updater(ws.backend, ws.membership, ws.state, report, ready_timeout=timeout)


def acquire(ws: Workspace, name: str, report: Report, *, force: bool = False) -> Lock:
    """The API's lock, after rolling back an interrupted update; `force` interrupts a running one."""
    marker = ws.state.marker(name)
    if marker is not None and marker.owner.alive():
        if not force:
            raise BusyError(_busy(name, marker))
        report(f"{name}: interrupting the {marker.action} in progress (pid {marker.owner_pid}), as --force asks")
        marker.owner.signal(signal.SIGINT)
        lock = ws.state.lock(name)
        # Its exit, not just its lock, so that what it left is seen as interrupted and rolled back.
        if not marker.owner.wait(_TAKE_OVER_TIMEOUT_S) or not _acquire_within(lock, _TAKE_OVER_TIMEOUT_S):
            raise BusyError(f"{name}: the update in progress (pid {marker.owner_pid}) did not stop within 60s")
    else:
        lock = ws.state.lock(name)
        if not lock.acquire(blocking=False):
            # The operator scaling or healing it, or a command about to mark an update: both end soon.
            report(f"{name}: waiting for the operator (or another command) to finish with it")
            if not _acquire_within(lock, _TAKE_OVER_TIMEOUT_S):
                raise BusyError(f"{name}: another cortexlite command is working on it; try again when it has finished")
            if (late := ws.state.marker(name)) is not None and late.owner.alive() and not force:
                lock.release()
                raise BusyError(_busy(name, late))
    try:
        recover(ws, name, report)
    except BaseException:
        lock.release()
        raise
    return lock


def recover(ws: Workspace, name: str, report: Report) -> bool:
    """Roll back an interrupted update of `name` (the caller holds its lock); True when there was one."""
    marker = ws.state.marker(name)
    if marker is None or marker.owner.alive():
        return False
    started = datetime.fromtimestamp(marker.started_at).strftime("%Y-%m-%d %H:%M:%S")
    report(f"{name}: rolling back the interrupted {marker.action} (pid {marker.owner_pid}, started {started})")
    ws.gateway.ensure(report)
    restore(ws, updater_for(ws, report), marker)
    ws.state.clear_marker(name)
    return True


def restore(ws: Workspace, updater: Updater, marker: RolloutMarker) -> None:
    """Back to what served before `marker`'s update: the previous release, or no API at all."""
    name = marker.target.name
    previous = marker.previous
    if previous is None:
        updater.retire_all(name)
        ws.state.forget_api(name)
        return
    updater.roll(previous.release(), Path(previous.snapshot), previous.requested)
    ws.state.save_api(previous)


def _acquire_within(lock: Lock, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not lock.acquire(blocking=False):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _busy(name: str, marker: RolloutMarker) -> str:
    since = datetime.fromtimestamp(marker.started_at).strftime("%H:%M:%S")
    return (
        f"{name} is being updated (a {marker.action} by pid {marker.owner_pid}, since {since}); "
        "wait for it to finish, or pass --force to take over"
    )
