"""`logs`: every replica's log, interleaved by time and prefixed by replica."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cortexlite.backends.base import Replica
from cortexlite.errors import NotFoundError
from cortexlite.logtail import LogLine, merge_lines
from cortexlite.workspace import Workspace

__all__ = ["follow_logs", "recent_logs"]


def recent_logs(ws: Workspace, name: str, tail: int) -> list[LogLine]:
    """The last `tail` lines of each replica of `name` that exists now, interleaved by time."""
    ws.require_api(name)
    return merge_lines({replica.id: ws.backend.log_tail(replica, tail) for replica in ws.backend.replicas(name)})


def follow_logs(ws: Workspace, name: str, stop: Callable[[], bool]) -> Iterator[LogLine]:
    """New lines from now on; replicas that start later (a deploy, a refresh) join."""

    def replicas() -> list[Replica]:
        try:
            ws.require_api(name)
        except NotFoundError:
            return []
        return ws.backend.replicas(name)

    return ws.backend.follow_logs(replicas, stop)
