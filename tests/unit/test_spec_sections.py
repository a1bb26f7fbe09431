"""Golden messages for the deployment sections, Cortex notices, and cross-API checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortexlite_runtime.errors import SpecError
from cortexlite_runtime.spec import ApiSpec
from cortexlite_runtime.specfile import load_api_specs
from cortexlite_runtime.units import parse_cpu, parse_memory


def _load(tmp_path: Path, text: str, notices: list[str] | None = None) -> list[ApiSpec]:
    path = tmp_path / "cortexlite.yaml"
    path.write_text(text)
    return load_api_specs(path, notices)


def test_defaults_are_cortexs() -> None:
    api = ApiSpec.model_validate({"name": "iris", "predictor": {"processes_per_replica": 2, "threads_per_process": 3}})
    scaling = api.autoscaling
    assert (scaling.min_replicas, scaling.max_replicas, scaling.initial_replicas) == (1, 100, 1)
    assert (scaling.window, scaling.downscale_stabilization_period, scaling.upscale_stabilization_period) == (
        60.0,
        300.0,
        60.0,
    )
    assert (scaling.max_downscale_factor, scaling.max_upscale_factor) == (0.75, 1.5)
    assert (scaling.downscale_tolerance, scaling.upscale_tolerance, scaling.max_replica_concurrency) == (
        0.05,
        0.05,
        1024,
    )
    assert api.target_replica_concurrency == 6.0
    assert (api.update_strategy.max_surge, api.update_strategy.max_unavailable) == ("25%", "25%")
    assert (api.compute.cpu, api.compute.gpu, api.compute.mem) == (None, 0, None)
    assert api.endpoint == "/iris"


@pytest.mark.parametrize(("value", "cores"), [(0.2, 0.2), (2, 2.0), ("500m", 0.5), ("1.5", 1.5), ("250 m", 0.25)])
def test_cpu(value: object, cores: float) -> None:
    assert parse_cpu(value) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("value", "size"),
    [("100M", 100 * 10**6), ("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1.5G", 1_500_000_000), (4096, 4096)],
)
def test_memory(value: object, size: int) -> None:
    assert parse_memory(value) == size


def test_sections_parse(tmp_path: Path) -> None:
    text = """
- name: iris
  compute: {cpu: 500m, gpu: 1, mem: 1Gi}
  autoscaling: {min_replicas: 2, max_replicas: 5, init_replicas: 3, window: 30s, upscale_stabilization_period: 2m}
  update_strategy: {max_surge: 1, max_unavailable: 0%}
  networking: {endpoint: models/iris/}
"""
    (api,) = _load(tmp_path, text)
    assert (api.compute.cpu, api.compute.gpu, api.compute.mem) == (0.5, 1, 2**30)
    assert (api.autoscaling.initial_replicas, api.autoscaling.window, api.autoscaling.upscale_stabilization_period) == (
        3,
        30.0,
        120.0,
    )
    assert (api.update_strategy.max_surge, api.update_strategy.max_unavailable) == (1, "0%")
    assert api.endpoint == "/models/iris"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "autoscaling: {min_replicas: 3, max_replicas: 2}",
            "cortexlite.yaml: iris: autoscaling: min_replicas: must be <= max_replicas (got 3 > 2)",
        ),
        (
            "autoscaling: {min_replicas: 2, max_replicas: 4, init_replicas: 5}",
            "cortexlite.yaml: iris: autoscaling: init_replicas: must be between min_replicas and max_replicas "
            "(got 5, not in 2..4)",
        ),
        (
            "autoscaling: {window: 45s}",
            "cortexlite.yaml: iris: autoscaling: window: must be a multiple of 10s (got 45s)",
        ),
        ("autoscaling: {window: soon}", "cortexlite.yaml: iris: autoscaling: window: expected a duration"),
        ("autoscaling: {max_upscale_factor: 1}", "cortexlite.yaml: iris: autoscaling: max_upscale_factor: must be > 1"),
        ("autoscaling: {min_replica: 1}", "cortexlite.yaml: iris: autoscaling: key min_replica is not supported"),
        (
            "update_strategy: {max_surge: 0, max_unavailable: 0%}",
            "cortexlite.yaml: iris: update_strategy: max_surge and max_unavailable must not both be 0",
        ),
        (
            "update_strategy: {max_surge: 150%}",
            "cortexlite.yaml: iris: update_strategy: max_surge: expected a number of replicas or a percentage",
        ),
        ("compute: {cpu: lots}", "cortexlite.yaml: iris: compute: cpu: expected cores such as 0.5, 2 or 500m"),
        ("compute: {mem: 1GB}", "cortexlite.yaml: iris: compute: mem: expected a size such as 100M, 512Mi or 1Gi"),
        ("compute: {gpu: -1}", "cortexlite.yaml: iris: compute: gpu: must be >= 0 (got -1)"),
        ("compute: {inf: 1}", "cortexlite.yaml: iris: compute: inf: AWS Inferentia is not supported"),
        ("networking: {endpoint: 'a b'}", "cortexlite.yaml: iris: networking: endpoint: expected a URL path"),
        (
            "predictor: {type: onnx}",
            "cortexlite.yaml: iris: predictor: model_path: is required for an onnx predictor",
        ),
    ],
)
def test_section_errors(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, f"- name: iris\n  {section}\n")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Iris", "must be lower-case letters, digits and '-', start with a letter and not end with '-' (got 'Iris')"),
        ("iris-", "not end with '-'"),
        ("1iris", "start with a letter"),
        ("a" * 43, "must be at most 42 characters (got 43)"),
    ],
)
def test_names_are_dns_1035(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(SpecError, match=f"^cortexlite.yaml: .*: name: .*{message[:20]}"):
        _load(tmp_path, f"- name: '{name}'\n")
    assert ApiSpec(name="a" * 42).name == "a" * 42


def test_names_and_endpoints_are_unique(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^cortexlite.yaml: iris: name: must be unique \(API #1 has it too\)"):
        _load(tmp_path, "- name: iris\n- name: iris\n")
    with pytest.raises(SpecError, match=r"^cortexlite.yaml: b: networking: endpoint: must be unique \(a uses /x"):
        _load(tmp_path, "- name: a\n  networking: {endpoint: /x}\n- name: b\n  networking: {endpoint: x}\n")


def test_cortex_keys_give_notices(tmp_path: Path) -> None:
    text = """
- name: iris
  endpoint: /old
  predictor: {type: python, path: predictor.py, model: models/}
  autoscaling: {workers_per_replica: 2}
  networking: {local_port: 8890, api_gateway: public}
  tracker: {model_type: classification}
"""
    notices: list[str] = []
    (api,) = _load(tmp_path, text, notices)
    assert api.endpoint == "/old" and api.predictor.processes_per_replica == 2
    assert notices == [
        "cortexlite.yaml: iris: endpoint: Cortex 0.15's spelling of networking.endpoint",
        "cortexlite.yaml: iris: tracker is ignored: Cortex's prediction tracking (the API's metrics are in /metrics)",
        "cortexlite.yaml: iris: predictor: model: Cortex 0.15's spelling of predictor.model_path",
        "cortexlite.yaml: iris: autoscaling: workers_per_replica: Cortex 0.15's spelling of "
        "predictor.processes_per_replica",
        "cortexlite.yaml: iris: networking: local_port is ignored: cortexlite serves every API through its gateway",
        "cortexlite.yaml: iris: networking: api_gateway is ignored: cortexlite serves every API through its gateway",
    ]
