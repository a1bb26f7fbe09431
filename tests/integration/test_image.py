"""The runtime image: content-addressed tags, and Cortex 0.15.1's own `docker run` command serving a project."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from cortexlite.image import ImageOptions, ImageRef, build_runtime_image, runtime_image_tag, tag_inputs
from cortexlite.runtime_wheel import dependency_requirements
from tests.integration.conftest import Containers, docker

PREDICTORS = Path(__file__).resolve().parent.parent / "predictors"
CORTEX_015_YAML = """\
- name: iris
  predictor:
    type: python
    path: predictor.py
    config:
      labels: [setosa, versicolor, virginica]
  autoscaling:
    workers_per_replica: 2
    threads_per_worker: 2
"""
# Cortex 0.15.1 waited `terminationGracePeriodSeconds`; ours: delay 2 s + grace 30 s + 5 s.
STOP_TIMEOUT_S = 37


@pytest.mark.timeout(10)
def test_tag_changes_with_every_input_and_not_with_order() -> None:
    inputs = tag_inputs({"a.py": "1", "b.py": "2"}, "dockerfile", "sha256:base", {"BASE_IMAGE": "x"}, {})
    tag = runtime_image_tag(inputs)
    assert tag.startswith("cortexlite/runtime:") and len(tag.partition(":")[2]) == 12
    assert runtime_image_tag(dict(reversed(list(inputs.items())))) == tag
    changed = [
        tag_inputs({"a.py": "1", "b.py": "3"}, "dockerfile", "sha256:base", {"BASE_IMAGE": "x"}, {}),
        tag_inputs({"a.py": "1", "b.py": "2"}, "dockerfile2", "sha256:base", {"BASE_IMAGE": "x"}, {}),
        tag_inputs({"a.py": "1", "b.py": "2"}, "dockerfile", "sha256:other", {"BASE_IMAGE": "x"}, {}),
        tag_inputs({"a.py": "1", "b.py": "2"}, "dockerfile", "sha256:base", {"PIP_INDEX_URL": "u"}, {}),
        tag_inputs({"a.py": "1", "b.py": "2"}, "dockerfile", "sha256:base", {"BASE_IMAGE": "x"}, {"ca.crt": "c"}),
    ]
    assert len({tag, *(runtime_image_tag(other) for other in changed)}) == 1 + len(changed)


@pytest.mark.timeout(10)
def test_dependency_requirements_keep_the_wanted_extras() -> None:
    metadata = (
        "Name: cortexlite-runtime\nRequires-Dist: pydantic<3,>=2.6\n"
        'Requires-Dist: uvloop>=0.19; sys_platform != "win32"\n'
        'Requires-Dist: onnxruntime>=1.17; extra == "onnx"\n'
        'Requires-Dist: torch; (sys_platform == "linux") and extra == "gpu"\n'
        'Requires-Dist: numpy; (python_version >= "3.11") and extra == "onnx"\n'
    )
    assert dependency_requirements(metadata, ["onnx"]) == [
        "pydantic<3,>=2.6",
        'uvloop>=0.19; sys_platform != "win32"',
        "onnxruntime>=1.17",
        'numpy; (python_version >= "3.11")',
    ]


@pytest.mark.docker
@pytest.mark.timeout(900)  # the first test builds the image: base + PyPI on a fresh machine
def test_building_again_reuses_the_content_addressed_tag(runtime_image: ImageRef, image_options: ImageOptions) -> None:
    started = time.monotonic()
    again = build_runtime_image(image_options)
    assert again.built is False
    assert (again.tag, again.image_id) == (runtime_image.tag, runtime_image.image_id)
    assert time.monotonic() - started < 30, "reusing an image must not rebuild it"


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_cortex_015_command_serves_a_cortex_015_project(
    runtime_image: ImageRef, containers: Containers, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PREDICTORS / "cortex015.py", project / "predictor.py")
    (project / "cortex.yaml").write_text(CORTEX_015_YAML)
    port = 5000 if _port_is_free(5000) else _free_port()
    name = containers.name("cortex015")
    docker(
        "run", "-d", "--name", name, *containers.label_args(),
        "-e", f"CORTEX_SERVING_PORT={port}", "-e", "CORTEX_WORKERS_PER_REPLICA=8",
        "-e", "CORTEX_MAX_WORKER_CONCURRENCY=8", "-e", "CORTEX_THREADS_PER_WORKER=2",
        "-e", "CORTEX_SO_MAX_CONN=2048", "-e", "CORTEX_CACHE_DIR=/mnt/spec", "-e", "CORTEX_VERSION=0.15.1",
        "-v", f"{project}:/mnt/project", "-v", f"{project}:/mnt/spec", "-p", f"{port}:{port}",
        runtime_image.tag,
    )  # fmt: skip
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        _wait_ready(client, name, timeout=120)
        as_json = client.post("/predict", json={"index": 1})
        assert (as_json.status_code, as_json.text) == (200, "versicolor"), _logs(name)
        # Cortex 0.15 clients send no Content-Type: a body that parses as JSON is JSON.
        bare = client.build_request("POST", "/", content=b'{"index": 2}')
        assert "content-type" not in bare.headers
        answer = client.send(bare)
        assert (answer.status_code, answer.text) == (200, "virginica"), _logs(name)
        assert "cortexlite_in_flight_requests" in client.get("/metrics").text
    docker("stop", "--time", str(STOP_TIMEOUT_S), name, timeout=STOP_TIMEOUT_S + 30)
    state = docker("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", name).stdout.split()
    assert state == ["0", "false"], f"SIGTERM should end the runtime with 0:\n{_logs(name)}"
    assert not (project / "__pycache__").exists(), "root-owned bytecode must not land in the user's directory"


def _wait_ready(client: httpx.Client, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            raise AssertionError(f"the container exited before it was ready:\n{_logs(name)}")
        time.sleep(0.2)
    raise AssertionError(f"/readyz not 200 after {timeout} s:\n{_logs(name)}")


def _logs(name: str) -> str:
    result = docker("logs", "--tail", "60", name, check=False)
    return result.stdout + result.stderr


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
