"""`cortexlite init` and `cortexlite dev` through the real CLI: processes and Docker, behind the real gateway."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import DockerEnv, LocalEnv, make_api_project

pytestmark = pytest.mark.slow


class DevCommand:
    """A running `cortexlite dev`, its output read on a thread (bounded waits on it)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed by cortexlite dev:\n" + "\n".join(self.lines))

    def stop(self, timeout: float = 120) -> int:
        """Ctrl-C, as a user ends it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        while True:  # what it printed while stopping, up to the end of its output
            try:
                line = self._queue.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


def _until(url: str, check: Callable[[httpx.Response], bool], what: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(url, json={"x": 1.5, "y": 0.4}, timeout=5)
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            if check(answer):
                return answer
            last = f"{answer.status_code} {answer.text}"
        time.sleep(0.05)
    raise AssertionError(f"{what}: not seen in {timeout}s; last: {last}")


def test_init_then_dev_reloads_through_the_gateway_and_ctrl_c_removes_it(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    project = tmp_path / "my-model"
    created = env.cli("init", str(project)).stdout
    assert "cortexlite dev" in created and "cortexlite predict my-model" in created
    assert sorted(p.name for p in project.iterdir()) == [
        "cortexlite.yaml", "predictor.py", "requirements.txt", "sample.json",
    ]  # fmt: skip
    refused = env.cli("init", str(project), check=False)
    assert refused.returncode == 1 and "already has cortexlite.yaml" in refused.stderr

    dev = DevCommand(env.popen("dev", str(project)))
    try:
        dev.wait_for("my-model is live at")
        url = env.url("/my-model")
        first = _until(url, lambda r: r.status_code == 200, "the scaffolded predictor")
        assert first.json() == {"score": 1.1, "label": "positive"}
        predicted = env.cli("predict", "my-model", str(project / "sample.json")).stdout
        assert json.loads(predicted) == {"score": 1.1, "label": "positive"}

        predictor = project / "predictor.py"
        predictor.write_text(predictor.read_text().replace('"positive" if', '"good" if'))
        _until(url, lambda r: r.status_code == 200 and r.json()["label"] == "good", "the edited predictor")
        reloaded = dev.wait_for("reloaded in")
        assert "__init__ unchanged" in reloaded

        # A typo: the old code keeps answering through the gateway, the error is printed.
        predictor.write_text(predictor.read_text().replace("def predict(self, payload):", "def predict(self, payload)"))
        failed = dev.wait_for("reload failed")
        assert "SyntaxError" in failed and "predictor.py:" in failed
        for _ in range(5):
            answer = httpx.post(url, json={"x": 1.5, "y": 0.4}, timeout=5)
            assert answer.status_code == 200 and answer.json()["label"] == "good"
        status = json.loads(env.cli("get", "my-model", "-o", "json").stdout)[0]
        assert (status["status"], status["requested"]) == ("live", 1)
    finally:
        code = dev.stop()
    assert code == 0, "\n".join(dev.lines)
    assert any("deleting my-model" in line for line in dev.lines), dev.lines
    assert env.routed("my-model") is None
    assert not (env.api_dir("my-model") / "api.json").exists()
    assert json.loads(env.cli("get", "-o", "json").stdout) == []


def test_dev_over_a_deployed_api_puts_the_previous_version_back(local_env: LocalEnv, tmp_path: Path) -> None:
    env = local_env
    deployed = make_api_project(tmp_path / "deployed", "answer", "- name: answer\n  autoscaling: {init_replicas: 2}\n")
    env.cli("deploy", str(deployed))
    before = httpx.post(env.url("/answer"), json={}, timeout=5).text

    live = make_api_project(tmp_path / "live", "echo_json", "- name: answer\n")
    dev = DevCommand(env.popen("dev", str(live)))
    try:
        dev.wait_for("answer is live at")
        _until(env.url("/answer"), lambda r: r.status_code == 200 and r.text != before, "the dev code")
        assert len(env.routed("answer") or []) == 1
    finally:
        assert dev.stop() == 0, "\n".join(dev.lines)
    assert any("the previous version serves again" in line for line in dev.lines), dev.lines
    assert httpx.post(env.url("/answer"), json={}, timeout=5).text == before
    status = json.loads(env.cli("get", "answer", "-o", "json").stdout)[0]
    assert (status["status"], status["requested"], status["up_to_date"]) == ("live", 2, 2)


def test_dev_in_docker_mounts_the_live_directory(docker_env: DockerEnv, tmp_path: Path) -> None:
    env = docker_env
    project = tmp_path / "dockdev"
    env.cli("init", str(project))
    dev = DevCommand(env.popen("dev", str(project)))
    try:
        dev.wait_for("dockdev is live at", timeout=300)
        url = env.url("/dockdev")
        _until(url, lambda r: r.status_code == 200 and r.json()["label"] == "positive", "the scaffolded predictor")
        (replica,) = env.replicas("dockdev")
        mounts = {m["Destination"]: m for m in replica["Mounts"]}
        assert mounts["/mnt/project"]["Source"] == str(project.resolve()) and mounts["/mnt/project"]["RW"] is False
        assert "CORTEXLITE_RELOAD=1" in replica["Config"]["Env"]

        helper = project / "labels.py"
        helper.write_text('POSITIVE = "yes"\n')
        predictor = project / "predictor.py"
        predictor.write_text(
            "from labels import POSITIVE\n" + predictor.read_text().replace('"positive" if', "POSITIVE if")
        )
        _until(url, lambda r: r.status_code == 200 and r.json()["label"] == "yes", "the edit, through the mount")
        helper.write_text('POSITIVE = "oui"\n')
        _until(url, lambda r: r.status_code == 200 and r.json()["label"] == "oui", "the helper's edit")
        dev.wait_for("reloaded in")
    finally:
        assert dev.stop(timeout=180) == 0, "\n".join(dev.lines)
    assert env.replicas("dockdev") == []
