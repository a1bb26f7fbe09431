"""`predict API [FILE|-]`: one request through the gateway, the answer on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cortexlite.cli.common import open_workspace
from cortexlite.errors import CortexliteError
from cortexlite.prediction import predict

__all__ = ["predict_command"]


def predict_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The API.")],
    payload: Annotated[str, typer.Argument(help="A file with the request body, or - for standard input.")] = "-",
    content_type: Annotated[
        str | None,
        typer.Option("--content-type", "-t", help="The request's content type (default: from the payload)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="CORTEXLITE_API_KEY",
            show_envvar=True,
            help="The key to send (default: one saved with `keys create --save`).",
        ),
    ] = None,
) -> None:
    """Send a request to an API and print the answer.

    The body is sent as application/json when it parses as JSON, as text/plain when it is UTF-8
    text, and as application/octet-stream otherwise (--content-type overrides).
    """
    if payload == "-":
        if sys.stdin.isatty():
            raise CortexliteError("give the request body as a file, or pipe it in and pass -")
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(payload).read_bytes()
        except OSError as exc:
            raise CortexliteError(f"cannot read {payload}: {exc.strerror or exc}") from exc
    with open_workspace(ctx) as ws:
        answer = predict(ws, name, body, content_type=content_type, api_key=api_key)
    text = answer.body.decode("utf-8", "replace")
    if not answer.ok:
        raise CortexliteError(f"{name} answered {answer.status}: {text.strip()}")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
