"""Spec models and spec files: Cortex spellings, precise errors, and no traceback for any input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from cortexlite_runtime.errors import SpecError
from cortexlite_runtime.spec import ApiSpec, PredictorType, ResolvedSpec
from cortexlite_runtime.specfile import load_api_specs, load_resolved_spec, select_api


def _write(tmp_path: Path, text: str, name: str = "cortexlite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults() -> None:
    api = ApiSpec(name="iris")
    assert api.predictor.type is PredictorType.PYTHON
    assert (api.predictor.path, api.predictor.processes_per_replica, api.predictor.threads_per_process) == (
        "predictor.py",
        1,
        1,
    )
    assert api.autoscaling.max_replica_concurrency == 1024
    assert api.predictor.server_side_batching is None


def test_cortex_015_spellings_are_mapped(tmp_path: Path) -> None:
    text = """
- name: iris
  predictor: {type: onnx, path: predictor.py, model: s3://bucket/iris.onnx}
  autoscaling: {workers_per_replica: 4, threads_per_worker: 2, min_replicas: 1}
  tracker: {model_type: classification}
"""
    (api,) = load_api_specs(_write(tmp_path, text, "cortex.yaml"))
    assert api.predictor.model_path == "s3://bucket/iris.onnx"
    assert (api.predictor.processes_per_replica, api.predictor.threads_per_process) == (4, 2)
    assert api.concurrency_per_replica == 8


def test_cortex_022_models_path_and_batching_duration(tmp_path: Path) -> None:
    text = """
- name: b
  kind: RealtimeAPI
  predictor:
    type: python
    path: predictor.py
    models: {path: models/}
    server_side_batching: {max_batch_size: 8, batch_interval: 100ms}
"""
    (api,) = load_api_specs(_write(tmp_path, text))
    assert api.predictor.model_path == "models/"
    assert api.predictor.server_side_batching is not None
    assert api.predictor.server_side_batching.batch_interval == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- name: iris\n  predictor: {processes_per_replica: 0}\n",
            "cortexlite.yaml: iris: predictor: processes_per_replica: must be >= 1 (got 0)",
        ),
        ("- name: iris\n  predictor: {pth: x.py}\n", "cortexlite.yaml: iris: predictor: key pth is not supported"),
        ("- name: iris\n  colour: blue\n", "cortexlite.yaml: iris: key colour is not supported"),
        ("- predictor: {}\n", "cortexlite.yaml: api #1: name: is required"),
        (
            "- name: iris\n  kind: BatchAPI\n",
            "cortexlite.yaml: iris: kind: BatchAPI is not supported yet (only RealtimeAPI)",
        ),
        (
            "- name: iris\n  predictor: {type: tensorflow}\n",
            "cortexlite.yaml: iris: predictor: type: tensorflow predictors are not supported yet (use python or onnx)",
        ),
        (
            "- name: iris\n  predictor: {threads_per_process: many}\n",
            "cortexlite.yaml: iris: predictor: threads_per_process: expected an integer (got 'many')",
        ),
        (
            "- name: iris\n  predictor: {server_side_batching: {max_batch_size: 4, batch_interval: soon}}\n",
            "cortexlite.yaml: iris: predictor: server_side_batching: batch_interval: "
            "expected a duration such as 10ms, 1s or 5m (got 'soon')",
        ),
        ("- name: iris\n  predictor: {path: model.pkl}\n", "must be a .py file (got 'model.pkl')"),
        (
            "- name: iris\n  predictor: {env: {CORTEX_SERVING_PORT: 1, OK: 2}}\n",
            "cortexlite.yaml: iris: predictor: env: CORTEX_SERVING_PORT: CORTEX_* and CORTEXLITE_* keys are reserved",
        ),
        ("42\n", "cortexlite.yaml: expected a list of APIs (got a number)"),
        ("", "cortexlite.yaml: the file is empty; expected a list of APIs"),
        ("- just a string\n", "cortexlite.yaml: api #1: expected a mapping (got a string)"),
    ],
)
def test_errors_name_file_api_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_api_specs(_write(tmp_path, text))
    assert message in str(caught.value)


def _alias_bomb(levels: int) -> str:
    anchors = "".join(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, levels))
    return (
        "- name: bomb\n  predictor:\n    config:\n      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        + anchors
        + (f"  tracker: *l{levels - 1}\n")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 3000, "cortexlite.yaml: invalid YAML: lists or mappings are nested too deeply"),
        ("- name: a\n  predictor: {threads_per_process: " + "9" * 5000 + "}\n", "cortexlite.yaml:2:36: invalid YAML: "),
        (
            "- name: a\n  predictor: {path: 2001-02-30}\n",
            "cortexlite.yaml:2:21: invalid YAML: cannot read '2001-02-30' as timestamp: day is out of range for month",
        ),
        ("- name: !!bool maybe\n", "cortexlite.yaml:1:9: invalid YAML: cannot read 'maybe' as bool"),
        ("- name: !!float abc\n", "cortexlite.yaml:1:9: invalid YAML: cannot read 'abc' as float: could not convert"),
        (_alias_bomb(8), "cortexlite.yaml:1:1: invalid YAML: aliases expand the document by more than 100000 nodes"),
        (
            "- name: x\n  predictor:\n    config: &c {k: *c}\n",
            "cortexlite.yaml:3:13: invalid YAML: an alias refers to a node that contains it",
        ),
        (
            '- name: a\n  tracker: {k: "\\ud800"}\n',
            "cortexlite.yaml:2:16: invalid YAML: '\\ud800' holds a lone surrogate",
        ),
        ("- name: a\x00\n", "cortexlite.yaml: invalid YAML: character #x0000 at offset 9: special characters are not"),
        # an extreme number is refused by its field (units.parse_duration), naming the file and the API
        (
            "- name: a\n  autoscaling: {window: 1" + "0" * 400 + "}\n",
            "cortexlite.yaml: a: autoscaling: window: expected a",
        ),
        ('- name: a\n  predictor: {"x\\x1e\\n": 1}\n', "cortexlite.yaml: a: predictor: key x\\x1e\\n is not supported"),
        (
            "- name: [" + ", ".join(["x"] * 500) + "]\n",
            "name: expected a string (got ['x', 'x', 'x', 'x', 'x', 'x', ...])",
        ),
        ('- name: "\\u202e"\n  colour: 1\n', "cortexlite.yaml: api #1: key colour is not supported"),
    ],
)
def test_hostile_yaml_gives_a_short_precise_spec_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_api_specs(_write(tmp_path, text))
    assert message in str(caught.value)
    assert len(str(caught.value)) < 1000
    str(caught.value).encode("utf-8")


def test_a_recursive_alias_cannot_reach_the_resolved_spec(tmp_path: Path) -> None:
    # Before, this loaded, and the resolved-spec JSON of the API could never be written (circular reference).
    with pytest.raises(SpecError, match="a recursive structure"):
        load_api_specs(_write(tmp_path, "- name: x\n  predictor:\n    config: &c {list: [1, *c]}\n"))


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^cortexlite.yaml:3:12: invalid YAML: mapping values are not allowed here"):
        load_api_specs(_write(tmp_path, "- name: iris\n  predictor:\n    path: a: b\n"))


def test_select_api(tmp_path: Path) -> None:
    apis = load_api_specs(_write(tmp_path, "- name: a\n- name: b\n"))
    assert select_api(apis, None, "x").name == "a"
    assert select_api(apis, "b", "x").name == "b"
    with pytest.raises(SpecError, match="no API named 'c'"):
        select_api(apis, "c", "cortexlite.yaml")


def test_resolved_spec_round_trip(tmp_path: Path) -> None:
    api = ApiSpec.model_validate({"name": "iris", "predictor": {"config": {"a": [1, 2]}, "env": {"N": 3}}})
    path = tmp_path / "spec.json"
    path.write_text(ResolvedSpec(api=api, spec_hash="abc").model_dump_json())
    loaded = load_resolved_spec(path)
    assert loaded.version == 1 and loaded.api == api and loaded.api.predictor.env == {"N": "3"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"api": {"name": "x"}}', "resolved-spec version None is not supported"),
        ('{"version": 1, "api": {"name": "x", "predictor": {"bogus": 1}}}', "api: predictor: key bogus"),
        ('{"version": 1, "api": {"predictor": {"config": ' + "[" * 100_000 + "]" * 100_000 + "}}}", "not valid JSON"),
        (
            '{"version": 1, "api": {"name": "x", "autoscaling": {"window": 1' + "0" * 400 + "}}}",
            "window: expected a duration",
        ),
    ],
)
def test_resolved_spec_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_resolved_spec(path)


_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8)
_keys = st.sampled_from(
    ["name", "kind", "predictor", "type", "path", "model", "models", "config", "env", "processes_per_replica",
     "threads_per_process", "server_side_batching", "max_batch_size", "batch_interval", "autoscaling",
     "workers_per_replica", "threads_per_worker", "python_path", "compute", "x"]
)  # fmt: skip
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4))


@given(_values)
def test_any_yaml_document_gives_apis_or_a_spec_error(tmp_path_factory: pytest.TempPathFactory, value: object) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "cortexlite.yaml"
    path.write_text(yaml.safe_dump(value))
    try:
        load_api_specs(path)
    except SpecError as exc:
        assert str(exc).startswith("cortexlite.yaml")


@given(st.text(max_size=200))
def test_any_text_gives_apis_or_a_spec_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "cortexlite.yaml"
    path.write_text(text)
    try:
        load_api_specs(path)
    except SpecError:
        pass
