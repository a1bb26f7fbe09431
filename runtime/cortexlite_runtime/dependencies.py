"""The project's own dependencies, applied before the predictor loads.

- `.env`: KEY=VALUE lines added to the environment (existing variables win).
- `dependencies.sh`: run with bash, only as root (it usually calls apt-get).
- `requirements.txt`: installed with pip into a venv cached under
  `CORTEX_CACHE_DIR/.cortexlite-cache/venvs/<hash>`, so a restart with the same file installs
  nothing. An unwritable cache gives a warning and a private, uncached venv.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from loguru import logger

from .errors import DependencyError

__all__ = ["apply_dotenv", "install_requirements", "parse_dotenv", "run_dependencies_sh"]

_OUTPUT_LINES = 25


def parse_dotenv(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise DependencyError(f".env:{number}: expected KEY=VALUE (got {raw.strip()!r})")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def apply_dotenv(project_dir: Path) -> list[str]:
    """Set the variables of `.env` that the environment does not already set; return their names."""
    path = project_dir / ".env"
    if not path.is_file():
        return []
    applied = []
    for key, value in parse_dotenv(path.read_text(encoding="utf-8", errors="replace")).items():
        if key not in os.environ:
            os.environ[key] = value
            applied.append(key)
    return applied


def run_dependencies_sh(project_dir: Path) -> str | None:
    """Run `dependencies.sh`; return a note when it was skipped."""
    script = project_dir / "dependencies.sh"
    if not script.is_file():
        return None
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        note = "dependencies.sh skipped: the runtime is not running as root"
        logger.warning(note)
        return note
    logger.info("running dependencies.sh")
    result = subprocess.run(
        ["bash", str(script)], cwd=project_dir, capture_output=True, text=True, errors="replace", check=False
    )
    _log_output("dependencies.sh", result.stdout + result.stderr)
    if result.returncode != 0:
        raise DependencyError(f"dependencies.sh failed (exit code {result.returncode}):\n{_tail(result)}")
    return None


def install_requirements(project_dir: Path, cache_dir: Path | None) -> Path | None:
    """Install `requirements.txt` (once per content); return the venv's site-packages to add to sys.path."""
    requirements = project_dir / "requirements.txt"
    if not requirements.is_file():
        return None
    content = requirements.read_bytes()
    key = hashlib.sha256(content + _interpreter_tag().encode()).hexdigest()[:24]
    cached = _cache_root(cache_dir)
    if cached is not None:
        venv = cached / "venvs" / key
        if (venv / ".complete").is_file():
            logger.info("requirements.txt already installed (cache {})", venv)
            return _site_packages(venv)
    target_parent = cached / "venvs" if cached is not None else Path(tempfile.mkdtemp(prefix="cortexlite-venv-"))
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target_parent))
    _create_venv(staging, requirements)
    if cached is None:
        return _site_packages(staging)
    final = cached / "venvs" / key
    try:
        staging.rename(final)
    except OSError:  # another replica finished the same install first
        shutil.rmtree(staging, ignore_errors=True)
    (final / ".complete").touch()
    return _site_packages(final)


def _create_venv(venv: Path, requirements: Path) -> None:
    logger.info("installing requirements.txt into {}", venv)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    command = [
        _pip_interpreter(), "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
        "--no-input", "--disable-pip-version-check", "-r", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    _log_output("pip", result.stdout + result.stderr)
    if result.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise DependencyError(
            f"pip install -r requirements.txt failed (exit code {result.returncode}):\n{_tail(result)}"
        )


def _pip_interpreter() -> str:
    """An interpreter that has pip: this one, else the one this venv was made from (venvs without pip)."""
    if importlib.util.find_spec("pip") is not None:
        return sys.executable
    return str(getattr(sys, "_base_executable", sys.executable))


# Replicas run unprivileged: a Docker cache volume an older cortexlite made (as root) is theirs no longer.
UNWRITABLE_HINT = (
    " (a Docker cache volume made by cortexlite before replicas ran as uid 10001 is owned by root: "
    "after `cortexlite down`, remove it once with `docker volume rm cortexlite-<env>-cache`)"
)


def _cache_root(cache_dir: Path | None) -> Path | None:
    base = cache_dir if cache_dir is not None else Path.home() / ".cache" / "cortexlite"
    root = base / ".cortexlite-cache"
    try:
        (root / "venvs").mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkstemp(dir=root / "venvs")[1])
        probe.unlink()
    except OSError as exc:
        logger.warning(
            "cache directory {} is not writable ({}); installing without a cache{}", root, exc, UNWRITABLE_HINT
        )
        return None
    return root


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def _interpreter_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}-{sysconfig.get_platform()}"


def _log_output(source: str, output: str) -> None:
    for line in output.splitlines():
        if line.strip():
            logger.info("{}: {}", source, line)


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).strip().splitlines()
    return "\n".join(lines[-_OUTPUT_LINES:])
