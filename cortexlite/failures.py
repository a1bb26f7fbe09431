"""Why an API, or a deploy of it, fails: pure functions from what the engines and the runtime report.

    predictor init error      the runtime's `/readyz` says the predictor failed to import or `__init__`
                              raised, or the replica exited while starting
    dependency install error  pip (requirements.txt) or dependencies.sh failed: in the replica venv,
                              the dependency image's build, or the runtime's own install
    image build error         an image (or a process replica's venv) could not be built
    out of memory             the kernel killed the replica at its memory limit
    compute unavailable       the GPUs or CPUs asked for are not there, or held by other replicas

A status shows the class as `error (<kind>)` (`compute unavailable` stands alone). What `get`
shows of logs is the replicas' or the build's own output, with the environment's secrets masked.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from cortexlite.errors import ComputeUnavailable, CortexliteError, ImageBuildError, VenvError
from cortexlite.logtail import render

if TYPE_CHECKING:
    from cortexlite.environments import Environment

__all__ = [
    "LOG_LINES",
    "FailureKind",
    "classify_error",
    "classify_readiness",
    "classify_rollout",
    "describe_error",
    "died_starting",
    "kind_of",
    "log_text",
    "one_line",
    "redact",
    "secret_values",
    "status_of",
]

LOG_LINES = 10  # the log lines `get` shows of a failing replica or a failed build


class FailureKind(StrEnum):
    PREDICTOR_INIT = "predictor init error"
    DEPENDENCY_INSTALL = "dependency install error"
    IMAGE_BUILD = "image build error"
    OUT_OF_MEMORY = "out of memory"
    COMPUTE_UNAVAILABLE = "compute unavailable"


_DEPENDENCY_ERRORS = ("dependencies.sh failed", "pip install", ".env:")
# Messages of ours (backends.process, backends.container) for a replica that is not running any more.
_GONE = ("exited with code", "is no longer running", "the container is gone")
# Docker's refusals of compute it does not have (NanoCpus above the host's CPUs; no GPU runtime).
_COMPUTE_REFUSALS = ("CPUs available", "Docker cannot give containers GPUs", "could not select device driver")
_RUN_STEP = re.compile(r"The command '.*' returned a non-zero code: (\d+)", re.DOTALL)
_BUILDING = re.compile(r"building (\S+) failed")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.IGNORECASE)
_DEPENDENCY_STEPS = (("dependencies.sh", "dependencies.sh"), ("requirements.txt", "pip install -r requirements.txt"))


def status_of(kind: FailureKind | None) -> str:
    """The API status that names `kind`: `compute unavailable`, `error (<kind>)`, or `error`."""
    if kind is FailureKind.COMPUTE_UNAVAILABLE:
        return kind.value
    return f"error ({kind.value})" if kind is not None else "error"


def kind_of(condition: str | None) -> FailureKind | None:
    """The class a probe's condition names, if it is one."""
    try:
        return FailureKind(condition) if condition is not None else None
    except ValueError:
        return None


def classify_readiness(reason: str) -> FailureKind:
    """A replica the runtime reports failed (`/readyz`): its dependencies, or its predictor (import, `__init__`)."""
    if reason.lstrip().startswith(_DEPENDENCY_ERRORS):
        return FailureKind.DEPENDENCY_INSTALL
    return FailureKind.PREDICTOR_INIT


def classify_rollout(reason: str) -> FailureKind | None:
    """A new replica that never became ready (`ReplicaFailure.reason`): why, when it is known."""
    if "out of memory" in reason:
        return FailureKind.OUT_OF_MEMORY
    if reason.startswith("not ready after") or reason == "shutting down":
        return None  # too slow, or stopped from outside: no failure of its own
    if any(gone in reason for gone in _GONE):
        return FailureKind.PREDICTOR_INIT  # it exited before it was ever ready: while starting
    return classify_readiness(reason)


def classify_error(exc: BaseException) -> FailureKind | None:
    """A deploy that failed before (or while) starting replicas: building, installing or placing them."""
    text = str(exc)
    if isinstance(exc, ComputeUnavailable) or any(refusal in text for refusal in _COMPUTE_REFUSALS):
        return FailureKind.COMPUTE_UNAVAILABLE
    if isinstance(exc, VenvError):
        # pip (requirements.txt, or what the runtime needs) failed; else the venv itself could not be made.
        return FailureKind.DEPENDENCY_INSTALL if "pip install" in one_line(text) else FailureKind.IMAGE_BUILD
    if isinstance(exc, ImageBuildError):
        building = _BUILDING.search(one_line(text))
        dependencies = building is not None and building.group(1).startswith("cortexlite/deps:")
        return FailureKind.DEPENDENCY_INSTALL if dependencies else FailureKind.IMAGE_BUILD
    return None


def describe_error(exc: BaseException, files: Iterable[str] = ()) -> tuple[str, str | None]:
    """(one line on the failed step, whose output the log lines are); `files`: the project's dependency files.

    A failed RUN step of the dependency image names what ran in it (dependencies.sh, pip, or both).
    """
    first = one_line(str(exc))
    building = _BUILDING.search(first)
    found = _RUN_STEP.search(str(exc))
    if building is None:
        message = first.removesuffix("; last lines:").removesuffix(":")
        return message, (first.split(" failed", 1)[0] if " failed" in first else None)
    tag, source = building.group(1), f"the build of {building.group(1)}"
    if found is None:
        return first, source
    steps = [step for file, step in _DEPENDENCY_STEPS if file in set(files)] or ["a RUN step"]
    what = "the dependency image" if tag.startswith("cortexlite/deps:") else "the image"
    return f"building {what} {tag} failed: {' or '.join(steps)} exited with code {found.group(1)}", source


def died_starting(lines: Sequence[str]) -> bool:
    """Whether a replica's last log lines end inside a start-up: the runtime began serving, never ready after."""
    for line in reversed(lines):
        words = line.split()
        if words and words[-1] == "ready":
            return False
        if "cortexlite-runtime" in line and " serving " in line:
            return True
    return False


def log_text(raw: Iterable[str]) -> list[str]:
    """Raw log lines (the runtime's JSON, or anything else a process printed) as people read them."""
    lines: list[str] = []
    for line in raw:
        lines += render(line)[0].splitlines()
    return [line.rstrip() for line in lines if line.strip()]


def one_line(text: str, limit: int = 400) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def secret_values(environment: Environment) -> list[str]:
    """The environment's secrets (the storage secret key, the Nomad token): masked in what `get` shows."""
    found = [environment.nomad_token]
    with contextlib.suppress(CortexliteError, ValueError):
        found.append(environment.storage_settings().secret_key)
    return [value for value in found if value and len(value) >= 4]


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with each secret, and the password of any URL (`https://user:pass@host`), masked."""
    for secret in secrets:
        text = text.replace(secret, "<secret>")
    return _URL_PASSWORD.sub(r"\1***@", text)
