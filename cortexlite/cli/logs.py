"""`logs API [-f] [--tail N]`: every replica, interleaved, prefixed by replica."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from cortexlite.cli.common import open_workspace, stdout
from cortexlite.logs import follow_logs, recent_logs
from cortexlite.logtail import LogLine

__all__ = ["logs_command"]

_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")


def logs_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The API.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", min=0, help="Lines per replica to start with.")] = 100,
) -> None:
    """Print the logs of an API's replicas."""
    colours: dict[str, str] = {}
    with open_workspace(ctx) as ws:
        for line in recent_logs(ws, name, tail):
            _print(line, colours)
        if not follow:
            return
        try:
            for line in follow_logs(ws, name, stop=lambda: False):
                _print(line, colours)
        except KeyboardInterrupt:
            pass


def _print(line: LogLine, colours: dict[str, str]) -> None:
    colour = colours.setdefault(line.source, _COLOURS[len(colours) % len(_COLOURS)])
    text = Text(f"{line.source} | ", style=colour)
    text.append(line.text)
    stdout.print(text)
