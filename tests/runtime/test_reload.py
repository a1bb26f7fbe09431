"""Hot reload (`CORTEXLITE_RELOAD=1`) of a real runtime subprocess, driven by editing its project's files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Runtime, StartRuntime

pytestmark = pytest.mark.timeout(180)

PREDICTOR = """\
import os
from helper import greeting


class PythonPredictor:
    def __init__(self, config):
        with open(config["counter"], "a") as counter:
            counter.write("init\\n")
        self.model = {"loaded_at_pid": os.getpid(), "scale": config.get("scale", 1)}

    def predict(self, payload):
        return {"answer": "v1", "greeting": greeting(), "scale": self.model["scale"], "pid": os.getpid()}
"""

RELOAD = {"CORTEXLITE_RELOAD": "1"}


def _project(root: Path, yaml_extra: str = "") -> Path:
    project = root / "project"
    project.mkdir()
    (project / "predictor.py").write_text(PREDICTOR)
    (project / "helper.py").write_text('def greeting():\n    return "hello"\n')
    counter = root / "inits.txt"
    (project / "cortexlite.yaml").write_text(
        f"- name: dev\n  predictor:\n    path: predictor.py\n    config: {{counter: {counter}}}\n{yaml_extra}"
    )
    return project


def _inits(project: Path) -> int:
    path = project.parent / "inits.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _until(runtime: Runtime, check: Callable[[httpx.Response], bool], what: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        try:
            last = runtime.client.post("/", json={})
        except httpx.TransportError:  # a replica restarting does not listen for a moment
            time.sleep(0.05)
            continue
        if check(last):
            return last
        time.sleep(0.02)
    body = last.text if last is not None else "no answer"
    raise AssertionError(f"{what}: not seen after {timeout}s; last answer {body}\n{runtime.logs()}")


def _answer(key: str, value: object) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == 200 and r.json().get(key) == value


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


def _log_events(runtime: Runtime) -> list[str]:
    messages = []
    for line in runtime.logs().splitlines():
        try:
            messages.append(str(json.loads(line).get("message", "")))
        except ValueError:
            messages.append(line)
    return messages


def _logged(runtime: Runtime, match: Callable[[str], bool], count: int = 1, timeout: float = 20) -> list[str]:
    """The runtime's log messages that `match`, once there are `count` of them (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while len(found := [m for m in _log_events(runtime) if match(m)]) < count:
        assert time.monotonic() < deadline, runtime.logs()
        time.sleep(0.05)
    return found


def test_an_edit_to_predict_serves_new_code_and_keeps_the_model(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    first = runtime.client.post("/", json={}).json()
    assert (first["answer"], first["greeting"]) == ("v1", "hello")

    # Same size, within the same second: stale bytecode would still answer v1.
    for version in ("v2", "v3"):
        _edit(
            project / "predictor.py",
            '"answer": "v1"' if version == "v2" else '"answer": "v2"',
            f'"answer": "{version}"',
        )
        _until(runtime, _answer("answer", version), f"answer {version}")
    assert _inits(project) == 1, "only predict changed: __init__ must not run again"
    assert runtime.client.post("/", json={}).json()["pid"] == first["pid"], "reloaded in place, not restarted"
    messages = _log_events(runtime)
    assert any(m.startswith("reloaded in ") and "__init__ unchanged" in m for m in messages), messages


def test_an_edit_to_init_or_a_data_file_runs_init_again(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    _edit(project / "predictor.py", '"scale": config.get("scale", 1)', '"scale": config.get("scale", 1) * 10')
    _until(runtime, _answer("scale", 10), "scale from the new __init__")
    assert _inits(project) == 2

    (project / "weights.bin").write_bytes(b"\x00" * 16)  # a model file: __init__ reads such files
    _until(runtime, lambda _r: _inits(project) == 3, "__init__ after a data file changed")


def test_an_edit_to_a_helper_module_changes_the_answer(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    _edit(project / "helper.py", '"hello"', '"bonjour"')
    _until(runtime, _answer("greeting", "bonjour"), "the helper's new greeting")
    assert _inits(project) == 1


def test_a_syntax_error_keeps_the_old_code_serving(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    _edit(project / "predictor.py", 'return {"answer"', 'return {"answer" oops')
    failure = _logged(runtime, lambda m: "reload failed" in m)[0]
    assert "SyntaxError" in failure and "predictor.py:12)" in failure, failure
    assert "still serving the previous code" in failure
    for _ in range(5):
        answer = runtime.client.post("/", json={})
        assert answer.status_code == 200 and answer.json()["answer"] == "v1"
    assert runtime.client.get("/readyz").status_code == 200

    # An __init__ that raises is no better: the old predictor stays.
    _edit(project / "predictor.py", 'return {"answer" oops', 'return {"answer"')
    _edit(
        project / "predictor.py", "        self.model =", "        raise RuntimeError('no model')\n        self.model ="
    )
    failures = _logged(runtime, lambda m: "reload failed" in m, count=2)
    assert "RuntimeError: no model (predictor.py:" in failures[-1]
    assert runtime.client.post("/", json={}).json()["answer"] == "v1"

    _edit(project / "predictor.py", "        raise RuntimeError('no model')\n", "")
    _edit(project / "predictor.py", '"answer": "v1"', '"answer": "fixed"')
    _until(runtime, _answer("answer", "fixed"), "the fixed code")


def test_editor_scratch_files_do_not_reload(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    for name in (".predictor.py.swp", "predictor.py~", "4913", "#predictor.py#", ".git/index", "__pycache__/x.pyc"):
        (project / name).parent.mkdir(exist_ok=True)
        (project / name).write_text("scratch")
    time.sleep(1.0)
    assert not any(m.startswith("reload") for m in _log_events(runtime)), runtime.logs()
    (project / "notes.py").write_text("# a new module\n")
    _logged(runtime, lambda m: m.startswith("reloaded in"))


def test_config_change_in_the_spec_runs_init_with_it(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    _edit(project / "cortexlite.yaml", "config: {counter:", "config: {scale: 7, counter:")
    _until(runtime, _answer("scale", 7), "the new config")
    assert _inits(project) == 2


def test_several_predictor_processes_all_reload(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path, "    processes_per_replica: 2\n")
    runtime = start_runtime(project, env=RELOAD)
    _edit(project / "predictor.py", '"answer": "v1"', '"answer": "v2"')
    _until(runtime, _answer("answer", "v2"), "v2")
    seen = {}
    for _ in range(40):
        body = runtime.client.post("/", json={}).json()
        seen[body["pid"]] = body["answer"]
    assert set(seen.values()) == {"v2"}
    assert _inits(project) == 2, "each process kept its model"


def test_reload_init_always_runs_init(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env={**RELOAD, "CORTEXLITE_RELOAD_INIT": "always"})
    _edit(project / "predictor.py", '"answer": "v1"', '"answer": "v2"')
    _until(runtime, _answer("answer", "v2"), "v2")
    assert _inits(project) == 2


REQUIREMENT_PREDICTOR = """\
class PythonPredictor:
    def predict(self, payload):
        import six

        return {"answer": "six", "six": six.__version__, "file": six.__file__}
"""


@pytest.mark.slow
def test_requirements_install_then_an_upgrade_restarts(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = _project(tmp_path)
    runtime = start_runtime(project, env=RELOAD)
    (project / "requirements.txt").write_text("six==1.16.0\n")
    (project / "predictor.py").write_text(REQUIREMENT_PREDICTOR)
    installed = _until(runtime, _answer("six", "1.16.0"), "six 1.16.0 from the new requirements", timeout=120)
    assert ".cortexlite-cache" in installed.json()["file"], "imported from the cached install, not the test venv"
    pid = runtime.process.pid

    # six is imported now: a new version cannot be swapped in, the replica restarts.
    (project / "requirements.txt").write_text("six==1.17.0\n")
    _until(runtime, _answer("six", "1.17.0"), "six 1.17.0 after the restart", timeout=120)
    assert runtime.process.pid == pid and runtime.process.poll() is None, "re-executed in place"
    assert any(
        "restarting the replica: requirements.txt upgrades six 1.16.0 -> 1.17.0" in m for m in _log_events(runtime)
    )
