"""`dev [PATH]`: serve the project with hot reload, its logs in the foreground, until Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.text import Text

from cortexlite.cli.common import Progress, open_local, stdout
from cortexlite.dev import LineKind, classify_line, end_dev, start_dev
from cortexlite.logtail import LogLine

__all__ = ["dev_command"]

_STYLES = {
    LineKind.RELOADED: "bold green",
    LineKind.FAILED: "bold red",
    LineKind.RESTART: "bold yellow",
    LineKind.ERROR: "red",
    LineKind.WARNING: "yellow",
    LineKind.INFO: "",
}


def dev_command(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The project directory (or its cortexlite.yaml).")] = Path("."),
) -> None:
    """Serve the project from its directory with hot reload; print its logs until Ctrl-C.

    Each API gets one replica running the live directory behind the gateway. Saving a file reloads
    the predictor (the model stays loaded when __init__ did not change); a broken edit keeps the
    previous code serving and its error is printed. Ctrl-C removes the dev replicas and puts back
    what served before.
    """
    progress = Progress()
    with open_local(ctx, "cortexlite dev") as ws:
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            session = start_dev(ws, path, progress, progress.detail)
        finally:
            progress.close()
        try:
            for name, url in session.urls().items():
                stdout.print(f"{name} is live at {url} (hot reload on)", markup=False)
            stdout.print("watching for changes; Ctrl-C to stop", style="dim", markup=False)
            try:
                for line in session.follow(stop=lambda: False):
                    _print(line)
            except KeyboardInterrupt:
                stdout.print("stopping the dev replicas", style="dim", markup=False)
        finally:
            end_dev(session, Progress())
            signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _print(line: LogLine) -> None:
    text = Text(f"{line.source} | ", style="dim")
    text.append(line.text, style=_STYLES[classify_line(line.text)])
    stdout.print(text)
