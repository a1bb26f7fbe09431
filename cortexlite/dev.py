"""`cortexlite dev`: each API of a project served by one hot-reloading replica of the live directory.

The replica runs the project directory itself (bind-mounted read-only into a container, or used
directly by a process) with `CORTEXLITE_RELOAD=1`, behind the gateway like any API. Ending the
session puts back what served before: the API's previous release (its replica count too), or
nothing when dev created it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cortexlite.backends.base import Replica
from cortexlite.deployment import ensure_gateway, new_marker, run_marker
from cortexlite.errors import EnvConfigError
from cortexlite.logtail import LogLine
from cortexlite.project import Project, load_project
from cortexlite.recovery import acquire
from cortexlite.release import make_release
from cortexlite.state import ApiRecord
from cortexlite.teardown import delete
from cortexlite.updater import Report
from cortexlite.workspace import Workspace
from cortexlite_runtime.spec import ApiSpec

__all__ = ["DevSession", "LineKind", "classify_line", "end_dev", "start_dev"]


@dataclass
class DevSession:
    ws: Workspace
    project: Project
    started: list[str] = field(default_factory=list)
    # What served each API before the session (None: dev created it), put back by `end_dev`.
    previous: dict[str, ApiRecord | None] = field(default_factory=dict)

    def urls(self) -> dict[str, str]:
        return {name: f"{self.ws.gateway_url}{self.project.api(name).endpoint}" for name in self.started}

    def replicas(self) -> list[Replica]:
        return [replica for name in self.started for replica in self.ws.backend.replicas(name)]

    def follow(self, stop: Callable[[], bool]) -> Iterator[LogLine]:
        """The dev replicas' log lines from now on (a restarted or healed replica joins)."""
        return self.ws.backend.follow_logs(self.replicas, stop)


def start_dev(ws: Workspace, path: Path, report: Report, detail: Report) -> DevSession:
    """Serve every API of the project at `path` from its live directory; on failure nothing is left changed."""
    environment = ws.environment
    if environment.ships_bundles:
        raise EnvConfigError(
            f"cortexlite dev serves the project directory of this machine; environment {environment.name} runs "
            "replicas elsewhere (its projects travel through storage). Use a local environment: cortexlite dev -e local"
        )
    project = load_project(path)
    for notice in project.notices:
        report(f"notice: {notice}")
    ensure_gateway(ws, report)
    session = DevSession(ws, project)
    try:
        for api in project.apis:
            _start_api(session, api, report, detail)
    except BaseException:
        end_dev(session, report)
        raise
    return session


def end_dev(session: DevSession, report: Report) -> None:
    """Remove the dev replicas: the previous release serves again, or the API is deleted."""
    ws = session.ws
    for name in reversed(session.started):
        previous = session.previous.get(name)
        if previous is None:
            delete(ws, name, report, force=True)
            continue
        lock = acquire(ws, name, report, force=True)
        try:
            current = ws.state.api(name)
            report(f"{name}: dev ended; the previous version serves again")
            marker = new_marker("update", previous, current)
            ws.state.set_marker(marker)
            run_marker(ws, marker, report, None)
        finally:
            lock.release()
    session.started.clear()


def _start_api(session: DevSession, api: ApiSpec, report: Report, detail: Report) -> None:
    ws, project, name = session.ws, session.project, api.name
    lock = acquire(ws, name, report)
    try:
        record = ws.state.api(name)
        prepared = ws.backend.prepare(project, name, detail)
        release = make_release(api, project.code_hash, prepared.runtime, dev=True)
        target = ApiRecord.of(
            release, project.directory.resolve(), 1, created_at=record.created_at if record is not None else None
        )
        # A record left by a dev session that did not end cleanly is not put back.
        session.previous[name] = record if record is not None and not record.dev else None
        report(f"{name}: serving {project.directory} with hot reload (1 replica)")
        marker = new_marker("create" if record is None else "update", target, record)
        ws.state.set_marker(marker)
        run_marker(ws, marker, report, None)
        session.started.append(name)
    finally:
        lock.release()


class LineKind:
    RELOADED = "reloaded"
    FAILED = "failed"
    RESTART = "restart"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


def classify_line(text: str) -> str:
    """What a rendered replica log line reports, for the dev command's colours."""
    if " reloaded in " in text:
        return LineKind.RELOADED
    if " reload failed" in text:
        return LineKind.FAILED
    if " restarting the replica" in text:
        return LineKind.RESTART
    head = text[:40]
    if " ERROR " in head or " CRITICAL" in head:
        return LineKind.ERROR
    if " WARNING" in head:
        return LineKind.WARNING
    return LineKind.INFO
