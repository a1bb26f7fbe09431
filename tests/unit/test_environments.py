"""Environments: `env add`'s flags validated, config.yaml round trips, and the built-in `local`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cortexlite.environments import (
    DEFAULT_GATEWAY_PORT,
    LOCAL,
    BackendKind,
    ConfigFile,
    Environment,
    EnvironmentRequest,
    Network,
    build_environment,
    resolve_environment,
)
from cortexlite.errors import EnvConfigError


@pytest.mark.parametrize(
    ("request_", "backend", "network"),
    [
        (
            EnvironmentRequest(name="box", docker_host="ssh://ops@gpu1", storage="s3://bkt/p"),
            BackendKind.DOCKER,
            Network.BRIDGE,
        ),
        (EnvironmentRequest(name="box", docker_host="unix:///var/run/docker.sock"), BackendKind.DOCKER, Network.BRIDGE),
        (
            EnvironmentRequest(name="box", docker_host="tcp://10.0.0.2:2375", storage="s3://bkt/p"),
            BackendKind.DOCKER,
            Network.BRIDGE,
        ),
        (
            EnvironmentRequest(name="box", docker_host="ssh://ops@gpu1", network=Network.HOST, storage="s3://bkt/p"),
            BackendKind.DOCKER,
            Network.HOST,
        ),
        (EnvironmentRequest(name="box", backend=BackendKind.DOCKER), BackendKind.DOCKER, Network.BRIDGE),
        (EnvironmentRequest(name="box", nomad_addr="http://nomad:4646", storage="s3://bkt/p"), BackendKind.NOMAD, None),
        (
            EnvironmentRequest(
                name="box", backend=BackendKind.NOMAD, nomad_addr="https://nomad:4646", storage="s3://bkt/p"
            ),
            BackendKind.NOMAD,
            None,
        ),
        (
            EnvironmentRequest(
                name="box", nomad_addr="http://n:4646", storage="s3://bkt/p", nomad={"registry": "r:5000"}
            ),
            BackendKind.NOMAD,
            None,
        ),
        (EnvironmentRequest(name="box"), BackendKind.PROCESS, None),
        (EnvironmentRequest(name="box", backend=BackendKind.PROCESS), BackendKind.PROCESS, None),
    ],
)
def test_backend_is_inferred(request_: EnvironmentRequest, backend: BackendKind, network: Network | None) -> None:
    environment = build_environment(request_)
    assert (environment.name, environment.backend, environment.network) == ("box", backend, network)


def test_nomad_addr_loses_its_trailing_slash() -> None:
    environment = build_environment(EnvironmentRequest(name="n", nomad_addr="http://nomad:4646/", storage="s3://bkt/p"))
    assert environment.nomad_addr == "http://nomad:4646"


@pytest.mark.parametrize(
    ("request_", "fragments"),
    [
        (
            EnvironmentRequest(name="x", docker_host="ssh://a", nomad_addr="http://n:4646"),
            ["--docker-host", "--nomad-addr", "conflict"],
        ),
        (
            EnvironmentRequest(name="x", backend=BackendKind.PROCESS, docker_host="ssh://a"),
            ["--backend process", "--docker-host", "docker"],
        ),
        (
            EnvironmentRequest(name="x", backend=BackendKind.DOCKER, nomad_addr="http://n:4646"),
            ["--backend docker", "--nomad-addr", "nomad"],
        ),
        (
            EnvironmentRequest(name="x", backend=BackendKind.NOMAD, docker_host="ssh://a"),
            ["--backend nomad", "--docker-host"],
        ),
    ],
)
def test_conflicting_flags(request_: EnvironmentRequest, fragments: list[str]) -> None:
    with pytest.raises(EnvConfigError) as caught:
        build_environment(request_)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("name", ["", "Local", "1box", "-box", "box_1", "box.1", "a" * 33, "gpu box"])
def test_bad_names(name: str) -> None:
    with pytest.raises(EnvConfigError, match="environment name"):
        build_environment(EnvironmentRequest(name=name))


@pytest.mark.parametrize("name", ["a", "gpu-box", "b2", "a" * 32])
def test_good_names(name: str) -> None:
    assert build_environment(EnvironmentRequest(name=name)).name == name


@pytest.mark.parametrize(
    ("request_", "fragments"),
    [
        (EnvironmentRequest(name="x", docker_host="http://gpu1:2375"), ["--docker-host", "'http://gpu1:2375'"]),
        (EnvironmentRequest(name="x", docker_host="gpu1"), ["--docker-host", "'gpu1'"]),
        (EnvironmentRequest(name="x", backend=BackendKind.NOMAD, storage="s3://bkt/p"), ["needs --nomad-addr"]),
        (EnvironmentRequest(name="x", nomad_addr="http://nomad:4646"), ["--storage s3://bucket/prefix"]),
        (
            EnvironmentRequest(name="x", nomad_addr="http://n:4646", storage="s3://bkt/p", nomad={"registry": "a b"}),
            ["--registry", "host[:port]"],
        ),
        (
            EnvironmentRequest(name="x", nomad_addr="http://n:4646", storage="s3://bkt/p", nomad={"namespace": 3}),
            ["--namespace"],
        ),
        (
            EnvironmentRequest(
                name="x", nomad_addr="http://n:4646", storage="s3://bkt/p", nomad={"cpu_mhz_per_core": 10}
            ),
            ["--cpu-mhz-per-core"],
        ),
        (
            EnvironmentRequest(name="x", backend=BackendKind.PROCESS, nomad={"registry": "r:5000"}),
            ["--backend process conflicts with --registry"],
        ),
        (EnvironmentRequest(name="x", nomad_addr="nomad:4646"), ["--nomad-addr", "http://nomad:4646"]),
        (EnvironmentRequest(name="x", storage="gs://bucket/p"), ["--storage", "s3://bucket/prefix"]),
        (EnvironmentRequest(name="x", storage="s3://"), ["--storage"]),
        (EnvironmentRequest(name="x", storage="s3://UPPER/p"), ["--storage"]),
        (EnvironmentRequest(name="x", storage="/local/dir"), ["--storage"]),
        (EnvironmentRequest(name="x", gateway_port=0), ["--gateway-port"]),
        (EnvironmentRequest(name="x", gateway_port=70000), ["--gateway-port"]),
        (EnvironmentRequest(name="x", gateway_admin_port=70000), ["--gateway-admin-port"]),
        (EnvironmentRequest(name="x", gateway_port=9000, gateway_admin_port=9000), ["must differ", "9000"]),
        (EnvironmentRequest(name="x", gateway_admin_port=DEFAULT_GATEWAY_PORT), ["must differ"]),
        (EnvironmentRequest(name="x", network=Network.BRIDGE), ["network", "not process"]),
        (EnvironmentRequest(name="x", backend=BackendKind.PROCESS, network=Network.HOST), ["not process"]),
        (EnvironmentRequest(name="x", nomad_addr="http://n:4646", network=Network.HOST), ["not nomad"]),
    ],
)
def test_invalid_values_name_the_flag(request_: EnvironmentRequest, fragments: list[str]) -> None:
    with pytest.raises(EnvConfigError) as caught:
        build_environment(request_)
    message = str(caught.value)
    assert message.startswith("environment x: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "storage",
    ["s3://models", "s3://models/cortexlite", "s3://my.bucket-1/a/b/", "oss://models/prefix", "oss://abc"],
)
def test_storage_urls(storage: str) -> None:
    assert build_environment(EnvironmentRequest(name="x", storage=storage)).storage == storage


@pytest.mark.parametrize(
    ("gateway_port", "admin_port", "expected_gateway", "expected_admin"),
    [
        (None, None, DEFAULT_GATEWAY_PORT, DEFAULT_GATEWAY_PORT + 1),
        (9000, None, 9000, 9001),
        (9000, 7000, 9000, 7000),
        (None, 7000, DEFAULT_GATEWAY_PORT, 7000),
        (65535, None, 65535, 65534),
    ],
)
def test_admin_port(
    gateway_port: int | None, admin_port: int | None, expected_gateway: int, expected_admin: int
) -> None:
    request_ = EnvironmentRequest(name="x", gateway_port=gateway_port, gateway_admin_port=admin_port)
    environment = build_environment(request_)
    assert (environment.gateway_port, environment.admin_port) == (expected_gateway, expected_admin)
    assert environment.gateway_admin_port == admin_port


@pytest.mark.parametrize(
    ("environment", "where", "gateway"),
    [
        (Environment(name="l", backend=BackendKind.PROCESS), "this machine", "127.0.0.1"),
        (Environment(name="d", backend=BackendKind.DOCKER, docker_host="ssh://ops@gpu1"), "ssh://ops@gpu1", "gpu1"),
        (
            Environment(name="n", backend=BackendKind.NOMAD, nomad_addr="http://nomad:4646"),
            "http://nomad:4646",
            "nomad",  # Traefik runs on the clients: by default, the agent's host (`nomad agent -dev`)
        ),
        (
            Environment(name="n", backend=BackendKind.NOMAD, nomad_addr="http://nomad:4646", gateway_host="lb.corp"),
            "http://nomad:4646",
            "lb.corp",
        ),
    ],
)
def test_describe(environment: Environment, where: str, gateway: str) -> None:
    assert environment.describe() == f"{environment.backend.value} on {where}, gateway {gateway}:8888"


# config.yaml


def _docker() -> Environment:
    return build_environment(
        EnvironmentRequest(name="gpu-box", docker_host="ssh://ops@gpu1", storage="s3://models/cortexlite")
    )


def _nomad() -> Environment:
    return build_environment(
        EnvironmentRequest(name="cluster", nomad_addr="http://nomad:4646", gateway_port=9000, storage="s3://bkt/p")
    )


def test_empty_home(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    assert (config.environments(), config.current(), config.get("gpu-box")) == ({}, LOCAL, None)
    assert not config.path.exists()


def test_round_trip(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    docker, nomad = _docker(), _nomad()
    config.put(docker)
    config.put(nomad)
    assert config.get("gpu-box") == docker
    assert config.environments() == {"gpu-box": docker, "cluster": nomad}
    config.use("cluster")
    assert config.current() == "cluster"
    # A second reader (another command) sees the same file.
    again = ConfigFile(tmp_path)
    assert (again.current(), again.environments()) == ("cluster", {"gpu-box": docker, "cluster": nomad})
    config.remove("gpu-box")
    assert config.environments() == {"cluster": nomad}
    assert config.current() == "cluster"


def test_file_is_plain_yaml_without_defaults(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(_docker())
    config.use("gpu-box")
    assert yaml.safe_load(config.path.read_text()) == {
        "current": "gpu-box",
        "environments": {
            "gpu-box": {
                "backend": "docker",
                "docker_host": "ssh://ops@gpu1",
                "storage": "s3://models/cortexlite",
                "gateway_port": 8888,
                "network": "bridge",
            }
        },
    }


def test_put_existing_needs_replace(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(_docker())
    moved = build_environment(
        EnvironmentRequest(name="gpu-box", docker_host="ssh://ops@gpu2", storage="s3://models/cortexlite")
    )
    with pytest.raises(EnvConfigError) as caught:
        config.put(moved)
    assert "gpu-box already exists" in str(caught.value) and str(config.path) in str(caught.value)
    assert config.get("gpu-box") == _docker()
    config.put(moved, replace=True)
    assert config.get("gpu-box") == moved


def test_use_unknown_lists_known(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(_docker())
    config.put(_nomad())
    with pytest.raises(EnvConfigError) as caught:
        config.use("nowhere")
    assert "no environment named nowhere (known: cluster, gpu-box, local)" in str(caught.value)
    assert config.current() == LOCAL


def test_use_local_needs_no_definition(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(_docker())
    config.use("gpu-box")
    config.use(LOCAL)
    assert config.current() == LOCAL


def test_remove_current_resets_to_local(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(_docker())
    config.use("gpu-box")
    config.remove("gpu-box")
    assert (config.current(), config.environments()) == (LOCAL, {})
    assert "current" not in (yaml.safe_load(config.path.read_text()) or {})


def test_remove_unknown(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    with pytest.raises(EnvConfigError) as caught:
        config.remove("gpu-box")
    assert "no environment named gpu-box" in str(caught.value) and str(config.path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("current: [local\n", "invalid YAML"),
        ("environments: {a: b\n", "invalid YAML"),
        ("\tcurrent: local\n", "invalid YAML"),
        ("- local\n- gpu\n", ""),
        ("just a string\n", ""),
        ("current: 5\n", "current"),
        ("current: [a, b]\n", "current"),
        ("environments: [a, b]\n", "environments"),
        ("environments: {gpu: 3}\n", "environments: gpu"),
        ("environments: {gpu: null}\n", "environments: gpu"),
        ("envs: {}\n", "envs"),
        ("current: local\nextra: 1\n", "extra"),
    ],
)
def test_malformed_file_names_it(tmp_path: Path, text: str, fragment: str) -> None:
    config = ConfigFile(tmp_path)
    config.path.write_text(text)
    for operation in (config.current, config.environments, lambda: config.get("gpu"), lambda: config.use(LOCAL)):
        with pytest.raises(EnvConfigError) as caught:
            operation()
        assert str(caught.value).startswith(f"{config.path}: ")
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ({"backend": "kubernetes"}, "backend"),
        ({"backend": "docker", "colour": "blue"}, "colour"),
        ({"backend": "docker", "docker_host": "http://x"}, "docker_host"),
        ({"backend": "process", "gateway_port": "high"}, "gateway_port"),
        ({"backend": "process", "registry": "r:5000"}, "apply to the nomad backend"),
        ({}, "backend"),
    ],
)
def test_malformed_environment_names_file_and_environment(
    tmp_path: Path, definition: dict[str, object], fragment: str
) -> None:
    config = ConfigFile(tmp_path)
    config.path.write_text(yaml.safe_dump({"environments": {"gpu": definition}}))
    for operation in (config.environments, lambda: config.get("gpu")):
        with pytest.raises(EnvConfigError) as caught:
            operation()
        assert str(caught.value).startswith(f"{config.path}: environments: gpu: ")
        assert fragment in str(caught.value)


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.path.mkdir()
    with pytest.raises(EnvConfigError) as caught:
        config.current()
    assert str(caught.value).startswith(f"{config.path}: cannot read")


def test_non_utf8_file_names_it(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.path.write_bytes(b"current: \xff\xfe\n")
    with pytest.raises(EnvConfigError):
        config.current()


# resolve_environment


def test_local_resolves_to_process_once(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    environment, notice = resolve_environment(config, None)
    assert (environment.name, environment.backend) == (LOCAL, BackendKind.PROCESS)
    assert notice is not None and "process backend" in notice and str(config.path) in notice
    assert yaml.safe_load(config.path.read_text())["environments"] == {
        "local": {"backend": "process", "gateway_port": DEFAULT_GATEWAY_PORT}
    }
    again, second_notice = resolve_environment(config, LOCAL)
    assert (again, second_notice) == (environment, None)


def test_recorded_local_is_kept(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(build_environment(EnvironmentRequest(name=LOCAL, gateway_port=9100)))
    environment, notice = resolve_environment(config, None)
    assert (environment.gateway_port, notice) == (9100, None)


@pytest.mark.parametrize("by_name", [True, False])
def test_named_and_current(tmp_path: Path, by_name: bool) -> None:
    config = ConfigFile(tmp_path)
    config.put(_docker())
    if not by_name:
        config.use("gpu-box")
    environment, notice = resolve_environment(config, "gpu-box" if by_name else None)
    assert (environment, notice) == (_docker(), None)
    assert config.get(LOCAL) is None


def test_unknown_name(tmp_path: Path) -> None:
    config = ConfigFile(tmp_path)
    config.put(_nomad())
    with pytest.raises(EnvConfigError) as caught:
        resolve_environment(config, "nowhere")
    assert "no environment named nowhere (known: cluster, local)" in str(caught.value)
    assert "cortexlite env add" in str(caught.value)
    assert config.get(LOCAL) is None
