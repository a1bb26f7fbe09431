"""Facts about the machine and the code under test, recorded next to the figures."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .load import wrk_version

__all__ = ["load_average", "machine_facts", "runtime_fingerprint"]

_REPO = Path(__file__).resolve().parent.parent
_RUNTIME = _REPO / "runtime" / "cortexlite_runtime"


def machine_facts() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count() or 0),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": _version("uvicorn"),
        "httptools": _version("httptools"),
        "uvloop": _version("uvloop"),
        "cortexlite-runtime": _version("cortexlite-runtime"),
        "wrk": wrk_version(),
        "git": _git_revision(),
        "runtime_sources": runtime_fingerprint(),
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def runtime_fingerprint() -> str:
    """A hash of the runtime's Python sources as they are on disk: what a server started now imports."""
    digest = hashlib.sha256()
    for path in sorted(_RUNTIME.rglob("*.py")):
        digest.update(str(path.relative_to(_RUNTIME)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _git_revision() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "runtime")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (runtime/ modified)" if dirty else head


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=_REPO, capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()
