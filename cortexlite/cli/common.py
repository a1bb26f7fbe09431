"""What every command shares: the workspace from the global options, output formats, progress."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.status import Status

from cortexlite.errors import EnvConfigError
from cortexlite.settings import Settings
from cortexlite.workspace import Workspace, open_target

if TYPE_CHECKING:
    from cortexlite.nomad.cluster import Cluster

__all__ = ["Output", "Progress", "ago", "echo_json", "open_local", "open_workspace", "stderr", "stdout"]

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    text = "text"
    json = "json"


@contextmanager
def open_workspace(ctx: typer.Context) -> Iterator[Workspace | Cluster]:
    """The targeted environment: a `Workspace` (processes, Docker) or a `Cluster` (Nomad)."""
    env = (ctx.find_root().obj or {}).get("env")
    with open_target(Settings.from_env(), env) as ws:
        for notice in ws.notices:
            stderr.print(f"[dim]{notice}[/dim]")
        yield ws


@contextmanager
def open_local(ctx: typer.Context, what: str) -> Iterator[Workspace]:
    """A process or Docker environment; a Nomad one is a clear error naming `what` the command does."""
    with open_workspace(ctx) as ws:
        if not isinstance(ws, Workspace):
            raise EnvConfigError(
                f"environment {ws.environment.name} is a Nomad environment: {what} works on process and docker "
                "environments"
            )
        yield ws


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


class Progress:
    """Events as lines (stdout for text output, stderr for JSON); details on a transient spinner."""

    def __init__(self, output: Output = Output.text) -> None:
        self.console = stdout if output is Output.text else stderr
        self._status: Status | None = None

    def __call__(self, message: str) -> None:
        style = "yellow" if message.startswith(("notice:", "warning:")) else None
        self.console.print(message, style=style, markup=False)

    def detail(self, message: str) -> None:
        if not stderr.is_terminal:
            return
        text = message if len(message) < 100 else message[:97] + "..."
        if self._status is None:
            self._status = stderr.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def ago(moment: float | None, now: float | None = None) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((now or time.time()) - moment))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
