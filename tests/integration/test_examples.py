"""The projects under examples/: each deployed through the real CLI on processes, its sample answered.

Each test deploys one example unchanged (`cortexlite deploy examples/X`, as its README says) to a
process environment of its own, and checks the answer to the example's sample payload through the
gateway, with `cortexlite predict` and with plain HTTP. The gpu example installs torch (a CPU wheel
here) into the session's replica venv cache the first time, hence its longer timeout.
"""

from __future__ import annotations

import json
import math
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import REPO, LocalEnv

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "examples"
SPEC_FILES = ("cortexlite.yaml", "cortex.yaml")


def deploy(env: LocalEnv, example: str, timeout: float | None = None) -> str:
    """`cortexlite deploy examples/<example>`; its stdout and stderr together."""
    done = env.cli("deploy", str(EXAMPLES / example), timeout=timeout)
    return done.stdout + done.stderr


def predict(env: LocalEnv, api: str, sample: Path) -> str:
    """`cortexlite predict API FILE`: what it prints."""
    return env.cli("predict", api, str(sample), timeout=60).stdout


def test_every_example_is_complete() -> None:
    examples = sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir())
    assert examples == ["batching", "cortex-0.15", "gpu", "iris", "onnx", "text"]
    for name in examples:
        directory = EXAMPLES / name
        assert any((directory / spec).is_file() for spec in SPEC_FILES), name
        assert (directory / "predictor.py").is_file(), name
        assert (directory / "sample.json").is_file() or (directory / "sample.txt").is_file(), name
        if name != "iris":  # iris predates the example READMEs; the top-level README covers it
            readme = (directory / "README.md").read_text()
            assert f"cortexlite deploy examples/{name}" in readme, name
            assert "cortexlite predict " in readme, name
    # The ONNX model ships with the example (deploying needs no skl2onnx) and stays small.
    model = EXAMPLES / "onnx" / "model.onnx"
    assert 0 < model.stat().st_size < 1_000_000
    assert (EXAMPLES / "gpu" / "requirements.txt").read_text().splitlines()[0] == "torch==2.13.0"


def test_iris(local_env: LocalEnv) -> None:
    env = local_env
    deploy(env, "iris")
    assert predict(env, "iris", EXAMPLES / "iris" / "sample.json") == "setosa\n"
    answer = httpx.post(env.url("/iris"), json={**_iris_sample(), "petal_length": 5.8, "petal_width": 2.2}, timeout=10)
    assert answer.status_code == 200 and answer.text == "virginica"


def test_onnx(local_env: LocalEnv) -> None:
    env = local_env
    deploy(env, "onnx")
    answer = json.loads(predict(env, "iris-onnx", EXAMPLES / "onnx" / "sample.json"))
    assert answer["label"] == "setosa"
    probabilities = answer["probabilities"]
    assert list(probabilities) == ["setosa", "versicolor", "virginica"]
    assert probabilities["setosa"] > 0.9 and math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-3)

    virginica = {**_iris_sample(), "petal_length": 5.8, "petal_width": 2.2}
    assert httpx.post(env.url("/iris-onnx"), json=virginica, timeout=10).json()["label"] == "virginica"
    # The replica's summary (GET on the endpoint) shows the model's signature, read from model.onnx.
    summary = httpx.get(env.url("/iris-onnx"), timeout=10).json()
    assert summary["model_signature"] == {"X": {"type": "tensor(float)", "shape": [None, 4]}}


def test_text(local_env: LocalEnv) -> None:
    env = local_env
    deploy(env, "text")
    sample = EXAMPLES / "text" / "sample.txt"
    expected = "lines: 2\nwords: 16\ncharacters: 80\ntop words: the (4), dog (2), fox (2)\n"
    answer = httpx.post(
        env.url("/text-stats"), content=sample.read_bytes(), headers={"content-type": "text/plain"}, timeout=10
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text == expected
    # `cortexlite predict` sends a text file as text/plain: the predictor gets a str.
    assert predict(env, "text-stats", sample) == expected
    as_bytes = httpx.post(
        env.url("/text-stats"), content=sample.read_bytes(), headers={"content-type": "application/octet-stream"}
    )
    assert as_bytes.text == expected


def test_batching(local_env: LocalEnv) -> None:
    env = local_env
    deploy(env, "batching")
    assert json.loads(predict(env, "batching", EXAMPLES / "batching" / "sample.json"))["score"] == 3.1

    # Eight clients at once: answered in batches, each with its own score.
    clients = 8
    start = threading.Barrier(clients)

    def ask(i: int) -> dict[str, Any]:
        start.wait(timeout=10)
        answer = httpx.post(env.url("/batching"), json={"x": [i, 0, 1]}, timeout=30)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(ask, range(clients)))
    assert [a["score"] for a in answers] == [round(0.5 * i + 1.1, 6) for i in range(clients)]
    assert max(a["batch_size"] for a in answers) > 1
    assert all(1 <= a["batch_size"] <= 8 for a in answers)

    # The replica's metrics agree: every request went through a batch, fewer calls than requests.
    metrics = httpx.get(env.url("/batching/metrics"), timeout=10).text
    calls = _metric(metrics, "cortexlite_batch_size_count")
    assert _metric(metrics, "cortexlite_batch_size_sum") == clients + 1
    assert calls < clients + 1


@pytest.mark.timeout(600)
def test_gpu_example_runs_on_the_cpu_here(local_env: LocalEnv) -> None:
    env = local_env
    deploy(env, "gpu", timeout=540)  # the first deploy of a session installs torch into the venv cache
    answer = json.loads(predict(env, "torch-mlp", EXAMPLES / "gpu" / "sample.json"))
    assert answer["device"] == "cpu" and "gpu" not in answer
    # Weights from torch.manual_seed(0): the same numbers on every machine with this torch.
    assert answer["logits"] == pytest.approx([-0.4473, 1.0081, -0.5316], abs=2e-4)
    assert answer["class"] == 1


def test_cortex_015_project_unchanged(local_env: LocalEnv) -> None:
    env = local_env
    output = deploy(env, "cortex-0.15")
    assert "Cortex 0.15's spelling" in output  # the mapped keys are named, not silently changed
    assert predict(env, "sentiment", EXAMPLES / "cortex-0.15" / "sample.json") == "positive\n"
    # Cortex 0.15 clients sent JSON without a Content-Type.
    body = b'{"text": "slow and awful, I hate waiting"}'
    answer = httpx.post(env.url("/sentiment"), content=body, timeout=10)
    assert answer.status_code == 200 and answer.text == "negative"
    # autoscaling.threads_per_worker: 2 became predictor.threads_per_process.
    summary = httpx.get(env.url("/sentiment"), timeout=10).json()
    assert (summary["processes"], summary["threads"]) == (1, 2)


def _iris_sample() -> dict[str, float]:
    return dict(json.loads((EXAMPLES / "iris" / "sample.json").read_text()))


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in the metrics:\n{text}"
    return float(match.group(1))
