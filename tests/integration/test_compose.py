"""The compose stack of one GPU server (compose/): docker-compose 1.29 accepts it, and its gateway and
operator are the containers cortexlite itself would run for the same environment.

`docker-compose config` needs no engine. The other checks read the YAML, interpolated with the values
of `.env.example` the way compose does (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from cortexlite.environments import BackendKind, Environment, Network
from cortexlite.gateway.config import GatewayLayout
from cortexlite.gateway.container import (
    CONFIG_DIR,
    MANAGED_BY,
    GatewayPlan,
    gateway_container_config,
    gateway_static,
)
from cortexlite.operator_container import OperatorPlan, operator_container_config
from cortexlite.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose"
STACK = COMPOSE / "docker-compose.yml"
GPU = COMPOSE / "docker-compose.gpu.yml"
ENV_EXAMPLE = COMPOSE / ".env.example"
SOCKET = "/var/run/docker.sock"

# The keys docker-compose 1.29.2 accepts (its compose/config/compose_spec.json), where this stack has keys.
_TOP_KEYS = {"version", "services", "networks", "volumes", "secrets", "configs"}
_SERVICE_KEYS = {
    "blkio_config", "build", "cap_add", "cap_drop", "cgroup_parent", "command", "configs", "container_name",
    "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus",
    "cpuset", "credential_spec", "depends_on", "deploy", "device_cgroup_rules", "devices", "dns", "dns_opt",
    "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose", "extends", "external_links",
    "extra_hosts", "group_add", "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "links",
    "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "network_mode",
    "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "privileged",
    "profiles", "pull_policy", "read_only", "restart", "runtime", "scale", "secrets", "security_opt", "shm_size",
    "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "user",
    "userns_mode", "volumes", "volumes_from", "working_dir",
}  # fmt: skip
_NESTED_KEYS = {
    "healthcheck": {"disable", "interval", "retries", "start_period", "test", "timeout"},
    "logging": {"driver", "options"},
    "deploy": {
        "endpoint_mode", "labels", "mode", "placement", "replicas", "resources", "restart_policy", "rollback_config",
        "update_config",
    },
}  # fmt: skip
_NETWORK_KEYS = {"attachable", "driver", "driver_opts", "enable_ipv6", "external", "internal", "ipam", "labels", "name"}
_VOLUME_KEYS = {"driver", "driver_opts", "external", "labels", "name"}
_DEVICE_KEYS = {"capabilities", "count", "device_ids", "driver", "options"}
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[_A-Za-z][_A-Za-z0-9]*)(?:(?P<sep>:?[-?])(?P<arg>[^}]*))?\}")


# --- compose's own reading -------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines; comments and blank lines skipped (.env.example keeps comments on their own lines)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path}:{number}: expected KEY=VALUE, got {line!r}"
        assert " #" not in value, f"{path}:{number}: an inline comment would be part of the value in some parsers"
        values[key] = value
    return values


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution, applied to every string value (never to keys)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, sep, arg = match.group("name"), match.group("sep"), match.group("arg")
        found = env.get(name)
        if sep in (":?", "?") and (found is None or (sep == ":?" and not found)):
            raise AssertionError(f"{name} is required: {arg}")
        if sep == ":-" and not found:
            return str(arg)
        if sep == "-" and found is None:
            return str(arg)
        return found or ""

    return _VARIABLE.sub(one, value)


def load(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data if env is None else dict(interpolate(data, env))


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def stack(example: dict[str, str]) -> dict[str, Any]:
    return load(STACK, example)


def _used_variables() -> set[str]:
    text = STACK.read_text() + GPU.read_text()
    return {match.group("name") for match in _VARIABLE.finditer(text) if match.group("name")}


# --- docker-compose 1.29 --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_compose() -> str:
    """Debian's docker-compose (1.29), installed by scripts/install-system.sh when missing."""
    found = shutil.which("docker-compose")
    if found is not None:
        return found
    script = REPO / "scripts" / "install-system.sh"  # `make test` ran it already; this is for a bare pytest
    try:
        installed = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=100, check=False)
        why = installed.stderr.strip() or f"exit {installed.returncode}"
    except subprocess.TimeoutExpired:
        why = "it ran for more than 100 s"
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip(f"docker-compose is not installed and {script} could not install it: {why}")
    return found


def _compose(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    # Only .env.example's values: the test's own CORTEXLITE_* variables must not leak into the stack.
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    command = [binary, "--env-file", str(env_file), "--profile", "operator", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=environ)


@pytest.mark.parametrize("files", [[STACK], [STACK, GPU]], ids=["stack", "stack+gpu"])
def test_docker_compose_accepts_the_stack(docker_compose: str, tmp_path: Path, files: list[Path]) -> None:
    version = subprocess.run([docker_compose, "version", "--short"], capture_output=True, text=True, check=False)
    flags = [arg for path in files for arg in ("-f", str(path))]
    checked = _compose(docker_compose, tmp_path, *flags, "config", "-q")
    assert checked.returncode == 0, f"docker-compose {version.stdout.strip()} rejects {files}:\n{checked.stderr}"
    assert "WARNING" not in checked.stderr, checked.stderr


def test_the_gpu_override_becomes_the_operators_device_request(docker_compose: str, tmp_path: Path) -> None:
    rendered = _compose(docker_compose, tmp_path, "-f", str(STACK), "-f", str(GPU), "config")
    assert rendered.returncode == 0, rendered.stderr
    operator = yaml.safe_load(rendered.stdout)["services"]["operator"]
    assert operator["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["utility"]}
    ]
    assert operator["pid"] == "host" and operator["network_mode"] == "host"


# --- the stack, read as data ------------------------------------------------------------------------


def test_every_variable_is_in_the_env_example(example: dict[str, str]) -> None:
    assert _used_variables() - set(example) == set()
    assert {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "CORTEXLITE_ENV", "CORTEXLITE_HOME"} <= set(example)


def test_no_key_outside_compose_1_29s_schema() -> None:
    for path in (STACK, GPU):
        data = load(path)
        assert data["version"] == "2.4", f"{path}: a format docker-compose 1.29 and v2 both read"
        assert {key for key in data if not key.startswith("x-")} <= _TOP_KEYS, path
        for name, service in data["services"].items():
            assert set(service) <= _SERVICE_KEYS, f"{path}: service {name}: {set(service) - _SERVICE_KEYS}"
            for key, allowed in _NESTED_KEYS.items():
                assert set(service.get(key, {})) <= allowed, f"{path}: service {name}: {key}"
            reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
            for device in reservations.get("devices", []):
                assert set(device) <= _DEVICE_KEYS and "capabilities" in device, f"{path}: {name}: {device}"
            depends = service.get("depends_on", {})
            if isinstance(depends, dict):
                conditions = {item.get("condition") for item in depends.values()}
                assert conditions <= {None, "service_started", "service_healthy"}, f"{path}: {name}"
        for name, network in data.get("networks", {}).items():
            assert set(network or {}) <= _NETWORK_KEYS, f"{path}: network {name}"
        for name, volume in data.get("volumes", {}).items():
            assert set(volume or {}) <= _VOLUME_KEYS, f"{path}: volume {name}"


def test_minio_is_pinned_health_checked_and_keeps_its_data_in_a_named_volume(stack: dict[str, Any]) -> None:
    minio = stack["services"]["minio"]
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", minio["image"])
    assert minio["command"] == "server /data --console-address :9001"
    test = minio["healthcheck"]["test"]
    assert test == ["CMD", "mc", "ready", "local"] or "/minio/health/live" in " ".join(test)
    volume, _, target = minio["volumes"][0].partition(":")
    assert target == "/data" and volume in stack["volumes"], minio["volumes"]


def _published(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    published = []
    for port in service.get("ports", []):
        host_ip, host_port, container_port = str(port).split(":")
        published.append((host_ip, int(host_port), int(container_port)))
    return published


def test_every_published_port_binds_loopback_by_default(example: dict[str, str]) -> None:
    without_binds = {key: value for key, value in example.items() if not key.endswith("_BIND")}
    for env in (example, without_binds):  # the .env.example values, then the file's own defaults
        services = load(STACK, env)["services"]
        ports = [port for service in services.values() for port in _published(service)]
        assert len(ports) == 4 and {host_ip for host_ip, _, _ in ports} == {"127.0.0.1"}, ports


def test_the_gateway_is_the_one_cortexlite_would_run(stack: dict[str, Any], example: dict[str, str]) -> None:
    environment = Environment(name=example["CORTEXLITE_ENV"], backend=BackendKind.DOCKER, network=Network.BRIDGE)
    plan = GatewayPlan(
        env=environment.name, image=example["CORTEXLITE_GATEWAY_IMAGE"], network=Network.BRIDGE,
        port=environment.gateway_port, admin_port=environment.admin_port, labels={},
    )  # fmt: skip
    expected = gateway_container_config(plan)
    gateway = stack["services"]["gateway"]
    assert gateway["container_name"] == plan.name and gateway["image"] == plan.image
    assert gateway["labels"] == expected["Labels"] | {MANAGED_BY: "compose"}
    assert gateway["restart"] == expected["HostConfig"]["RestartPolicy"]["Name"]
    assert gateway["stop_grace_period"] == f"{expected['StopTimeout']}s"
    assert gateway["logging"]["options"] == expected["HostConfig"]["LogConfig"]["Config"]
    # The volume cortexlite writes routes into, under the name it would give it.
    (volume,) = [mount.split(":")[0] for mount in gateway["volumes"] if mount.split(":")[1] == CONFIG_DIR]
    assert stack["volumes"][volume]["name"] == plan.volume
    (network,) = gateway["networks"]
    assert stack["networks"][network]["name"] == plan.network_name
    # The ports cortexlite publishes (the environment's defaults: the .env.example values) and its Traefik config.
    bindings = {
        (binding["HostIp"], int(binding["HostPort"]), int(port.split("/")[0]))
        for port, (binding,) in expected["HostConfig"]["PortBindings"].items()
    }
    assert set(_published(gateway)) == bindings
    static = GatewayLayout(Path(CONFIG_DIR)).static_file
    assert f"./traefik.yml:{static}:ro" in gateway["volumes"]
    assert yaml.safe_load((COMPOSE / "traefik.yml").read_text()) == gateway_static(plan)
    assert f"--configfile={static}" in gateway["healthcheck"]["test"]


def test_the_operator_is_the_one_cortexlite_would_run(example: dict[str, str]) -> None:
    stack = load(STACK, example)
    gpu = load(GPU, example)
    settings = Settings.from_env({"CORTEXLITE_HOME": example["CORTEXLITE_HOME"]})
    plan = OperatorPlan(
        env=example["CORTEXLITE_ENV"], image=example["CORTEXLITE_OPERATOR_IMAGE"], settings=settings, labels={},
        socket=SOCKET, user=None, socket_group=None, gpus=True,
    )  # fmt: skip
    expected = operator_container_config(plan)
    operator = stack["services"]["operator"]
    assert operator["container_name"] == plan.name and operator["image"] == plan.image
    assert operator["command"] == expected["Cmd"]
    assert operator["pid"] == expected["HostConfig"]["PidMode"]
    assert operator["network_mode"] == expected["HostConfig"]["NetworkMode"]
    assert operator["restart"] == expected["HostConfig"]["RestartPolicy"]["Name"]
    assert operator["stop_grace_period"] == f"{expected['StopTimeout']}s"
    assert set(operator["volumes"]) == set(expected["HostConfig"]["Binds"])
    assert operator["environment"]["CORTEXLITE_HOME"] == str(settings.home)
    assert operator["labels"] == expected["Labels"] | {MANAGED_BY: "compose"}
    (device,) = gpu["services"]["operator"]["deploy"]["resources"]["reservations"]["devices"]
    (request,) = expected["HostConfig"]["DeviceRequests"]
    assert (device["driver"], -1 if device["count"] == "all" else device["count"], [device["capabilities"]]) == (
        request["Driver"],
        request["Count"],
        request["Capabilities"],
    )
