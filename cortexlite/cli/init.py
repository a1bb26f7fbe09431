"""`init [DIR]`: scaffold a project (predictor, cortexlite.yaml, requirements.txt, sample payload)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cortexlite.cli.common import stdout
from cortexlite.errors import SpecError
from cortexlite.scaffold import scaffold
from cortexlite_runtime.spec import ApiSpec

__all__ = ["init_command"]


def init_command(
    directory: Annotated[Path, typer.Argument(help="Where to create the project (made if missing).")] = Path("."),
    name: Annotated[str | None, typer.Option("--name", help="The API's name (default: from the directory).")] = None,
) -> None:
    """Create a project that serves as it is: predictor.py, cortexlite.yaml, requirements.txt, sample.json."""
    if name is not None and not _valid_name(name):
        raise SpecError(
            f"--name {name!r}: an API name is lower-case letters, digits and '-', starts with a letter "
            "and is at most 42 characters"
        )
    api, files = scaffold(directory, name)
    for path in files:
        stdout.print(f"created {path}", markup=False)
    shown = str(directory)
    stdout.print()
    stdout.print("next:", markup=False)
    stdout.print(f"  cortexlite dev {shown}                 # serve it; saving a file reloads it", markup=False)
    stdout.print(f"  cortexlite predict {api} {Path(shown) / 'sample.json'}", markup=False)


def _valid_name(name: str) -> bool:
    try:
        ApiSpec(name=name)
    except ValueError:
        return False
    return True
