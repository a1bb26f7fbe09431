"""`prune`: remove snapshots, venvs, specs and logs that nothing uses."""

from __future__ import annotations

from typing import Annotated

import typer

from cortexlite.cli.common import stdout
from cortexlite.prune import prune
from cortexlite.settings import Settings

__all__ = ["prune_command"]


def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed.")] = False,
    min_age: Annotated[float, typer.Option("--min-age", help="Keep anything younger than this (seconds).")] = 600,
) -> None:
    """Remove old snapshots, replica venvs, runtime wheels, resolved specs and logs of gone replicas."""
    found = prune(Settings.from_env(), min_age=min_age, dry_run=dry_run)
    for item in found:
        stdout.print(f"{'would remove' if dry_run else 'removed'} {item.what} {item.path}", markup=False)
    total = sum(item.bytes for item in found) / 2**20
    stdout.print(f"{len(found)} item(s), {total:.1f} MiB{' (dry run)' if dry_run else ''}", markup=False)
