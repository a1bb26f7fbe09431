"""ONNXPredictor with an onnx_client over a model made in the test with skl2onnx."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import StartRuntime, make_project

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def iris_onnx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    model = LogisticRegression(max_iter=500).fit(data.data.astype("float32"), data.target)
    return bytes(to_onnx(model, data.data[:1].astype("float32"), options={"zipmap": False}).SerializeToString())


def test_onnx_predictor_with_a_flat_list(tmp_path: Path, start_runtime: StartRuntime, iris_onnx: bytes) -> None:
    project = make_project(
        tmp_path / "p",
        "onnx_iris",
        "- name: iris-onnx\n  predictor:\n    type: onnx\n    path: predictor.py\n    model_path: models\n",
    )
    (project / "models" / "1").mkdir(parents=True)
    (project / "models" / "1" / "model.onnx").write_bytes(iris_onnx)
    runtime = start_runtime(project)
    assert runtime.client.post("/", json={"features": [5.1, 3.5, 1.4, 0.2]}).json() == {"label": 0}
    assert runtime.client.post("/", json={"features": [6.7, 3.0, 5.2, 2.3]}).json() == {"label": 2}
    signature = runtime.client.get("/").json()["model_signature"]
    assert signature == {"X": {"type": "tensor(float)", "shape": [None, 4]}}
    wrong = runtime.client.post("/", json={"features": [[[1.0]]]})
    assert wrong.status_code == 500 and "expects 2 dimensions" in wrong.json()["error"]


def test_onnx_without_a_model_is_not_ready(tmp_path: Path, start_runtime: StartRuntime) -> None:
    yaml = "- name: iris-onnx\n  predictor:\n    type: onnx\n    path: predictor.py\n    model_path: missing.onnx\n"
    runtime = start_runtime(make_project(tmp_path / "p", "onnx_iris", yaml), wait="healthy")
    assert "ONNX model not found" in runtime.wait_phase("failed").json()["error"]
