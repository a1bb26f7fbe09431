"""The Docker experiment: cold start of iris in a Docker environment, against a bare `docker run`.

Through the real CLI on a CORTEXLITE_HOME of the run's own, host networking, the gateway (a Traefik
container) running and every image cached:
- setup: `cortexlite image build` (reused when its content hash exists), `env add --backend docker`,
  and a first deploy, which builds the project's dependency image `cortexlite/deps:<hash>` FROM the
  runtime image when the engine lacks it;
- each round: `cortexlite delete iris`, then `cortexlite deploy` -> first 200 through the gateway,
  against the same dependency image started by hand with `docker run` -> first 200 straight to it.

Everything made here carries `cortexlite.bench=1` and the run's own label (cortexlite adds them through
CORTEXLITE_LABELS); after `cortexlite down` whatever still carries both is removed by id, never by name.
Every docker and cortexlite command is bounded in time.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .control import API, CliEnv, cold_start, first_200, iris_project, timed
from .errors import BenchError
from .servers import free_port

__all__ = [
    "BASE_IMAGE",
    "BENCH_LABEL",
    "Cleanup",
    "DockerResults",
    "add_docker_env",
    "check_engine",
    "labelled_env",
    "run_docker",
    "tear_down",
]

BASE_IMAGE = "cortexlite/base:bookworm"
BENCH_LABEL = "cortexlite.bench=1"
_RUN_LABEL_KEY = "cortexlite.bench.run"
# pip inside the image builds needs the host's CA here; passed only where the host has one.
_CA_CERT = Path("/etc/ssl/certs/ca-certificates.crt")
_DOCKER_TIMEOUT_S = 120.0

Progress = Callable[[str], None]


@dataclass
class DockerResults:
    env: str = ""
    image: str = ""  # the dependency image the replicas (and the baseline) run
    image_cached: bool = False  # on the engine before the first deploy
    image_build_s: float = 0.0
    first_deploy_s: float = 0.0
    cold_start_s: list[float] = field(default_factory=list)
    bare_start_s: list[float] = field(default_factory=list)
    delete_s: list[float] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # containers and networks `down` left, removed by label
    volumes: list[str] = field(default_factory=list)  # `down` keeps the cache volume by design; removed by label
    down_error: str = ""
    wall_s: float = 0.0


@dataclass
class Cleanup:
    """What `tear_down` found after `cortexlite down`, each removed by id."""

    leftovers: list[str] = field(default_factory=list)  # containers and networks
    volumes: list[str] = field(default_factory=list)  # `down` keeps the cache volume by design
    down_error: str = ""


def run_docker(workdir: Path, *, rounds: int, progress: Progress) -> DockerResults:
    started = time.monotonic()
    check_engine()
    env, run_label = labelled_env(workdir, "bench-dk")
    project = iris_project(workdir / "iris")
    results = DockerResults(env=env.name)
    try:
        _set_up(env, project, results, progress)
        for index in range(rounds):
            results.delete_s.append(timed(lambda: env.cli("delete", API, timeout=_DOCKER_TIMEOUT_S)))
            results.cold_start_s.append(cold_start(env, project))
            results.bare_start_s.append(_bare_start(results.image, project, run_label))
            progress(
                f"  round {index + 1}: deploy -> first 200 {results.cold_start_s[-1]:.2f} s, "
                f"bare docker run -> first 200 {results.bare_start_s[-1]:.2f} s "
                f"(delete took {results.delete_s[-1]:.2f} s)"
            )
    finally:
        cleanup = tear_down(env, run_label)
        results.leftovers, results.volumes, results.down_error = cleanup.leftovers, cleanup.volumes, cleanup.down_error
        results.wall_s = time.monotonic() - started
    return results


def labelled_env(workdir: Path, prefix: str, extra: Mapping[str, str] | None = None) -> tuple[CliEnv, str]:
    """The CLI on an environment named `prefix-<token>`; everything it makes carries the bench's and the run's label."""
    token = secrets.token_hex(4)
    run_label = f"{_RUN_LABEL_KEY}={token}"
    labels = {"CORTEXLITE_LABELS": f"{BENCH_LABEL},{run_label}"}
    # A name of the run's own: the engine is shared, and container and volume names derive from it.
    return CliEnv(workdir, name=f"{prefix}-{token}", extra={**(extra or {}), **labels}), run_label


def add_docker_env(env: CliEnv) -> float:
    """`cortexlite image build` (reused when its content hash exists), then `env add --backend docker`.

    Returns the seconds the build took.
    """
    build = ["image", "build", "--base-image", BASE_IMAGE]
    if _CA_CERT.is_file():
        build += ["--ca-cert", str(_CA_CERT)]
    seconds = timed(lambda: env.cli(*build))
    env.cli(
        "env", "add", env.name, "--backend", "docker", "--network", "host",
        "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port),
    )  # fmt: skip
    return seconds


def _set_up(env: CliEnv, project: Path, results: DockerResults, progress: Progress) -> None:
    results.image_build_s = add_docker_env(env)
    results.image = _planned_image(env, project)
    results.image_cached = _docker("image", "inspect", results.image, check=False).returncode == 0
    results.first_deploy_s = timed(lambda: env.cli("deploy", str(project)))
    running = _replica_image(env)
    if running != results.image:
        raise BenchError(f"the replica runs {running}, but `deploy --dry-run` planned {results.image}")
    how = "the dependency image was cached" if results.image_cached else f"built {results.image}"
    progress(
        f"  image build {results.image_build_s:.1f} s; first deploy (starts the gateway; {how}): "
        f"{results.first_deploy_s:.1f} s"
    )


def _planned_image(env: CliEnv, project: Path) -> str:
    out = env.cli("deploy", "--dry-run", "-o", "json", str(project))
    try:
        image = json.loads(out)[0]["plan"]["replica"]["container"]["Image"]
    except (ValueError, LookupError, TypeError) as exc:
        raise BenchError(
            f"`cortexlite deploy --dry-run -o json`: no [0].plan.replica.container.Image in:\n{out}"
        ) from exc
    return str(image)


def _replica_image(env: CliEnv) -> str:
    ids = _docker(
        "ps", "-q", "-f", f"label=cortexlite.env={env.name}", "-f", f"label=cortexlite.api={API}"
    ).stdout.split()
    if len(ids) != 1:
        raise BenchError(f"expected one running replica container of {API} in {env.name}, found {len(ids)}")
    return _docker("inspect", "--format", "{{.Config.Image}}", ids[0]).stdout.strip()


def _bare_start(image: str, project: Path, run_label: str) -> float:
    """The baseline: the same image, started by hand on the host network, asked directly."""
    port = free_port()
    started = time.monotonic()
    container = _docker(
        "run", "-d", "--rm", "--network", "host", "--label", BENCH_LABEL, "--label", run_label,
        "-v", f"{project}:/mnt/project:ro", "-e", "CORTEX_SERVING_HOST=127.0.0.1", "-e", f"CORTEX_SERVING_PORT={port}",
        "-e", "CORTEXLITE_DEPENDENCIES=preinstalled", "-e", "CORTEX_SHUTDOWN_DELAY=0", image,
    ).stdout.strip()  # fmt: skip
    try:
        return first_200(f"http://127.0.0.1:{port}/", started)
    finally:
        _docker("rm", "-f", container, check=False)


def tear_down(env: CliEnv, run_label: str) -> Cleanup:
    """`cortexlite down`, then remove by id whatever still carries this run's labels."""
    cleanup = Cleanup()
    try:
        env.cli("down", timeout=300)
    except BenchError as exc:
        cleanup.down_error = str(exc)
    filters = ["-f", f"label={BENCH_LABEL}", "-f", f"label={run_label}"]
    for line in _docker("ps", "-a", "--format", "{{.ID}} {{.Names}}", *filters, check=False).stdout.splitlines():
        container, _, name = line.partition(" ")
        cleanup.leftovers.append(f"container {name}")
        _docker("rm", "-f", container, check=False)
    for name in _docker("network", "ls", "-q", *filters, check=False).stdout.split():
        cleanup.leftovers.append(f"network {name}")
        _docker("network", "rm", name, check=False)
    for name in _docker("volume", "ls", "-q", *filters, check=False).stdout.split():
        cleanup.volumes.append(name)
        _docker("volume", "rm", name, check=False)
    return cleanup


def check_engine() -> None:
    try:
        _docker("info", "--format", "{{.ServerVersion}}")
    except BenchError as exc:
        raise BenchError(f"no Docker engine (start one with `make dockerd`): {exc}") from None
    if _docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        raise BenchError(f"the base image {BASE_IMAGE} is missing: build it with `make base-image`")


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=_DOCKER_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise BenchError(f"docker {' '.join(args)} was still running after {_DOCKER_TIMEOUT_S:g}s (killed)") from None
    except OSError as exc:
        raise BenchError(f"cannot run docker: {exc}") from exc
    if check and done.returncode != 0:
        raise BenchError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done
