"""`delete` and `down`: routing first, then replicas drained and stopped, then the records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cortexlite.recovery import acquire, updater_for
from cortexlite.updater import Report
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["delete", "down"]


def delete(ws: Workspace | Cluster, name: str, report: Report, *, force: bool = False) -> None:
    """Remove API `name`: out of the gateway (confirmed), replicas drained and stopped, state forgotten."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad import rollout

        rollout.delete(ws, name, report)
        return
    ws.require_api(name)
    if not ws.gateway.running():
        # Routing can only be confirmed by a running gateway; replicas are stopped either way.
        ws.membership.client = None
    lock = acquire(ws, name, report, force=force)
    try:
        report(f"deleting {name}")
        updater_for(ws, report).retire_all(name)
        ws.state.forget_api(name)
    finally:
        lock.release()


def down(ws: Workspace | Cluster, report: Report, *, force: bool = False) -> list[str]:
    """Delete every API of the environment and stop its gateway; return the deleted APIs."""
    if not isinstance(ws, Workspace):
        from cortexlite.nomad import rollout

        return rollout.down(ws, report)
    if ws.operator.stop():
        report("operator stopped")
    names = ws.state.names()
    for name in names:
        delete(ws, name, report, force=force)
    ws.membership.clear()
    if ws.gateway.stop():
        report(f"gateway stopped ({ws.gateway_url})")
    ws.state.discard()
    return names
