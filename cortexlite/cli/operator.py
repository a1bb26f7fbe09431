"""`operator`: the environment's autoscaler and healer in the foreground (`up` runs one in the background)."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import typer

from cortexlite.cli.common import open_workspace
from cortexlite.operator import Operator, check_engine
from cortexlite.workspace import Workspace

__all__ = ["operator_command"]


def operator_command(ctx: typer.Context) -> None:
    """Scale the environment's APIs on load and replace replicas that die, until SIGTERM or Ctrl-C."""
    stopping = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    with open_workspace(ctx) as ws:
        operator: Operator | NomadOperator
        if isinstance(ws, Workspace):
            check_engine(ws)
            operator = Operator(ws, _log, decision_interval=ws.settings.operator_interval)
        else:
            from cortexlite.nomad.operator import NomadOperator

            operator = NomadOperator(ws, _log, decision_interval=ws.settings.operator_interval)
        try:
            operator.run(stopping.is_set)
        except KeyboardInterrupt:
            pass
        finally:
            operator.close()
            _log("operator stopped")


def _log(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    typer.echo(f"{stamp} {line}")
