"""Docker fixtures: a running engine and the runtime image once per session; containers removed by label."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cortexlite.image import LOCAL_BASE_IMAGE, ImageOptions, ImageRef, build_runtime_image

REPO = Path(__file__).resolve().parents[2]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TEST_LABEL = "cortexlite.test=1"
# Narrows cleanup to this test's containers: another session may share the engine and the label.
RUN_LABEL_KEY = "cortexlite.test.run"


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI, output captured; a failure shows the command and its stderr."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Containers:
    """Names and labels for the containers one test starts; all of them are removed at teardown."""

    run_id: str

    def name(self, prefix: str) -> str:
        return f"cortexlite-test-{prefix}-{uuid.uuid4().hex[:8]}"

    def label_args(self) -> list[str]:
        return ["--label", TEST_LABEL, "--label", f"{RUN_LABEL_KEY}={self.run_id}"]

    def remove_all(self) -> None:
        filters = ["--filter", f"label={TEST_LABEL}", "--filter", f"label={RUN_LABEL_KEY}={self.run_id}"]
        ids = docker("ps", "-aq", *filters).stdout.split()
        if ids:
            docker("rm", "-f", *ids)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine answers: started by scripts/dockerd-start.sh (a no-op when one runs)."""
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "dockerd-start.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if started.returncode != 0:
        pytest.fail(f"could not start a Docker engine:\n{started.stderr}")


@pytest.fixture(scope="session")
def image_options() -> ImageOptions:
    """The registry-less base (made by make-base-image.sh when missing); the host CA lets pip reach PyPI."""
    ca_cert = HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None
    return ImageOptions(base_image=LOCAL_BASE_IMAGE, ca_cert=ca_cert)


@pytest.fixture(scope="session")
def runtime_image(docker_engine: None, image_options: ImageOptions) -> ImageRef:
    return build_runtime_image(image_options)


@pytest.fixture
def containers(docker_engine: None) -> Iterator[Containers]:
    tracked = Containers(uuid.uuid4().hex[:12])
    try:
        yield tracked
    finally:
        tracked.remove_all()
