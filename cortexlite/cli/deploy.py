"""`up`, `deploy`, `refresh`, `delete`, `down`: thin commands over `cortexlite.deployment`/`teardown`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cortexlite.cli.common import Output, Progress, echo_json, open_workspace, stdout
from cortexlite.deployment import DeployOptions, DeployResult, deploy, refresh
from cortexlite.teardown import delete, down

__all__ = ["register"]

PathArg = Annotated[Path, typer.Argument(help="The project directory (or its cortexlite.yaml).")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds a new replica may take to become ready (default 600).")
]


def up_command(ctx: typer.Context, path: PathArg = Path("."), timeout: TimeoutOpt = None) -> None:
    """Deploy every API of the project, starting the gateway if needed; wait until live; print the endpoints."""
    progress = Progress()
    try:
        with open_workspace(ctx) as ws:
            results = deploy(ws, path, DeployOptions(ready_timeout=timeout), progress, progress.detail)
            what, started = ws.operator.ensure(progress.detail)
            if started:
                progress(f"operator started ({what})")
    finally:
        progress.close()
    _print_results(results)
    stdout.print()
    for result in results:
        stdout.print(f"{result.name} is live at {result.url}", markup=False)
    sample = (path if path.is_dir() else path.parent) / "sample.json"
    if results and sample.is_file():
        stdout.print(f"try: cortexlite predict {results[0].name} {sample}", style="dim", markup=False)
    elif results:
        curl = f"curl -X POST {results[0].url} -H 'content-type: application/json' -d '{{...}}'"
        stdout.print(f"try: {curl}", style="dim", markup=False)


def deploy_command(
    ctx: typer.Context,
    path: PathArg = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Take over an update in progress.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the update has started.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would run; change nothing.")] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Nomad: show what the scheduler would change and place; change nothing.")
    ] = False,
    timeout: TimeoutOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Create or update the project's APIs; blocks until the new version serves (or has been rolled back)."""
    options = DeployOptions(force=force, wait=not no_wait, dry_run=dry_run, ready_timeout=timeout, plan=plan)
    progress = Progress(output)
    try:
        with open_workspace(ctx) as ws:
            results = deploy(ws, path, options, progress, progress.detail)
    finally:
        progress.close()
    if output is Output.json or dry_run:
        echo_json([result.as_json() for result in results])
    elif plan:
        _print_plans(results)
    else:
        _print_results(results, started_only=no_wait)


def refresh_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The API.")],
    force: Annotated[bool, typer.Option("--force", help="Take over an update in progress.")] = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Replace every replica of an API with a fresh one (same spec), rolling like a deploy."""
    progress = Progress()
    with open_workspace(ctx) as ws:
        refresh(ws, name, DeployOptions(force=force, ready_timeout=timeout), progress)
    stdout.print(f"{name} refreshed", markup=False)


def delete_command(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The API.")]) -> None:
    """Delete an API: out of the gateway first, then its replicas drain and stop."""
    with open_workspace(ctx) as ws:
        delete(ws, name, Progress())
    stdout.print(f"deleted {name}", markup=False)


def down_command(ctx: typer.Context) -> None:
    """Delete every API of the environment and stop its gateway."""
    with open_workspace(ctx) as ws:
        names = down(ws, Progress())
    stdout.print(f"{ws.environment.name} is down ({len(names)} API(s) deleted)", markup=False)


def register(app: typer.Typer) -> None:
    app.command("up")(up_command)
    app.command("deploy")(deploy_command)
    app.command("refresh")(refresh_command)
    app.command("delete")(delete_command)
    app.command("down")(down_command)


def _print_plans(results: list[DeployResult]) -> None:
    from cortexlite.nomad.plan import plan_lines

    for result in results:
        summary = (result.plan or {}).get("plan")
        if summary is not None:
            for line in plan_lines(result.name, summary):
                stdout.print(line, markup=False)


def _print_results(results: list[DeployResult], started_only: bool = False) -> None:
    for result in results:
        if result.action == "up-to-date":
            stdout.print(f"{result.name} is up to date", markup=False)
        elif started_only:
            stdout.print(f"{result.name}: update started (cortexlite get {result.name} follows it)", markup=False)
        else:
            verb = "created" if result.action == "created" else "updated"
            stdout.print(f"{verb} {result.name}: {result.replicas} replica(s) at {result.url}", markup=False)
