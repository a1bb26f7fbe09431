"""Load generation with wrk: a POST script, one bounded run, and the parser of wrk's report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BenchError

__all__ = ["PAYLOAD", "LoadResult", "parse_wrk", "run_wrk", "write_script", "wrk_version"]

PAYLOAD = '{"features": [5.1, 3.5, 1.4, 0.2]}'
WRK = "wrk"
# Requests slower than this count as timeouts (errors), not latency: generous for the unbatched fixed-cost case.
_WRK_TIMEOUT = "10s"
_SLACK_SECONDS = 30

_SCRIPT = """wrk.method = "POST"
wrk.body = '{payload}'
wrk.headers["Content-Type"] = "application/json"
"""
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


def write_script(directory: Path, payload: str = PAYLOAD) -> Path:
    path = directory / "post.lua"
    path.write_text(_SCRIPT.format(payload=payload))
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: int, threads: int = 1) -> LoadResult:
    """One wrk run; -t1 by default so that, on two cores, the server under test keeps one for itself."""
    argv = [
        WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={_WRK_TIMEOUT}",
        "--latency", "-s", str(script), url,
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + _SLACK_SECONDS, check=False)
    except FileNotFoundError as exc:
        raise BenchError(f"{WRK} not found: install it with `make system` (Debian package wrk)") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk against {url} ran past {seconds + _SLACK_SECONDS} s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk against {url} exited with code {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> LoadResult:
    """The figures of a `wrk --latency` report; raise if the report lacks them."""
    rate = _RATE.search(text)
    total = _TOTAL.search(text)
    percentiles = {int(m[1]): float(m[2]) * _UNITS_MS[m[3]] for m in _PERCENTILE.finditer(text)}
    if rate is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise BenchError(f"cannot read wrk's report (was --latency given?):\n{text}")
    sockets = _SOCKET_ERRORS.search(text)
    non_2xx = _NON_2XX.search(text)
    return LoadResult(
        requests_per_second=float(rate[1]),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        requests=int(total[1]),
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
    )


def wrk_version() -> str:
    try:
        done = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ").strip() if first else "unknown"
