"""The hot-reload experiment: a file write -> the first answer from the new code, against a redeploy.

Through the real CLI on a CORTEXLITE_HOME of the run's own and a real gateway, on each backend
(processes; Docker with host networking, skipped with its reason when no engine or base image is there):
- reload: `cortexlite dev` of a one-file project whose `predict` returns a marker (`__init__` never
  changes); once it answers, `EDITS` times: a new marker written into predictor.py, then a POST
  through the gateway every 10 ms until the answer carries it;
- the same-run baseline, the way without hot reload: when dev has ended, a first `cortexlite deploy`,
  then `REDEPLOYS` times: a new marker written, `cortexlite deploy` started, polled the same way.
Each time runs from just before the write. A marker not seen within `GIVE_UP_S` is a failure.

Everything stays on 127.0.0.1 and is bounded: the count of edits, each wait, each command. `cortexlite
dev` ends with SIGINT, as Ctrl-C ends it; then `cortexlite down`; then the processes the home
recorded are stopped by pid, the Docker leftovers removed by the run's label (`docker_suite.tear_down`).
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cortexlite.processes import ProcessRef, terminate

from .control import CLI, CliEnv, timed
from .control_report import cell_n, cell_s, median_of, ratio_of, verdict
from .docker_suite import add_docker_env, check_engine, labelled_env, tear_down
from .errors import BenchError

__all__ = ["EDITS", "TARGETS_S", "ReloadResults", "reload_markdown", "reload_summary", "run_reload"]

EDITS = 10
REDEPLOYS = 3
POLL_S = 0.01
GIVE_UP_S = 15.0
PROCESSES, DOCKER = "processes", "docker"
TARGETS_S = {PROCESSES: 1.0, DOCKER: 1.5}  # median write -> first new answer
_API = "hotreload"
_SETTLE_S = 0.3  # between an answer and the next write: a user does not save twice in a burst
_START_BOUND_S = 600.0  # dev's first answer, a deploy: a first one may build a venv or an image
_STOP_BOUND_S = 180.0
_MOST_FAILURES = 3  # in a row: the session is broken, the remaining edits would only wait
_NO_DOCKER = "unix:///nonexistent/cortexlite-bench-no-docker.sock"
_RELOADED = re.compile(r"reloaded in (\d+(?:\.\d+)?)s")
_PREDICTOR = """\
MARKER = "{marker}"


class PythonPredictor:
    def __init__(self, config):
        self.config = config

    def predict(self, payload):
        return {{"marker": MARKER}}
"""

Progress = Callable[[str], None]


@dataclass
class BackendReload:
    backend: str
    skipped: str = ""  # why this backend did not run
    dev_start_s: float = 0.0  # `cortexlite dev` started -> its first answer (the gateway, a venv or image)
    reload_s: list[float] = field(default_factory=list)  # one per edit seen
    failures: int = 0  # edits whose marker was not seen within GIVE_UP_S
    stopped: str = ""  # why fewer edits ran than EDITS
    runtime_s: list[float] = field(default_factory=list)  # the runtime's own `reloaded in` figures
    first_deploy_s: float = 0.0
    deploy_s: list[float] = field(default_factory=list)  # write -> first new answer with `cortexlite deploy`
    leftovers: list[str] = field(default_factory=list)  # what `down` left, stopped or removed here
    volumes: list[str] = field(default_factory=list)  # `down` keeps the cache volume by design; removed by label
    wall_s: float = 0.0


@dataclass
class ReloadResults:
    backends: list[BackendReload] = field(default_factory=list)


def run_reload(workdir: Path, *, progress: Progress) -> ReloadResults:
    results = ReloadResults()
    for backend, run in ((PROCESSES, _on_processes), (DOCKER, _on_docker)):
        result = BackendReload(backend)
        results.backends.append(result)
        started = time.monotonic()
        try:
            run(workdir / backend, result, progress)
        finally:
            result.wall_s = time.monotonic() - started
    return results


def _on_processes(workdir: Path, result: BackendReload, progress: Progress) -> None:
    """A process environment; after `down`, whatever the home recorded that still runs is stopped by pid."""
    env = CliEnv(workdir, extra={"DOCKER_HOST": _NO_DOCKER, "COLUMNS": "200"})
    recorded: set[ProcessRef] = set()
    try:
        env.cli("env", "add", "local", "--gateway-port", str(env.port), "--gateway-admin-port", str(env.admin_port))
        _measure(env, workdir, result, progress, recorded)
    finally:
        recorded |= _recorded(env)
        env.cli("down", check=False, timeout=300)
        left = [ref for ref in recorded if ref.alive()]
        terminate(left, timeout=10)
        result.leftovers += [f"process {ref.pid}" for ref in left]


def _on_docker(workdir: Path, result: BackendReload, progress: Progress) -> None:
    """A Docker environment (host networking); after `down`, whatever carries the run's label is removed."""
    try:
        check_engine()
    except BenchError as exc:
        result.skipped = str(exc)
        progress(f"  {DOCKER}: skipped: {exc}")
        return
    env, run_label = labelled_env(workdir, "bench-rl", extra={"COLUMNS": "200"})
    try:
        add_docker_env(env)
        _measure(env, workdir, result, progress, set())
    finally:
        cleanup = tear_down(env, run_label)
        result.leftovers += cleanup.leftovers
        result.volumes += cleanup.volumes
        if cleanup.down_error:
            result.leftovers.append(f"`cortexlite down` failed: {' '.join(cleanup.down_error.split())[:400]}")


def _measure(env: CliEnv, workdir: Path, result: BackendReload, progress: Progress, recorded: set[ProcessRef]) -> None:
    """Dev and its edits, then the deploy baseline; `recorded` gathers the processes the home records meanwhile."""
    project = workdir / "project"
    project.mkdir(parents=True)
    (project / "cortexlite.yaml").write_text(f"- name: {_API}\n")
    edits = _Edits(project, f"http://127.0.0.1:{env.port}/{_API}")
    _dev_phase(env, workdir, edits, result, recorded)
    progress(
        f"  {result.backend}: dev live after {result.dev_start_s:.1f} s; write -> new answer "
        + ", ".join(f"{s:.3f}" for s in result.reload_s)
        + f" s; {result.failures} failure(s)"
    )
    _deploy_phase(env, workdir, edits, result, recorded)
    progress(
        f"  {result.backend}: first deploy {result.first_deploy_s:.1f} s; write -> `cortexlite deploy` -> "
        "new answer " + ", ".join(f"{s:.2f}" for s in result.deploy_s) + " s"
    )


def _dev_phase(env: CliEnv, workdir: Path, edits: _Edits, result: BackendReload, recorded: set[ProcessRef]) -> None:
    edits.write()
    log = workdir / "dev.log"
    with log.open("w") as out:
        dev = _spawn(env, out, "dev", str(edits.project))
        try:
            result.dev_start_s = edits.until_seen(_START_BOUND_S, dev)
            recorded |= _recorded(env)
            in_a_row = 0
            for index in range(EDITS):
                time.sleep(_SETTLE_S)
                seconds = edits.seen_after(edits.write(), dev)
                if seconds is not None:
                    result.reload_s.append(seconds)
                    in_a_row = 0
                    continue
                result.failures += 1
                in_a_row += 1
                if in_a_row == _MOST_FAILURES:
                    result.stopped = f"stopped after {index + 1}: {_MOST_FAILURES} failures in a row"
                    break
        except (TimeoutError, BenchError) as exc:
            what = f"no answer within {_START_BOUND_S:g}s" if isinstance(exc, TimeoutError) else str(exc)
            raise BenchError(f"reload ({result.backend}): {what}; cortexlite dev printed:\n{_tail(log)}") from None
        finally:
            _stop_dev(dev, log)
    result.runtime_s = [float(m.group(1)) for m in _RELOADED.finditer(log.read_text(errors="replace"))]


def _deploy_phase(env: CliEnv, workdir: Path, edits: _Edits, result: BackendReload, recorded: set[ProcessRef]) -> None:
    """The way without hot reload: `cortexlite deploy` of the edited project (a rolling update)."""
    edits.write()
    result.first_deploy_s = timed(lambda: env.cli("deploy", str(edits.project), timeout=_START_BOUND_S))
    recorded |= _recorded(env)
    log = workdir / "deploy.log"
    for _ in range(REDEPLOYS):
        time.sleep(_SETTLE_S)
        with log.open("w") as out:
            started = edits.write()
            deploying = _spawn(env, out, "deploy", str(edits.project))
            seconds = edits.seen_after(started, None)
            code = _wait(deploying, _START_BOUND_S, "cortexlite deploy")
        if code != 0:
            raise BenchError(f"reload ({result.backend}): `cortexlite deploy` exited {code}:\n{_tail(log)}")
        if seconds is None:
            raise BenchError(f"reload ({result.backend}): the deployed code did not answer within {GIVE_UP_S:g}s")
        result.deploy_s.append(seconds)
        recorded |= _recorded(env)


class _Edits:
    """The project's predictor.py, rewritten with a new marker per edit; the gateway polled for it."""

    def __init__(self, project: Path, url: str) -> None:
        self.project = project
        self.url = url
        self._token = secrets.token_hex(3)
        self._count = 0
        self.marker = ""

    def write(self) -> float:
        """A new marker into predictor.py; the monotonic time just before the write."""
        self._count += 1
        self.marker = f"m-{self._token}-{self._count}"
        started = time.monotonic()
        (self.project / "predictor.py").write_text(_PREDICTOR.format(marker=self.marker))
        return started

    def seen_after(self, started: float, dev: subprocess.Popen[bytes] | None) -> float | None:
        """Seconds from `started` to the first answer carrying the marker; None: not within GIVE_UP_S."""
        try:
            return self.until_seen(GIVE_UP_S, dev, started)
        except TimeoutError:
            return None

    def until_seen(self, bound: float, dev: subprocess.Popen[bytes] | None, started: float | None = None) -> float:
        """POST every POLL_S until an answer carries the marker; seconds since `started` (default: now)."""
        started = time.monotonic() if started is None else started
        body, due = b"{}", started
        while time.monotonic() - started < bound:
            if self.marker in _post(self.url, body):
                return time.monotonic() - started
            if dev is not None and dev.poll() is not None:
                raise BenchError(f"cortexlite dev exited {dev.returncode} while waiting for {self.marker}")
            due += POLL_S
            time.sleep(max(0.0, due - time.monotonic()))
        raise TimeoutError(self.marker)


def _post(url: str, body: bytes) -> str:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            text: bytes = answer.read()
    except (urllib.error.URLError, OSError):  # not routed yet, a 502 while replicas switch
        return ""
    return text.decode(errors="replace")


def _spawn(env: CliEnv, out: IO[str], *args: str) -> subprocess.Popen[bytes]:
    # A session of its own: the SIGINT that ends dev is ours alone, never a second one from the terminal.
    return subprocess.Popen(
        [str(CLI), *args], env=env.environ, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def _stop_dev(dev: subprocess.Popen[bytes], log: Path) -> None:
    """Ctrl-C, as a user ends it: the dev replicas are removed. A dev that does not end is killed, and it fails."""
    if dev.poll() is None:
        dev.send_signal(signal.SIGINT)
    code = _wait(dev, _STOP_BOUND_S, "cortexlite dev, after SIGINT,")
    if code != 0:
        raise BenchError(f"cortexlite dev ended with {code} after SIGINT (expected 0):\n{_tail(log)}")


def _wait(process: subprocess.Popen[bytes], bound: float, what: str) -> int:
    try:
        return process.wait(bound)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise BenchError(f"{what} still ran after {bound:g}s (killed)") from None


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _recorded(env: CliEnv) -> set[ProcessRef]:
    """The processes the home records (replicas, the gateway); none in a Docker environment."""
    refs = set()
    paths = [*env.home.glob("envs/*/apis/*/replicas/*.json"), *env.home.glob("envs/*/gateway/state.json")]
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed or being rewritten right now
        if isinstance(record, dict) and record.get("pid") and record.get("started"):
            refs.add(ProcessRef(int(record["pid"]), float(record["started"])))
    return refs


# --- figures -------------------------------------------------------------------------------------


def reload_summary(reload: ReloadResults) -> dict[str, Any]:
    return {
        "edits": EDITS,
        "redeploys": REDEPLOYS,
        "poll_s": POLL_S,
        "give_up_s": GIVE_UP_S,
        "backends": {b.backend: _backend_summary(b) for b in reload.backends},
    }


def _backend_summary(b: BackendReload) -> dict[str, Any]:
    reload, deploy = median_of(b.reload_s), median_of(b.deploy_s)
    return {
        "skipped": b.skipped or None,
        "reload_median_s": reload,
        "reload_min_s": min(b.reload_s, default=None),
        "reload_max_s": max(b.reload_s, default=None),
        "failures": b.failures,
        "stopped": b.stopped or None,
        "target_s": TARGETS_S[b.backend],
        "met": reload <= TARGETS_S[b.backend] if reload is not None else None,
        "deploy_median_s": deploy,
        "reload_to_deploy_ratio": ratio_of(reload, deploy),
        "runtime_reported_median_s": median_of(b.runtime_s),
        "dev_start_s": b.dev_start_s,
        "first_deploy_s": b.first_deploy_s,
        "leftovers": b.leftovers,
        "volumes_removed": b.volumes,
        "wall_s": b.wall_s,
        "samples": {"reload_s": b.reload_s, "deploy_s": b.deploy_s, "runtime_reported_s": b.runtime_s},
    }


def reload_markdown(summary: dict[str, Any]) -> list[str]:
    s = summary
    lines = [
        "## Hot reload: a write of predictor.py -> the first answer from the new code, via the gateway",
        "",
        f"| backend | median of {s['edits']} edits | min | max | failed | same-run baseline: write -> `deploy` "
        "-> first new answer | ratio | target |",
        "|:--|---:|---:|---:|---:|---:|---:|:--|",
    ]
    for name, b in s["backends"].items():
        if b["skipped"]:
            lines.append(f"| {name} | skipped: {b['skipped']} | | | | | | |")
            continue
        cells = [
            name, _cell_ms(b["reload_median_s"]), _cell_ms(b["reload_min_s"]), _cell_ms(b["reload_max_s"]),
            str(b["failures"]), f"{cell_s(b['deploy_median_s'])} (median of {len(b['samples']['deploy_s'])})",
            cell_n(b["reload_to_deploy_ratio"], 3), verdict(b["reload_median_s"], b["target_s"], " s", at_least=False),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "`cortexlite dev` of a project whose `predict` returns a marker; each edit rewrites predictor.py with a new "
        f"marker (`__init__` unchanged), then POSTs through the gateway every {s['poll_s'] * 1000:g} ms until the "
        f"answer carries it (given up after {s['give_up_s']:g} s: a failure). The baseline, the way without hot "
        "reload: `cortexlite deploy` of the edited project (a rolling update), timed the same way.",
        "",
    ]
    lines += [_detail(name, b) for name, b in s["backends"].items() if not b["skipped"]]
    return lines


def _detail(name: str, b: dict[str, Any]) -> str:
    samples = b["samples"]
    parts = [
        f"- {name}: every edit {_seconds(samples['reload_s'], 3)}; the runtime's own `reloaded in` (first file "
        f"event -> swapped in) median {cell_s(b['runtime_reported_median_s'])}; every `deploy` "
        f"{_seconds(samples['deploy_s'], 2)}.",
        f"Dev answered {cell_s(b['dev_start_s'])} after it started; the first deploy took "
        f"{cell_s(b['first_deploy_s'])}; the backend's part {cell_s(b['wall_s'])} in all.",
    ]
    if b["stopped"]:
        parts.append(f"Edits {b['stopped']}.")
    if b["volumes_removed"]:
        parts.append(
            f"Removed by label: the cache volume(s) `down` keeps by design ({', '.join(b['volumes_removed'])})."
        )
    if b["leftovers"]:
        parts.append(f"**Left after `cortexlite down`** (stopped or removed here): {', '.join(b['leftovers'])}.")
    return " ".join(parts)


def _seconds(values: list[float], digits: int) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values) + " s" if values else "none"


def _cell_ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:,.0f} ms"
