"""The control plane's checks of a project: paths of the predictor, python_path, model; the fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from cortexlite.errors import CortexliteError, SpecError
from cortexlite.project import load_project


def _project(root: Path, spec: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cortexlite.yaml").write_text(spec)
    for name, text in {"predictor.py": "class PythonPredictor: ...\n", **(files or {})}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_project_loads_with_its_hash_files_and_notices(tmp_path: Path) -> None:
    root = _project(
        tmp_path / "p",
        "- name: iris\n  predictor: {model_path: models/m.onnx, python_path: src}\n  networking: {local_port: 8890}\n",
        {"models/m.onnx": "onnx", "src/helper.py": "X = 1\n"},
    )
    project = load_project(root)
    assert [api.name for api in project.apis] == ["iris"]
    assert [str(f) for f in project.files] == ["cortexlite.yaml", "models/m.onnx", "predictor.py", "src/helper.py"]
    assert len(project.hash) == 64
    assert project.notices == (
        "cortexlite.yaml: iris: networking: local_port is ignored: cortexlite serves every API through its gateway",
    )
    assert load_project(root / "cortexlite.yaml").hash == project.hash
    assert project.read("requirements.txt") is None


_ERRORS = "cortexlite.yaml: iris: predictor: "
_CASES = [
    ("path: missing.py", {}, "path: missing.py does not exist in "),
    ("path: ../outside.py", {}, "path: ../outside.py must stay inside the project directory "),
    ("path: predictor.py", {".cortexignore": "predictor.py\n"}, "path: predictor.py is left out of the project"),
    ("python_path: ../..", {}, "python_path: ../.. must stay inside the project directory "),
    ("python_path: src", {}, "python_path: src is not a directory in "),
    ("python_path: /usr/lib", {}, "python_path: /usr/lib must stay inside the project directory "),
    ('python_path: "a\\0b"', {}, "python_path: 'a\\x00b' is not a usable path"),
    ("python_path: " + "x" * 300, {}, "python_path: 'xxxx"),
    ("model_path: models/iris", {}, "model_path: models/iris does not exist in "),
    (
        "{type: onnx, model_path: m.onnx}",
        {"m.onnx": "x", ".cortexignore": "*.onnx\n"},
        "model_path: m.onnx is left out",
    ),
]


@pytest.mark.parametrize(("predictor", "files", "message"), _CASES)
def test_predictor_path_errors(tmp_path: Path, predictor: str, files: dict[str, str], message: str) -> None:
    body = predictor if predictor.startswith("{") else "{" + predictor + "}"
    root = _project(tmp_path / "p", f"- name: iris\n  predictor: {body}\n", files)
    with pytest.raises(SpecError) as caught:
        load_project(root)
    assert str(caught.value).startswith(_ERRORS + message), str(caught.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("[]\n", "cortexlite.yaml: no APIs defined"),
        ("- name: a\n- name: a\n", "cortexlite.yaml: a: name: must be unique"),
    ],
)
def test_project_errors(tmp_path: Path, spec: str, message: str) -> None:
    root = _project(tmp_path / "p", spec)
    with pytest.raises(SpecError) as caught:
        load_project(root)
    assert str(caught.value).startswith(message), str(caught.value)


def test_remote_model_paths_are_not_checked_here(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "- name: iris\n  predictor: {model_path: s3://models/iris}\n")
    assert load_project(root).apis[0].predictor.model_path == "s3://models/iris"
    other = _project(tmp_path / "q", "- name: iris\n  predictor: {model_path: gs://models/iris}\n")
    with pytest.raises(SpecError, match=r"iris: predictor: model_path: expected s3://bucket/path, oss://bucket/path"):
        load_project(other)


def test_a_directory_without_a_spec_or_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"no cortexlite\.yaml or cortex\.yaml in this directory"):
        load_project(tmp_path)
    with pytest.raises(SpecError, match=r"no such file or directory"):
        load_project(tmp_path / "nowhere")


def test_cortex_yaml_is_found(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "predictor.py").write_text("class PythonPredictor: ...\n")
    (root / "cortex.yaml").write_text("- name: iris\n  autoscaling: {workers_per_replica: 2}\n")
    project = load_project(root)
    assert project.spec_file.name == "cortex.yaml"
    assert project.apis[0].predictor.processes_per_replica == 2


_paths = st.sampled_from(
    ["predictor.py", "missing.py", "../x.py", "/etc/passwd", "", ".", "..", "src", "models", "a\x00b", "x" * 300,
     "s3://bucket/m", "oss://b/m", "models/m.onnx", "~/x", "src/../predictor.py", "a\nb.py", "src\n", "x\x1e.py",
     "gs://b/\n", "../\u2028"]
)  # fmt: skip
_scalars = st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) | st.text(max_size=6) | _paths
_keys = st.sampled_from(
    ["name", "predictor", "path", "model_path", "python_path", "type", "config", "env", "autoscaling",
     "min_replicas", "max_replicas", "init_replicas", "window", "compute", "cpu", "mem", "gpu", "update_strategy",
     "max_surge", "max_unavailable", "networking", "endpoint", "local_port", "models", "model", "kind"]
)  # fmt: skip
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=5))
_sections = {key: _values for key in ("predictor", "autoscaling", "compute", "networking", "update_strategy")}
_apis = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["iris", "a", "Bad_Name", ""])}, optional=_sections), max_size=3
)


@given(st.one_of(_apis, _values))
def test_any_project_loads_or_gives_a_clear_error(tmp_path_factory: pytest.TempPathFactory, value: object) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "predictor.py").write_text("class PythonPredictor: ...\n")
    (root / "src").mkdir()
    (root / "models").mkdir()
    (root / "models" / "m.onnx").write_text("x")
    (root / "cortexlite.yaml").write_text(yaml.safe_dump(value))
    try:
        load_project(root)
    except CortexliteError as exc:
        assert str(exc).startswith("cortexlite.yaml"), str(exc)


_path_texts = (
    _paths | st.text(max_size=12) | st.text(alphabet="a/.", min_size=250, max_size=5000).map(lambda s: s + ".py")
)
_predictor_fields = {key: _path_texts for key in ("path", "python_path", "model_path")}
_predictors = st.fixed_dictionaries({}, optional=_predictor_fields | {"type": st.sampled_from(["python", "onnx"])})


@given(_predictors)
def test_any_predictor_paths_load_or_give_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, predictor: dict[str, str]
) -> None:
    root = tmp_path_factory.mktemp("paths")
    (root / "predictor.py").write_text("class PythonPredictor: ...\n")
    (root / "cortexlite.yaml").write_text(yaml.safe_dump([{"name": "iris", "predictor": predictor}]))
    try:
        load_project(root)
    except CortexliteError as exc:
        assert str(exc).startswith("cortexlite.yaml: iris: predictor"), str(exc)
        assert len(str(exc).splitlines()) == 1, f"a path from the spec broke the message: {exc}"
