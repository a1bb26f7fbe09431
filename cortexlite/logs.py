"""`logs`: every replica's log, interleaved by time and prefixed by replica."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from cortexlite.errors import NotFoundError
from cortexlite.logtail import LogLine, follow, merged_tail
from cortexlite.workspace import Workspace

__all__ = ["follow_logs", "log_sources", "recent_logs"]


def log_sources(ws: Workspace, name: str) -> dict[str, Path]:
    """The log file of each replica of `name` that exists now."""
    ws.require_api(name)
    sources = {}
    for replica in ws.backend.replicas(name):
        path = ws.backend.log_file(replica)
        if path is not None:
            sources[replica.id] = path
    return sources


def recent_logs(ws: Workspace, name: str, tail: int) -> list[LogLine]:
    return merged_tail(log_sources(ws, name), tail)


def follow_logs(ws: Workspace, name: str, stop: Callable[[], bool]) -> Iterator[LogLine]:
    """New lines from now on; replicas that start later (a deploy, a refresh) join."""

    def sources() -> dict[str, Path]:
        try:
            return log_sources(ws, name)
        except NotFoundError:
            return {}

    return follow(sources, stop)
