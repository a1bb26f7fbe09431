"""Remote Docker hosts as data: replicas without bind mounts, storage variables, gateway addresses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cortexlite.backends.container import ReplicaPlan, gpu_probe_config, replica_container_config
from cortexlite.bundles import replica_storage
from cortexlite.environments import BackendKind, Environment, EnvironmentRequest, Network, build_environment
from cortexlite.errors import DockerError, EnvConfigError
from cortexlite.gateway.container import GatewayPlan, gateway_container_config, gateway_static
from cortexlite.gpus import remote_inventory
from cortexlite.release import make_release
from cortexlite_runtime.spec import ApiSpec

URI = "s3://bundles/team/bundles/" + "a" * 64 + ".zip"


def _remote(**fields: object) -> Environment:
    values: dict[str, object] = {
        "name": "gpu1", "backend": BackendKind.DOCKER, "docker_host": "ssh://ops@gpu1.lan",
        "storage": "s3://bundles/team", "network": Network.BRIDGE, "s3_endpoint": "http://minio.lan:9000",
        "s3_access_key": "AKIA", "s3_secret_key": "very-secret",
    }  # fmt: skip
    return Environment.model_validate(values | fields)


def test_a_remote_replica_fetches_its_project_and_mounts_nothing_from_here() -> None:
    api = ApiSpec.model_validate({"name": "iris"})
    plan = ReplicaPlan(
        env="gpu1", replica_id="ab12cd", release=make_release(api, "p" * 12, "cortexlite/runtime:abc"),
        image="cortexlite/runtime:abc", snapshot=Path("/laptop/snapshots/s1"), spec_file=Path("/laptop/spec.json"),
        network=Network.BRIDGE, port=None, gpus=(), labels={}, created_at=1.0, project_uri=URI,
        extra_env={"AWS_ENDPOINT_URL": "http://minio.lan:9000"},
    )  # fmt: skip
    config = replica_container_config(plan)
    assert config["HostConfig"]["Binds"] == []
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["CORTEX_PROJECT_URI"] == URI and env["CORTEX_API_SPEC"] == "/mnt/spec/api.json"
    assert env["AWS_ENDPOINT_URL"] == "http://minio.lan:9000"
    local = replica_container_config(dataclasses.replace(plan, project_uri=None))
    assert "/laptop/snapshots/s1:/mnt/project:ro" in local["HostConfig"]["Binds"]


def test_replicas_get_the_standard_storage_variables_and_dry_runs_hide_the_secret() -> None:
    storage = replica_storage(_remote(s3_replica_endpoint="http://10.0.0.5:9000"), "/etc/cortexlite/s3-ca.pem")
    assert storage.env["AWS_ENDPOINT_URL"] == storage.env["AWS_ENDPOINT_URL_S3"] == "http://10.0.0.5:9000"
    assert storage.env["AWS_ACCESS_KEY_ID"] == "AKIA" and storage.env["AWS_SECRET_ACCESS_KEY"] == "very-secret"
    assert storage.env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert storage.env["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"
    assert storage.env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "very-secret" not in str(storage.shown)
    assert storage.shown["AWS_SECRET_ACCESS_KEY"] == "<secret:AWS_SECRET_ACCESS_KEY>"
    public = _remote().public()
    assert public["s3_secret_key"] == "<secret:s3_secret_key>" and "very-secret" not in str(public)


def test_an_environment_without_storage_settings_gives_replicas_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CORTEXLITE_S3_ENDPOINT", "CORTEXLITE_S3_ACCESS_KEY", "CORTEXLITE_S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    # AWS keys in the user's shell are not storage cortexlite was told about.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-from-the-shell")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shell-secret")
    plain = Environment(name="local", backend=BackendKind.PROCESS)
    assert replica_storage(plain).env == {}
    monkeypatch.setenv("CORTEXLITE_S3_ENDPOINT", "http://minio.lan:9000")
    told = replica_storage(plain).env
    assert told["AWS_ENDPOINT_URL"] == "http://minio.lan:9000" and told["AWS_ACCESS_KEY_ID"] == "AKIA-from-the-shell"


def test_a_remote_engine_needs_storage_and_its_gateway_answers_on_its_host() -> None:
    with pytest.raises(EnvConfigError, match="--storage s3://bucket/prefix"):
        build_environment(EnvironmentRequest(name="gpu1", docker_host="tcp://gpu1.lan:2376"))
    remote = _remote()
    assert remote.remote_docker and remote.gateway_address == "gpu1.lan" and remote.gateway_bind == "0.0.0.0"
    loopback = _remote(docker_host="tcp://127.0.0.1:2375")
    assert loopback.remote_docker and loopback.gateway_bind == "127.0.0.1"
    named = _remote(gateway_host="api.example.internal")
    assert named.gateway_address == "api.example.internal"
    local = Environment(name="box", backend=BackendKind.DOCKER, docker_host="unix:///var/run/docker.sock")
    assert not local.remote_docker and local.gateway_address == "127.0.0.1"


def test_a_gateway_reached_from_elsewhere_publishes_its_web_port_only() -> None:
    plan = GatewayPlan(
        env="gpu1", image="cortexlite/gateway:x", network=Network.BRIDGE, port=8888, admin_port=8889, labels={},
        bind="0.0.0.0",
    )  # fmt: skip
    bindings = gateway_container_config(plan)["HostConfig"]["PortBindings"]
    assert bindings["8888/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8888"}]
    assert bindings["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8889"}]
    host_mode = dataclasses.replace(plan, network=Network.HOST)
    static = gateway_static(host_mode)["entryPoints"]
    assert static["web"]["address"] == "0.0.0.0:8888" and static["traefik"]["address"] == "127.0.0.1:8889"
    assert plan.fingerprint != dataclasses.replace(plan, bind="127.0.0.1").fingerprint


def test_a_remote_gpu_inventory_is_read_from_a_short_lived_container() -> None:
    config = gpu_probe_config("cortexlite/runtime:abc", "gpu1", {"team": "ml"})
    assert config["Cmd"] == ["python", "-m", "cortexlite_runtime.gpu"]
    assert config["HostConfig"]["DeviceRequests"][0]["Capabilities"] == [["utility"]]
    assert config["HostConfig"]["NetworkMode"] == "none" and config["Labels"]["cortexlite.role"] == "gpus"
    text = (
        '[{"index": 0, "uuid": "GPU-1", "name": "H200", "memory_total_bytes": 1, "memory_used_bytes": 0, '
        '"utilization": 0.5}]'
    )
    found, note = remote_inventory(lambda: "noise\n" + text + "\n", None)
    assert [gpu.name for gpu in found] == ["H200"] and note is None

    def refused() -> str:
        raise DockerError('could not select device driver "nvidia" with capabilities: [[utility]]')

    none, why = remote_inventory(refused, None)
    assert none == [] and why is not None and "nvidia" in why


def test_transfer_progress_reports_quarters_above_one_mib_when_not_a_terminal() -> None:
    from cortexlite.bundles import transfer_progress

    lines: list[str] = []
    report = transfer_progress(lines.append, "uploading bundle abc", stream=object())
    report(0, 1000)
    report(1000, 1000)
    assert lines == [], "small transfers stay quiet"
    total = 8 * 2**20
    for done in range(0, total + 1, 2**20):
        report(done, total)
    assert lines == [
        "uploading bundle abc: 0 KiB of 8.0 MiB",
        "uploading bundle abc: 2.0 MiB of 8.0 MiB",
        "uploading bundle abc: 4.0 MiB of 8.0 MiB",
        "uploading bundle abc: 6.0 MiB of 8.0 MiB",
        "uploading bundle abc: 8.0 MiB of 8.0 MiB",
    ]
