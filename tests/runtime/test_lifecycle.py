"""Start-up, readiness, failures of user code, dependencies, and the SIGTERM shutdown sequence."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import StartRuntime, make_project

pytestmark = pytest.mark.timeout(90)


def test_slow_init_flips_readiness(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = "- name: slow\n  predictor:\n    path: predictor.py\n    config: {seconds: 1.5}\n"
    runtime = start_runtime(make_project(tmp_path / "p", "slow_init", yaml), wait="healthy")
    loading = runtime.client.get("/readyz")
    assert loading.status_code == 503
    assert loading.json()["status"] in ("starting", "installing dependencies", "loading predictor")
    assert runtime.client.post("/", json={}).status_code == 503
    runtime.wait_ready(timeout=20)
    assert runtime.client.post("/", json={}).text == "ok"


@pytest.mark.parametrize(
    ("predictor", "expected"),
    [
        ("init_error", "PythonPredictor.__init__ failed: ValueError: the model file is corrupt (predictor.py:3)"),
        (
            "bad_signature",
            'invalid signature for function "predict": expected arguments (payload, query_params, headers) '
            "but found (sample, threshold)",
        ),
        ("import_error", "importing predictor.py failed: ModuleNotFoundError"),
    ],
)
def test_broken_predictor_keeps_a_server_that_explains(
    tmp_path: Path, start_runtime: StartRuntime, predictor: str, expected: str
) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", predictor), wait="healthy")
    ready = runtime.wait_phase("failed")
    assert ready.status_code == 503
    assert expected in ready.json()["error"]
    assert runtime.client.get("/healthz").status_code == 200
    refused = runtime.client.post("/", json={})
    assert refused.status_code == 503 and expected in refused.json()["error"]


def test_bad_spec_is_explained_by_readyz(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = "- name: iris\n  predictor:\n    path: predictor.py\n    processes_per_replica: 0\n"
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json", yaml), wait="healthy")
    error = runtime.wait_phase("failed").json()["error"]
    assert error == "cortexlite.yaml: iris: predictor: processes_per_replica: must be >= 1 (got 0)"


def test_resolved_spec_from_cortex_api_spec(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = make_project(tmp_path / "p", "echo_json")
    spec = tmp_path / "spec.json"
    spec.write_text('{"version": 1, "api": {"name": "resolved", "predictor": {"config": {"from": "json"}}}}')
    runtime = start_runtime(project, env={"CORTEX_API_SPEC": str(spec)})
    assert runtime.client.get("/").json()["api"] == "resolved"
    assert runtime.client.post("/", json=1).json()["config"] == {"from": "json"}


def test_unknown_resolved_spec_version_is_refused(tmp_path: Path, start_runtime: StartRuntime) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"version": 2, "api": {"name": "x"}}')
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json"), env={"CORTEX_API_SPEC": str(spec)}, wait=None)
    error = runtime.wait_phase("failed").json()["error"]
    assert "resolved-spec version 2 is not supported" in error


def test_api_name_picks_another_api(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = (
        "- name: first\n  predictor: {path: predictor.py, config: {n: 1}}\n"
        "- name: second\n  predictor: {path: predictor.py, config: {n: 2}}\n"
    )
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json", yaml), env={"CORTEXLITE_API_NAME": "second"})
    assert runtime.client.post("/", json=0).json()["config"] == {"n": 2}


def test_cortex_015_names_and_version(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = (
        "- name: iris\n  predictor:\n    type: python\n    path: predictor.py\n"
        "    config: {labels: [setosa, versicolor, virginica]}\n"
        "  tracker: {model_type: classification}\n  compute: {cpu: 0.2, mem: 100M}\n"
    )
    project = make_project(tmp_path / "p", "cortex015")
    (project / "cortex.yaml").write_text(yaml)
    env = {
        "CORTEX_WORKERS_PER_REPLICA": "2",
        "CORTEX_THREADS_PER_WORKER": "2",
        "CORTEX_MAX_WORKER_CONCURRENCY": "8",
        "CORTEX_SO_MAX_CONN": "2048",
        "CORTEX_VERSION": "0.15.1",
    }
    runtime = start_runtime(project, env=env)
    summary = runtime.client.get("/").json()
    assert (summary["processes"], summary["threads"], summary["max_replica_concurrency"]) == (2, 2, 16)
    assert runtime.client.post("/", content=b'{"index": 2}').text == "virginica"
    assert "CORTEX_VERSION=0.15.1" in runtime.logs()


def test_environment_dependencies_and_python_path(tmp_path: Path, start_runtime: StartRuntime) -> None:
    marker = tmp_path / "marker.txt"
    files = {
        ".env": f"# comment\nexport MARKER_FILE={marker}\nGREETING='hello there'\n",
        "dependencies.sh": f"echo from-dependencies-sh > {marker}\n",
        "helper.py": "NAME = 'helper module'\n",
    }
    yaml = "- name: deps\n  predictor:\n    path: predictor.py\n    env: {FROM_SPEC: 42}\n"
    runtime = start_runtime(make_project(tmp_path / "p", "uses_environment", yaml, files))
    assert runtime.client.post("/", json={}).json() == {
        "marker": "from-dependencies-sh",
        "greeting": "hello there",
        "helper": "helper module",
        "spec_env": "42",
    }


def test_failing_dependencies_sh_is_not_ready(tmp_path: Path, start_runtime: StartRuntime) -> None:
    files = {"dependencies.sh": "echo installing things\necho 'E: package nope not found' >&2\nexit 3\n"}
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json", files=files), wait="healthy")
    error = runtime.wait_phase("failed").json()["error"]
    assert "dependencies.sh failed (exit code 3)" in error and "E: package nope not found" in error


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path: Path, start_runtime: StartRuntime) -> None:
    runtime = start_runtime(make_project(tmp_path / "p", "slow"), env={"CORTEX_SHUTDOWN_DELAY": "1"})
    result: dict[str, httpx.Response] = {}
    slow = threading.Thread(target=lambda: result.update(r=httpx.post(f"{runtime.url}/", json={"seconds": 2.5})))
    slow.start()
    time.sleep(0.5)  # the slow request is in flight
    runtime.process.terminate()
    time.sleep(0.2)
    not_ready = runtime.client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "shutting down"
    during_delay = httpx.get(f"{runtime.url}/healthz")  # still accepting during the delay
    assert during_delay.status_code == 200 and during_delay.headers["connection"] == "close"
    slow.join(10)
    assert result["r"].status_code == 200
    assert runtime.process.wait(15) == 0
    assert "received SIGTERM" in runtime.logs()


def test_requirements_are_cached_across_restarts(tmp_path: Path, start_runtime: StartRuntime) -> None:
    project = make_project(tmp_path / "p", "uses_requirement", files={"requirements.txt": "six==1.16.0\n"})
    first = start_runtime(project, wait=None)
    first.wait_ready(timeout=120)
    cache = tmp_path / "cache" / ".cortexlite-cache" / "venvs"
    assert first.client.post("/", json={}).json()["file"].startswith(str(cache))
    assert first.stop() == 0
    # A second start must not run pip: with no index reachable it would fail.
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    second = start_runtime(project, env=offline)
    assert second.client.post("/", json={}).json()["six"] == "1.16.0"
    assert "requirements.txt already installed" in second.logs()


def test_failed_pip_install_is_not_ready_with_pips_error(tmp_path: Path, start_runtime: StartRuntime) -> None:
    files = {"requirements.txt": "this-package-does-not-exist-cortexlite==0.0.1\n"}
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    runtime = start_runtime(make_project(tmp_path / "p", "echo_json", files=files), env=offline, wait="healthy")
    error = runtime.wait_phase("failed", timeout=60).json()["error"]
    assert "pip install -r requirements.txt failed" in error
    assert "this-package-does-not-exist-cortexlite" in error


def test_unwritable_cache_warns_and_installs_anyway(tmp_path: Path, start_runtime: StartRuntime) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir should be")
    project = make_project(tmp_path / "p", "uses_requirement", files={"requirements.txt": "six==1.16.0\n"})
    runtime = start_runtime(project, env={"CORTEX_CACHE_DIR": str(blocker)}, wait=None)
    runtime.wait_ready(timeout=120)
    assert runtime.client.post("/", json={}).json()["six"] == "1.16.0"
    assert "is not writable" in runtime.logs()


def test_python_path_is_honoured_and_must_stay_inside(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = "- name: pp\n  predictor:\n    path: predictor.py\n    python_path: src\n"
    project = make_project(tmp_path / "p", "uses_python_path", yaml)
    (project / "src").mkdir()
    (project / "src" / "shared_lib.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    runtime = start_runtime(project)
    assert runtime.client.post("/", json="hi").text == "HI!"

    outside = "- name: pp\n  predictor:\n    path: predictor.py\n    python_path: ../elsewhere\n"
    escaping = start_runtime(make_project(tmp_path / "q", "uses_python_path", outside), wait="healthy")
    assert "python_path '../elsewhere' leaves the project" in escaping.wait_phase("failed").json()["error"]
