"""Nomad job rendering: every job is checked strictly against Nomad's API field map (no Nomad agent ran).

Nomad drops unknown keys without a word, so each rendered job goes through `tests/nomad_schema.py`
(unknown keys, case-only mismatches, non-integer durations, missing required fields, docker
`Config` keys), and then through the rules that decide whether an update can drop capacity.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cortexlite.nomad.job import (
    HEALTH_CHECK_INTERVAL_S,
    KEYS_PATH,
    KILL_TIMEOUT_S,
    RUNTIME_GRACE_PERIOD_S,
    RUNTIME_SHUTDOWN_DELAY_S,
    SPEC_PATH,
    TRAEFIK_REFRESH_S,
    JobSettings,
    NomadRelease,
    render_job,
)
from cortexlite.nomad.rollout import running_release
from cortexlite.nomad.system_jobs import render_gateway_job, render_operator_job
from cortexlite.project import load_project
from cortexlite.release import make_release
from cortexlite_runtime.spec import ApiSpec
from tests.nomad_schema import check_job, check_job_request

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.local:5000/cortexlite/runtime:0123456789ab"
BUNDLE = "s3://models/prod/bundles/" + "a" * 64 + ".zip"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzz#secret"
ACCESS_KEY = "AKIAEXAMPLEKEY42"
SETTINGS = JobSettings(
    env="prod",
    storage_env={"AWS_ENDPOINT_URL": "http://minio:9000", "AWS_DEFAULT_REGION": "us-east-1"},
    secret_names=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
)

# A matrix of spec options: every entry renders a job that must pass every check below.
SPECS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "one replica": {"autoscaling": {"min_replicas": 1, "max_replicas": 1}},
    "min equals max": {"autoscaling": {"min_replicas": 3, "max_replicas": 3}},
    "many replicas": {"autoscaling": {"min_replicas": 2, "max_replicas": 40, "init_replicas": 12}},
    "one gpu": {"compute": {"gpu": 1, "cpu": 2, "mem": "8Gi"}},
    "gpus with filters": {"compute": {"gpu": 2, "gpu_mem": "40Gi", "gpu_model": "A100-SXM4 (80GB)"}},
    "fractional cpu": {"compute": {"cpu": "500m", "mem": "300M"}},
    "batching": {"predictor": {"server_side_batching": {"max_batch_size": 32, "batch_interval": "50ms"}}},
    "processes": {"predictor": {"processes_per_replica": 4, "threads_per_process": 8}},
    "no surge": {"update_strategy": {"max_surge": 0, "max_unavailable": "50%"}},
    "no unavailability": {"update_strategy": {"max_surge": "100%", "max_unavailable": 0}},
    "absolute strategy": {"update_strategy": {"max_surge": 3, "max_unavailable": 2}},
    "root endpoint": {"networking": {"endpoint": "/"}},
    "deep endpoint": {"networking": {"endpoint": "/v2/models/iris"}},
    "config with braces": {"predictor": {"config": {"template": "{{ .secret }}", "nested": {"a": [1, 2]}}}},
    "onnx": {"predictor": {"type": "onnx", "model_path": "s3://models/iris/model.onnx"}},
}


def _api(name: str, extra: dict[str, Any]) -> ApiSpec:
    predictor = {"type": "python", "path": "predictor.py"} | extra.get("predictor", {})
    if predictor["type"] == "onnx":
        predictor.pop("path")
    return ApiSpec.model_validate({"name": name, **extra, "predictor": predictor})


def _render(api: ApiSpec, settings: JobSettings = SETTINGS, count: int | None = None) -> dict[str, Any]:
    release = make_release(api, "f" * 64, IMAGE)
    count = api.autoscaling.initial_replicas if count is None else count
    return render_job(NomadRelease(release, IMAGE, BUNDLE, count), settings)


def _group(job: dict[str, Any]) -> dict[str, Any]:
    return job["TaskGroups"][0]


def _task(job: dict[str, Any]) -> dict[str, Any]:
    return _group(job)["Tasks"][0]


@pytest.mark.parametrize("case", sorted(SPECS))
def test_every_spec_renders_a_strictly_valid_job(case: str) -> None:
    job = _render(_api("iris", SPECS[case]))
    assert check_job_request({"Job": job, "PreserveCounts": True}) == []


@pytest.mark.parametrize("case", sorted(SPECS))
def test_updates_keep_capacity_and_revert(case: str) -> None:
    api = _api("iris", SPECS[case])
    group = _group(_render(api))
    update = group["Update"]
    assert update["AutoRevert"] is True and update["AutoPromote"] is True and update["HealthCheck"] == "checks"
    # Nomad: AutoPromote needs canaries; MinHealthyTime < HealthyDeadline < ProgressDeadline.
    assert 1 <= update["Canary"] <= group["Count"]
    assert update["MaxParallel"] >= 1
    assert update["MinHealthyTime"] < update["HealthyDeadline"] < update["ProgressDeadline"]
    if api.update_strategy.max_unavailable == 0:
        assert update["Canary"] == group["Count"], "no unavailability: every replica gets a canary first"
    scaling = group["Scaling"]
    assert scaling["Min"] == api.autoscaling.min_replicas and scaling["Max"] == api.autoscaling.max_replicas
    assert scaling["Min"] <= group["Count"] <= scaling["Max"] and scaling["Enabled"] is True


def test_one_replica_updates_through_a_canary() -> None:
    update = _group(_render(_api("iris", SPECS["one replica"])))["Update"]
    assert (update["Canary"], update["MaxParallel"]) == (1, 1)


def test_strategy_maps_surge_to_canaries_and_unavailability_to_parallelism() -> None:
    update = _group(_render(_api("iris", SPECS["absolute strategy"]), count=10))["Update"]
    assert (update["Canary"], update["MaxParallel"]) == (3, 2)
    percent = _api("iris", {"update_strategy": {"max_surge": "25%", "max_unavailable": "25%"}})
    update = _group(_render(percent, count=8))["Update"]
    assert (update["Canary"], update["MaxParallel"]) == (2, 2)


def test_durations_are_integer_nanoseconds_with_safe_shutdown() -> None:
    job = _render(_api("iris", {}))
    group, task = _group(job), _task(job)
    check = group["Services"][0]["Checks"][0]
    assert check["Interval"] == HEALTH_CHECK_INTERVAL_S * 10**9 and check["Timeout"] >= 10**9
    # Out of routing (Traefik's refresh plus a health-check round) before SIGTERM; drained before SIGKILL.
    assert group["ShutdownDelay"] > (TRAEFIK_REFRESH_S + HEALTH_CHECK_INTERVAL_S) * 10**9
    assert task["KillTimeout"] == KILL_TIMEOUT_S * 10**9 <= 30 * 10**9  # Nomad clients cap it at 30 s
    assert RUNTIME_SHUTDOWN_DELAY_S + RUNTIME_GRACE_PERIOD_S < KILL_TIMEOUT_S
    assert task["Env"]["CORTEX_GRACE_PERIOD"] == str(RUNTIME_GRACE_PERIOD_S)

    def integers(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                integers(value, name)
        elif isinstance(node, list):
            for value in node:
                integers(value, key)
        elif key in ("Interval", "Timeout", "Delay", "KillTimeout", "ShutdownDelay") or key.endswith(
            ("Time", "Deadline")
        ):
            assert isinstance(node, int) and not isinstance(node, bool), f"{key}: {node!r}"

    integers(job)


def test_resources_default_to_one_core_and_a_gigabyte() -> None:
    resources = _task(_render(_api("iris", {})))["Resources"]
    assert resources == {"CPU": 2000, "MemoryMB": 1024}
    resources = _task(_render(_api("iris", SPECS["fractional cpu"]), JobSettings(env="e", cpu_mhz_per_core=3000)))[
        "Resources"
    ]
    assert resources == {"CPU": 1500, "MemoryMB": 287}


def test_gpus_become_nvidia_devices_with_constraints() -> None:
    assert "Devices" not in _task(_render(_api("iris", {})))["Resources"]
    assert _task(_render(_api("iris", SPECS["one gpu"])))["Resources"]["Devices"] == [
        {"Name": "nvidia/gpu", "Count": 1}
    ]
    device = _task(_render(_api("iris", SPECS["gpus with filters"])))["Resources"]["Devices"][0]
    assert device["Count"] == 2
    memory, model = device["Constraints"]
    assert memory == {"LTarget": "${device.attr.memory}", "RTarget": "40960 MiB", "Operand": ">="}
    assert model["LTarget"] == "${device.model}" and model["Operand"] == "regexp"
    assert re.search(model["RTarget"].removeprefix("(?i)"), "NVIDIA A100-SXM4 (80GB)")
    # The docker driver picks the NVIDIA runtime itself: Config.runtime must stay unset.
    assert "runtime" not in _task(_render(_api("iris", SPECS["one gpu"])))["Config"]


def test_traefik_routes_the_endpoint_with_its_prefix_stripped() -> None:
    service = _group(_render(_api("iris", SPECS["deep endpoint"])))["Services"][0]
    tags = set(service["Tags"])
    assert service["Provider"] == "nomad" and service["PortLabel"] == "http" and "cortexlite" in tags
    router = "traefik.http.routers.cortexlite-iris"
    assert f"{router}.rule=Path(`/v2/models/iris`) || PathPrefix(`/v2/models/iris/`)" in tags
    assert "traefik.http.middlewares.cortexlite-iris-strip.stripprefix.prefixes=/v2/models/iris" in tags
    assert f"{router}.middlewares=cortexlite-iris-strip,cortexlite-iris-retry" in tags
    assert "traefik.http.services.cortexlite-iris.loadbalancer.healthcheck.path=/readyz" in tags
    root = set(_group(_render(_api("iris", SPECS["root endpoint"])))["Services"][0]["Tags"])
    assert f"{router}.rule=PathPrefix(`/`)" in root and not any("stripprefix" in tag for tag in root)
    # Traefik drops a whole service over one tag key its version does not know: only long-standing keys.
    assert not any("retrynonidempotentmethod" in tag.lower() for tag in tags)


def test_the_runtime_gets_its_project_spec_and_port() -> None:
    api = _api("iris", SPECS["config with braces"])
    job = _render(api)
    task = _task(job)
    assert task["Driver"] == "docker"
    assert task["Config"] == {"image": IMAGE, "ports": ["http"], "security_opt": ["no-new-privileges"]}
    assert task["User"] == "10001:10001" and task["Env"]["HOME"] == "/tmp", "unprivileged, as Docker replicas"
    assert _group(job)["Networks"] == [{"DynamicPorts": [{"Label": "http", "To": 8888}]}]
    env = task["Env"]
    assert env["CORTEX_PROJECT_URI"] == BUNDLE and env["CORTEX_SERVING_PORT"] == "8888"
    assert env["CORTEX_API_SPEC"] == f"/{SPEC_PATH}"
    spec = next(t for t in task["Templates"] if t["DestPath"] == SPEC_PATH)
    # Written literally: the user's `{{` must not be read as a template.
    assert spec["LeftDelim"] not in spec["EmbeddedTmpl"] and spec["ChangeMode"] == "noop"
    resolved = json.loads(spec["EmbeddedTmpl"])
    assert ApiSpec.model_validate(resolved["api"]) == api
    assert job["Meta"]["cortexlite.spec"] == resolved["spec_hash"]


def test_secrets_are_references_to_the_jobs_variable() -> None:
    job = _render(_api("iris", {}))
    text = json.dumps(job)
    assert SECRET_KEY not in text and ACCESS_KEY not in text
    env = _task(job)["Env"]
    assert not set(env) & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    template = next(t for t in _task(job)["Templates"] if t.get("Envvars"))
    assert template["DestPath"].startswith("secrets/") and template["Perms"] == "0600"
    assert 'nomadVar "nomad/jobs/cortexlite-iris"' in template["EmbeddedTmpl"]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert f"{name}={{{{ .{name}.Value | toJSON }}}}" in template["EmbeddedTmpl"]


def test_a_private_ca_is_written_beside_the_spec() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB{{x}}\n-----END CERTIFICATE-----\n"
    settings = JobSettings(env="prod", ca_bundle=pem, storage_env={"AWS_CA_BUNDLE": "/local/cortexlite/s3-ca.pem"})
    job = _render(_api("iris", {}), settings)
    ca = next(t for t in _task(job)["Templates"] if t["DestPath"].endswith("s3-ca.pem"))
    assert ca["EmbeddedTmpl"] == pem and ca["LeftDelim"] not in pem
    assert _task(job)["Env"]["AWS_CA_BUNDLE"] == "/local/cortexlite/s3-ca.pem"
    assert check_job(job) == []


def test_namespace_region_and_datacenters() -> None:
    settings = JobSettings(env="prod", namespace="ml", region="cn-east", datacenters=("dc1", "dc2"))
    job = _render(_api("iris", {}), settings)
    assert (job["Namespace"], job["Region"], job["Datacenters"]) == ("ml", "cn-east", ["dc1", "dc2"])
    assert "Namespace" not in _render(_api("iris", {})) and _render(_api("iris", {}))["Datacenters"] == ["*"]


def test_meta_names_the_environment_api_and_versions() -> None:
    api = _api("iris", {})
    job = _render(api)
    release = make_release(api, "f" * 64, IMAGE)
    assert job["ID"] == job["Name"] == "cortexlite-iris" and job["Type"] == "service"
    assert job["Meta"] | {} == {
        "cortexlite.role": "api", "cortexlite.env": "prod", "cortexlite.api": "iris", "cortexlite.endpoint": "/iris",
        "cortexlite.spec": release.spec_hash, "cortexlite.version": release.version, "cortexlite.project": "f" * 64,
        "cortexlite.auth": "none",
    }  # fmt: skip


def test_refresh_changes_only_an_environment_variable() -> None:
    api = _api("iris", {})
    release = make_release(api, "f" * 64, IMAGE)
    plain = render_job(NomadRelease(release, IMAGE, BUNDLE, 1), SETTINGS)
    refreshed = render_job(NomadRelease(release, IMAGE, BUNDLE, 1, refresh="1700000000.000"), SETTINGS)
    assert _task(refreshed)["Env"].pop("CORTEXLITE_REFRESH") == "1700000000.000"
    assert refreshed == plain


@pytest.mark.parametrize("namespace", [None, "ml"])
def test_the_environments_own_jobs_are_strictly_valid(namespace: str | None) -> None:
    settings = JobSettings(env="prod", namespace=namespace)
    gateway = render_gateway_job(settings, "cortexlite/gateway:0123456789ab", 8888, 8889)
    operator = render_operator_job(settings, "cortexlite/operator:0123456789ab", 10.0)
    for job in (gateway, operator):
        assert check_job_request({"Job": job}) == []
        assert job["Meta"]["cortexlite.env"] == "prod" and len(job["Meta"]["cortexlite.spec"]) == 12
    assert gateway["Type"] == "system"
    args = gateway["TaskGroups"][0]["Tasks"][0]["Config"]["args"]
    assert f"--providers.nomad.refreshInterval={TRAEFIK_REFRESH_S}s" in args
    assert "--providers.nomad.exposedByDefault=false" in args
    assert ("--providers.nomad.namespaces=ml" in args) is (namespace == "ml")
    assert operator["TaskGroups"][0]["Tasks"][0]["Config"]["args"] == ["-e", "prod", "operator"]


def test_every_example_renders_a_valid_job() -> None:
    examples = sorted(path.parent for path in (REPO / "examples").glob("*/cortex*.yaml"))
    assert examples
    for directory in examples:
        project = load_project(directory)
        for api in project.apis:
            release = make_release(api, project.code_hash, IMAGE)
            job = render_job(NomadRelease(release, IMAGE, BUNDLE, api.autoscaling.initial_replicas), SETTINGS)
            assert check_job_request({"Job": job}) == [], directory.name


@pytest.mark.parametrize("case", sorted(SPECS))
def test_a_rendered_job_reads_back_as_the_release_it_runs(case: str) -> None:
    """`refresh` and the operator read the job back instead of keeping state on this machine."""
    api = _api("iris", SPECS[case])
    running = running_release(_render(api, count=2))
    assert running is not None
    assert running.release == make_release(api, "f" * 64, IMAGE)
    assert (running.image, running.project_uri, running.count) == (IMAGE, BUNDLE, 2)
    assert running_release({"ID": "other", "TaskGroups": [{"Name": "x", "Tasks": [{"Name": "t"}]}]}) is None


@pytest.mark.parametrize(
    ("spec_auth", "env_auth", "expected"),
    [(None, None, "none"), ("api_key", None, "api_key"), (None, "api_key", "api_key"), ("none", "api_key", "none")],
)
def test_api_keys_are_a_ring_rendered_from_the_jobs_variable(
    spec_auth: str | None, env_auth: str | None, expected: str
) -> None:
    extra = {"networking": {"auth": spec_auth}} if spec_auth else {}
    settings = JobSettings(**{**SETTINGS.__dict__, "auth": env_auth})
    job = _render(_api("iris", extra), settings)
    task = _task(job)
    assert check_job(job) == [] and job["Meta"]["cortexlite.auth"] == expected
    assert task["Env"]["CORTEXLITE_AUTH"] == expected
    rings = [t for t in task["Templates"] if t["DestPath"] == KEYS_PATH]
    if expected == "none":
        assert not rings and "CORTEXLITE_API_KEYS" not in task["Env"]
        return
    (ring,) = rings
    assert ring["EmbeddedTmpl"] == '{{ with nomadVar "nomad/jobs/cortexlite-iris" }}{{ .api_keys.Value }}{{ end }}\n'
    # Rewritten in place when keys change, never a restart; readable only by the replica's user.
    assert (ring["ChangeMode"], ring["Perms"], ring["Uid"], ring["Gid"]) == ("noop", "0600", 10001, 10001)
    assert task["Env"]["CORTEXLITE_API_KEYS"] == "${NOMAD_SECRETS_DIR}/cortexlite-api-keys.json"
    assert KEYS_PATH.startswith("secrets/")
