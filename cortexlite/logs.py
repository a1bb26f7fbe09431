"""`logs`: every replica's log, interleaved by time and prefixed by replica."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from cortexlite.backends.base import Replica
from cortexlite.errors import NotFoundError
from cortexlite.logtail import LogLine, merge_lines
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["follow_logs", "recent_logs"]


def recent_logs(ws: Workspace | Cluster, name: str, tail: int) -> list[LogLine]:
    """The last `tail` lines of each replica of `name` that exists now, interleaved by time."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad import logs

        return logs.recent_logs(ws, name, tail)
    ws.require_api(name)
    return merge_lines({replica.id: ws.backend.log_tail(replica, tail) for replica in ws.backend.replicas(name)})


def follow_logs(ws: Workspace | Cluster, name: str, stop: Callable[[], bool]) -> Iterator[LogLine]:
    """New lines from now on; replicas that start later (a deploy, a refresh) join."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad import logs

        return logs.follow_logs(ws, name, stop)

    def replicas() -> list[Replica]:
        try:
            ws.require_api(name)
        except NotFoundError:
            return []
        return ws.backend.replicas(name)

    return ws.backend.follow_logs(replicas, stop)
