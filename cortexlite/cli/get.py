"""`get [API] [--watch] [-o json]`: Cortex's columns; one API adds its replicas, why it fails, its last failed
deploy and the failing replica's (or the failed build's) last log lines."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cortexlite.cli.common import Output, Progress, ago, echo_json, open_workspace, stdout
from cortexlite.status import ApiView, get
from cortexlite.workspace import Workspace

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["get_command"]

_STATUS_STYLE = {"live": "green", "updating": "yellow"}


def get_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One API (adds its replicas).")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every 2 s until Ctrl-C.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.text,
) -> None:
    """Show the environment's APIs: status, replicas, and the gateway's request counts and latency."""
    with open_workspace(ctx) as ws:
        progress = Progress(output)
        if output is Output.json:
            echo_json([view.as_json() for view in get(ws, name, progress)])
            return
        if not watch:
            stdout.print(_render(ws, get(ws, name, progress), name))
            return
        with Live(_render(ws, get(ws, name, progress), name), console=stdout, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(2)
                    live.update(_render(ws, get(ws, name, progress), name), refresh=True)
            except KeyboardInterrupt:
                pass


def _render(ws: Workspace | Cluster, views: list[ApiView], name: str | None) -> RenderableType:
    if not views:
        return Text(f"no APIs in environment {ws.environment.name} (deploy one with `cortexlite up`)")
    table = Table(box=None, pad_edge=False)
    for column in ("api", "status", "up-to-date", "requested", "last update", "avg latency", "2XX", "4XX", "5XX"):
        table.add_column(
            column, justify="right" if column in ("up-to-date", "requested", "2XX", "4XX", "5XX") else "left"
        )
    for view in views:
        latency = f"{view.avg_latency_s * 1000:.3g} ms" if view.avg_latency_s is not None else "-"
        table.add_row(
            view.name, Text(view.status, style=_STATUS_STYLE.get(view.status, "red")), str(view.up_to_date),
            str(view.requested), ago(view.last_update), latency,
            *(str(view.requests.get(key, 0)) for key in ("2XX", "4XX", "5XX")),
        )  # fmt: skip
    parts: list[RenderableType] = [table]
    if name is not None:
        parts.extend(_details(views[0]))
    else:
        parts.append(Text(f"\nendpoints on {ws.gateway_url}", style="dim"))
    return Group(*parts)


def _details(view: ApiView) -> list[RenderableType]:
    parts: list[RenderableType] = [Text(f"\nendpoint: {view.url}")]
    if view.reason:
        parts.append(Text(f"reason: {view.reason}", style="red"))
    failure = view.last_deploy_failure
    if failure is not None:
        parts.append(Text(_failed_deploy(failure, view), style="red" if view.status != "live" else "yellow"))
    if view.last_scaling is not None:
        event, inputs = view.last_scaling, view.last_scaling.get("inputs", {})
        load = (
            f"avg in-flight {inputs.get('avg_in_flight', 0):g} / target {inputs.get('target_replica_concurrency', 0):g}"
        )
        parts.append(Text(f"last scaling: {event['before']} -> {event['after']}, {ago(event['at'])} ago ({load})"))
    lines, source = view.log_tail, view.log_source
    if not lines and failure is not None:
        lines, source = failure.get("log_tail") or [], failure.get("log_source")
    if lines:
        parts.append(Text(f"last {len(lines)} log lines of {source or 'the failing replica'}:"))
        parts.append(Text("\n".join(f"  {line}" for line in lines)))
    if view.replicas:
        parts += [Text(""), _replicas(view)]
    return parts


def _failed_deploy(failure: dict[str, Any], view: ApiView) -> str:
    """`last deploy failed 2m ago (dependency install error): ...; the previous version keeps serving`."""
    line = f"last deploy failed {ago(failure.get('at'))} ago ({failure.get('kind') or 'error'})"
    if failure.get("message") != view.reason:
        line += f": {failure.get('message')}"
    if failure.get("kept"):
        return line + "; the previous version keeps serving"
    return line + ("; nothing was created" if failure.get("action") == "create" and not view.replicas else "")


def _replicas(view: ApiView) -> Table:
    replicas = Table(box=None, pad_edge=False, title=None)
    for column in ("replica", "status", "serving", "up-to-date", "address", "pid / container", "age"):
        replicas.add_column(column)
    for replica in view.replicas:
        status = (
            replica.status if not replica.reason or replica.status == "ready" else f"{replica.status}: {replica.reason}"
        )
        replicas.add_row(
            replica.id, status, "yes" if replica.serving else "no", "yes" if replica.up_to_date else "no",
            replica.address, str(replica.pid or replica.container or "-"), ago(replica.created_at),
        )  # fmt: skip
    return replicas
