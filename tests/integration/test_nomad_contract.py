"""Contract tests of the Nomad backend: no Nomad agent ran.

The CLI talks to an in-process fake agent (`tests/fake_nomad.py`) that enforces methods, paths, the
ACL token, the body shapes of Nomad's API (strictly, from its field map) and replays its recorded
response shapes. Everything else is real: the Docker engine builds the images, Debian's
docker-registry receives them, SeaweedFS stores the bundles, a real runtime serves the allocations'
addresses, and a real Traefik routes to them from the tags cortexlite rendered (its Nomad provider
reads the fake's service catalog).
"""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortexlite.environments import ConfigFile
from cortexlite.errors import NomadInvalid
from cortexlite.nomad.cluster import Cluster
from cortexlite.nomad.rollout import _register
from cortexlite.settings import Settings
from cortexlite_runtime.storage import Location, Storage
from tests.conftest import StartRuntime, make_project
from tests.fake_nomad import FakeNomad
from tests.fake_nomad_templates import TemplateRunner, task_env
from tests.integration.conftest import make_api_project
from tests.integration.nomad_env import (
    TOKEN,
    NomadEnv,
    Registry,
    TraefikOnFake,
    job_env,
    open_nomad_env,
)
from tests.integration.storage_server import FULL, SeaweedServer, make_certificates
from tests.nomad_schema import check_job_request

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

JOB = "cortexlite-answer"
JOB_PATH = f"/v1/job/{JOB}"
VARIABLE = "nomad/jobs/cortexlite-answer"


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad(token=TOKEN) as agent:
        yield agent


@pytest.fixture
def nomad_env(
    tmp_path: Path, fake: FakeNomad, registry: Registry, s3_server: SeaweedServer, docker_image_options: Path
) -> NomadEnv:
    return open_nomad_env(tmp_path, fake, registry, s3_server, docker_image_options, "nomad-bundles")


@pytest.fixture
def gateway(fake: FakeNomad, nomad_env: NomadEnv, tmp_path: Path) -> Iterator[TraefikOnFake]:
    """The environment's gateway, as its job would run it on a client (the job's arguments, its ports)."""
    traefik = TraefikOnFake(fake, tmp_path / "traefik.log", nomad_env.port, nomad_env.admin_port)
    try:
        yield traefik
    finally:
        traefik.stop()


def _no_secret(text: str) -> None:
    assert FULL.secret_key not in text, "the S3 secret key leaked"
    assert TOKEN not in text, "the Nomad token leaked"


def test_deploy_builds_pushes_ships_validates_and_registers(  # noqa: PLR0917 - fixtures
    nomad_env: NomadEnv, fake: FakeNomad, registry: Registry, s3_server: SeaweedServer, gateway: TraefikOnFake,
    start_runtime: StartRuntime, tmp_path: Path,
) -> None:  # fmt: skip
    env = nomad_env
    project = make_api_project(tmp_path / "project")

    # --dry-run: the job as it would be registered, secrets as references; nothing reaches Nomad but reads.
    dry = env.cli("deploy", str(project), "--dry-run", "-o", "json")
    _no_secret(dry.stdout + dry.stderr)
    plan = json.loads(dry.stdout)[0]["plan"]
    assert check_job_request(plan["job"]) == []
    assert plan["variable"]["items"]["AWS_SECRET_ACCESS_KEY"] == "<secret:AWS_SECRET_ACCESS_KEY>"
    assert {entry.method for entry in fake.requests} == {"GET"}

    # The replica Nomad would run: a real runtime serving the project, at the allocation's address.
    runtime = start_runtime(project)
    fake.set_alloc_address(JOB, 0, "127.0.0.1", runtime.port)
    fake.add_log(JOB, '{"time": "2026-12-05T10:00:00Z", "level": "INFO", "message": "predictor ready"}\n', "stderr")
    deployed = env.cli("deploy", str(project))
    _no_secret(deployed.stdout + deployed.stderr)
    assert "created answer: 1 replica(s)" in deployed.stdout, deployed.stdout

    # Validated before anything was registered; the secrets went to the job's Variable first (check-and-set).
    order = [
        f"{entry.method} {entry.path}" for entry in fake.requests
        if entry.path.startswith("/v1/var/") or (entry.method == "POST" and entry.body["Job"]["ID"] == JOB)
    ]  # fmt: skip
    assert order == ["POST /v1/validate/job", f"GET /v1/var/{VARIABLE}", f"PUT /v1/var/{VARIABLE}", "POST /v1/jobs"]
    assert env.requests("PUT", f"/v1/var/{VARIABLE}")[0].query.get("cas") == "0"
    assert all(entry.headers.get("x-nomad-token") == TOKEN for entry in fake.requests)
    registered = [entry.body for entry in env.requests("POST", "/v1/jobs") if entry.body["Job"]["ID"] == JOB]
    assert len(registered) == 1 and check_job_request(registered[0]) == []
    for entry in fake.requests:
        if not entry.path.startswith("/v1/var/"):
            _no_secret(json.dumps(entry.body))
    assert fake.variables[VARIABLE]["AWS_SECRET_ACCESS_KEY"] == FULL.secret_key

    # The image is in the registry under its content tag; the bundle is in storage where the job says.
    job = registered[0]["Job"]
    image = job["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
    assert image.startswith(f"{registry.address}/cortexlite/runtime:") and registry.has(image)
    bundle = Location.parse(job_env(job)["CORTEX_PROJECT_URI"])
    storage = Storage(s3_server.settings())
    try:
        assert storage.stat(bundle.bucket, bundle.key) is not None
    finally:
        storage.close()
    # The gateway job went first, with its own image pushed too.
    gateway_job = fake.jobs["cortexlite-gateway"]
    assert gateway_job["Type"] == "system" and registry.has(gateway_job["TaskGroups"][0]["Tasks"][0]["Config"]["image"])

    # A real Traefik routes the endpoint from the rendered tags, prefix stripped; `predict` goes through it.
    assert gateway.wait_routed("/answer").json() == {"answer": "v1"}
    (tmp_path / "payload.json").write_text("{}")
    assert json.loads(env.cli("predict", "answer", str(tmp_path / "payload.json")).stdout) == {"answer": "v1"}

    # Unchanged: nothing is registered again.
    again = env.cli("deploy", str(project))
    assert "answer is up to date" in again.stdout
    assert len([e for e in env.requests("POST", "/v1/jobs") if e.body["Job"]["ID"] == JOB]) == 1

    # get: status from the deployment and the allocations.
    views = json.loads(env.cli("get", "-o", "json").stdout)
    assert [(v["name"], v["status"], v["requested"], v["up_to_date"]) for v in views] == [("answer", "live", 1, 1)]
    assert views[0]["replicas"][0]["address"] == f"http://127.0.0.1:{runtime.port}"
    assert views[0]["requests"]["2XX"] >= 2, "traffic from the gateway's metrics (router cortexlite-answer@nomad)"

    # logs: the allocation's output through Nomad's log API.
    logs = env.cli("logs", "answer").stdout
    assert "predictor ready" in logs

    # delete: the job purged and its Variable removed.
    env.cli("delete", "answer")
    assert env.requests("DELETE", JOB_PATH)[-1].query.get("purge") == "true"
    assert VARIABLE not in fake.variables and JOB not in fake.jobs


def test_a_failed_update_reverts_and_shows_why(nomad_env: NomadEnv, fake: FakeNomad, tmp_path: Path) -> None:
    env = nomad_env
    project = make_api_project(tmp_path / "project")
    env.cli("deploy", str(project))
    assert fake.job(JOB)["Version"] == 0

    (project / "predictor.py").write_text(
        (project / "predictor.py").read_text().replace('ANSWER = "v1"', 'ANSWER = "v2"')
    )
    fake.add_log(JOB, "Traceback (most recent call last):\nImportError: no module named torch\n", "stderr")
    fake.script_deployment(
        JOB, "failed", after=0.5,
        failed_events=[{"Type": "Terminated", "DisplayMessage": "Exit Code: 1", "Details": {"exit_code": "1"}}],
    )  # fmt: skip
    failed = env.cli("deploy", str(project), check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    message = failed.stderr
    assert "the update failed" in message and "Nomad reverts to job version 0, which keeps serving" in message
    assert "event: Terminated: Exit Code: 1" in message
    assert "ImportError: no module named torch" in message
    assert "Traceback" not in message.split("\n")[0], "one paragraph first, details after"
    # Nomad reverted: the job runs version 0's task group again.
    assert job_env(fake.job(JOB))["CORTEX_PROJECT_URI"] == job_env(_first(env))["CORTEX_PROJECT_URI"]
    views = json.loads(env.cli("get", "-o", "json").stdout)
    assert views[0]["status"] == "live"


def _first(env: NomadEnv) -> dict[str, Any]:
    return next(e.body["Job"] for e in env.requests("POST", "/v1/jobs") if e.body["Job"]["ID"] == JOB)


def test_a_failed_create_leaves_nothing(nomad_env: NomadEnv, fake: FakeNomad, tmp_path: Path) -> None:
    env = nomad_env
    project = make_api_project(tmp_path / "project")
    fake.script_deployment(JOB, "failed", after=0.3)
    failed = env.cli("deploy", str(project), check=False)
    assert failed.returncode == 1
    assert "answer was not created (its job was removed)" in failed.stderr
    assert JOB not in fake.jobs and VARIABLE not in fake.variables
    missing = env.cli("get", "answer", check=False)
    assert missing.returncode == 1 and "no API named answer in environment prod" in missing.stderr

    # Left to Nomad (`--no-wait`), a replica the kernel killed for memory shows as such in `get`.
    oom = {"Type": "Terminated", "DisplayMessage": "Exit Code: 137, Exit Message: \"OOM Killed\"",
           "Details": {"exit_code": "137", "oom_killed": "true"}}  # fmt: skip
    fake.script_deployment(JOB, "failed", after=0.3, failed_events=[oom])
    env.cli("deploy", str(project), "--no-wait")
    time.sleep(1.5)
    view = json.loads(env.cli("get", "answer", "-o", "json").stdout)[0]
    assert view["status"] == "error (out of memory)", view
    assert "OOM Killed" in view["reason"] and view["up_to_date"] == 0


def test_plan_shows_unplaceable_gpus_and_registers_nothing(
    nomad_env: NomadEnv, fake: FakeNomad, tmp_path: Path
) -> None:
    env = nomad_env
    project = make_api_project(tmp_path / "project", yaml="- name: answer\n  compute: {gpu: 1, gpu_mem: 16Gi}\n")
    planned = env.cli("deploy", str(project), "--plan")
    assert "answer: place 1" in planned.stdout, planned.stdout
    assert "cannot place group api" in planned.stdout and "missing devices" in planned.stdout
    assert not env.requests("POST", "/v1/jobs") and not fake.variables
    submitted = env.requests("POST", f"{JOB_PATH}/plan")[0].body
    assert submitted["Diff"] is True and check_job_request({"Job": submitted["Job"]}) == []
    device = submitted["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"][0]
    assert device["Name"] == "nvidia/gpu" and device["Constraints"][0]["RTarget"] == "16384 MiB"


def test_nomads_errors_are_clear(nomad_env: NomadEnv, fake: FakeNomad, tmp_path: Path) -> None:
    env = nomad_env
    # 403: a wrong token.
    env.extra["NOMAD_TOKEN"] = "ignored: the environment defines one"
    config = ConfigFile(env.home)
    prod = config.get("prod")
    assert prod is not None
    config.put(prod.model_copy(update={"nomad_token": "wrong-token"}), replace=True)
    refused = env.cli("get", check=False)
    assert refused.returncode == 1 and "(403): ACL token not found" in refused.stderr
    assert "check the ACL token" in refused.stderr and "Traceback" not in refused.stderr
    config.put(prod, replace=True)
    # 404: an API that does not exist.
    missing = env.cli("logs", "nope", check=False)
    assert missing.returncode == 1 and "no API named nope" in missing.stderr
    # 500 with Nomad's validation text, and validate's errors, both before anything is registered.
    with Cluster.open(Settings.from_env(env.environ), prod) as cluster:
        bad = {"ID": "cortexlite-bad", "Type": "service", "TaskGroups": [{"Name": "api", "Tasks": [{"Name": "t"}]}]}
        with pytest.raises(NomadInvalid) as invalid:
            _register(cluster, "bad", bad, False, lambda _line: None, auth="none")
        assert "Missing task driver" in str(invalid.value) and "nothing was registered" in str(invalid.value)
        assert not [e for e in env.requests("POST", "/v1/jobs") if e.body["Job"]["ID"] == "cortexlite-bad"]
        with pytest.raises(NomadInvalid) as undecodable:
            task = {"Name": "t", "Driver": "docker", "Config": {"image": "x:1"}, "KillTimeout": "30s"}
            cluster.client.register({**bad, "TaskGroups": [{"Name": "api", "Tasks": [task]}]}, preserve_counts=False)
        assert undecodable.value.status == 400 and "cannot unmarshal string" in str(undecodable.value)
    # No agent at all.
    config.put(prod.model_copy(update={"nomad_addr": "http://127.0.0.1:9"}), replace=True)
    gone = env.cli("get", check=False)
    assert gone.returncode == 1 and "Nomad at http://127.0.0.1:9 did not answer" in gone.stderr


def test_the_operator_scales_through_nomad_and_waits_out_deployments(
    nomad_env: NomadEnv, fake: FakeNomad, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    """Load on the allocation's replica scales the job through Nomad's scale API; a scale refused while a
    deployment runs (400) is tried again at the next decision."""
    env = nomad_env
    yaml = (
        "- name: answer\n  predictor: {config: {release: 1}}\n"
        "  autoscaling: {min_replicas: 1, max_replicas: 4, target_replica_concurrency: 1, window: 10s,\n"
        "    upscale_stabilization_period: 0s, max_replica_concurrency: 16}\n"
    )
    project = make_project(tmp_path / "project", "slow", yaml)
    env.cli("deploy", str(project))
    runtime = start_runtime(project)
    fake.set_alloc_address(JOB, 0, "127.0.0.1", runtime.port)
    env.extra["CORTEXLITE_OPERATOR_INTERVAL"] = "1"
    operator = env.popen("operator")
    stop = threading.Event()
    load = [threading.Thread(target=_busy, args=(runtime.url, stop), daemon=True) for _ in range(4)]
    for thread in load:
        thread.start()
    try:
        first = _wait_for(lambda: env.requests("POST", f"{JOB_PATH}/scale"), 40, "the operator never scaled")[0]
        assert first.body["Target"] == {"Group": "api"} and first.body["Count"] == 2
        assert first.body["Meta"]["cortexlite.before"] == "1" and "cortexlite.input.avg_in_flight" in first.body["Meta"]
        view = json.loads(env.cli("get", "answer", "-o", "json").stdout)[0]
        assert (view["last_scaling"]["before"], view["last_scaling"]["after"]) == (1, 2)

        # An update runs for 6 s: the operator's scales are refused, then succeed once it has finished.
        (project / "cortexlite.yaml").write_text(yaml.replace("release: 1", "release: 2"))
        fake.script_deployment(JOB, "successful", after=6.0)
        env.cli("deploy", str(project), "--no-wait")
        _wait_for(lambda: fake.job(JOB)["TaskGroups"][0]["Count"] == 4, 40, "the operator never reached 4")
    finally:
        stop.set()
        for thread in load:
            thread.join(30)
        operator.terminate()
        output = operator.communicate(timeout=30)[0]
    assert "autoscaling event: answer 1 -> 2" in output, output
    refused = output.find("answer: a deployment is running; trying again at the next decision")
    assert 0 < refused < output.find("answer scaled to 4 replica(s) through Nomad"), output


def _busy(url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + 90  # bounded even if the test forgets to stop it
    with httpx.Client(timeout=30) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            client.post(f"{url}/predict", json={"seconds": 0.5})


def _wait_for(condition: Callable[[], Any], timeout: float, failure: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(failure)


def test_logs_follow_and_refresh(nomad_env: NomadEnv, fake: FakeNomad, tmp_path: Path) -> None:
    env = nomad_env
    project = make_api_project(tmp_path / "project")
    env.cli("deploy", str(project))
    follower = env.popen("logs", "answer", "-f", "--tail", "0")
    try:
        time.sleep(1.5)
        fake.add_log(JOB, '{"time": "2026-12-05T10:00:01Z", "level": "INFO", "message": "POST /predict 200"}\n')
        deadline = time.monotonic() + 15
        seen = ""
        assert follower.stdout is not None
        while time.monotonic() < deadline and "POST /predict 200" not in seen:
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                seen += follower.stdout.readline()
    finally:
        follower.terminate()
        follower.communicate(timeout=10)
    assert "POST /predict 200" in seen

    refreshed = env.cli("refresh", "answer")
    assert "answer refreshed" in refreshed.stdout
    last = [e.body for e in env.requests("POST", "/v1/jobs") if e.body["Job"]["ID"] == JOB][-1]
    assert last["PreserveCounts"] is True and "CORTEXLITE_REFRESH" in job_env(last["Job"])
    assert check_job_request(last) == []


def test_up_registers_the_gateway_and_operator_jobs_and_down_stops_them(
    nomad_env: NomadEnv, fake: FakeNomad, registry: Registry, tmp_path: Path
) -> None:
    env = nomad_env
    project = make_api_project(tmp_path / "project")
    up = env.cli("up", str(project))
    assert "answer is live at http://127.0.0.1:" in up.stdout, up.stdout
    for name, kind in (("cortexlite-gateway", "system"), ("cortexlite-operator", "service")):
        job = fake.jobs[name]
        assert job["Type"] == kind and job["Meta"]["cortexlite.env"] == "prod"
        image = job["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
        assert image.startswith(f"{registry.address}/cortexlite/") and registry.has(image), image
        assert check_job_request({"Job": job}) == []
    operator = fake.jobs["cortexlite-operator"]["TaskGroups"][0]["Tasks"][0]
    assert operator["Config"]["args"] == ["-e", "prod", "operator"]
    # Registered once: a second `up` finds them as they should be.
    env.cli("up", str(project))
    assert len([e for e in env.requests("POST", "/v1/jobs") if e.body["Job"]["ID"] == "cortexlite-operator"]) == 1

    down = env.cli("down")
    assert "prod is down (1 API(s) deleted)" in down.stdout
    assert "operator stopped" in down.stdout and "gateway stopped" in down.stdout
    assert not fake.jobs and not fake.variables


def test_tls_namespace_and_region_are_honoured(
    tmp_path: Path, registry: Registry, s3_server: SeaweedServer, docker_image_options: Path
) -> None:
    certificate, key = make_certificates(tmp_path / "certs")
    with FakeNomad(token=TOKEN, namespace="ml", region="cn-east", tls=(certificate, key)) as fake:
        env = open_nomad_env(tmp_path, fake, registry, s3_server, docker_image_options, "nomad-tls")
        config = ConfigFile(env.home)
        prod = config.get("prod")
        assert prod is not None and fake.url.startswith("https://")
        # Untrusted: a clear error, and no retries of a certificate that will not change.
        untrusted = env.cli("get", check=False)
        assert untrusted.returncode == 1 and "its TLS certificate is not trusted" in untrusted.stderr
        assert "--ca-cert" in untrusted.stderr and len(fake.requests) == 0
        trusted = prod.model_copy(
            update={
                "nomad_ca_cert": str(tmp_path / "certs" / "ca.pem"),
                "nomad_namespace": "ml",
                "nomad_region": "cn-east",
            }
        )
        config.put(trusted, replace=True)
        env.cli("deploy", str(make_api_project(tmp_path / "project")))
        assert fake.requests and all(
            (entry.query.get("namespace"), entry.query.get("region")) == ("ml", "cn-east") for entry in fake.requests
        )
        job = fake.jobs[JOB]
        assert (job["Namespace"], job["Region"]) == ("ml", "cn-east")
        variable = next(e.body for e in env.requests("PUT", f"/v1/var/{VARIABLE}"))
        assert variable["Namespace"] == "ml"
        assert json.loads(env.cli("get", "-o", "json").stdout)[0]["status"] == "live"
        env.cli("delete", "answer")


def test_gpus_no_client_has_are_compute_unavailable(nomad_env: NomadEnv, fake: FakeNomad, tmp_path: Path) -> None:
    """Nomad registers a job it cannot place and waits for capacity (a blocked evaluation): `deploy` says why
    within seconds instead of waiting out the progress deadline, and the previous version keeps serving."""
    env = nomad_env
    project = make_api_project(tmp_path / "project")
    env.cli("deploy", str(project))
    # An update that asks for a GPU on a cluster without any.
    (project / "cortexlite.yaml").write_text("- name: answer\n  compute: {gpu: 1}\n")
    started = time.monotonic()
    refused = env.cli("deploy", str(project), check=False)
    assert refused.returncode == 1 and time.monotonic() - started < 60
    assert "answer: compute unavailable: 1 replica(s) cannot be placed: missing devices" in refused.stderr
    assert "Nomad reverts to job version 0, which keeps serving" in refused.stderr
    (failing,) = [e for e in fake.requests if e.path.startswith("/v1/deployment/fail/")]
    assert failing.method == "POST" and failing.path.endswith(f"/{failing.body['DeploymentID']}")
    view = json.loads(env.cli("get", "-o", "json").stdout)[0]
    assert view["status"] == "live" and "Devices" not in json.dumps(fake.job(JOB)["TaskGroups"][0]["Tasks"][0])

    # A new API that cannot be placed at all is not created; `get` of a blocked one says why.
    (project / "cortexlite.yaml").write_text("- name: wide\n  compute: {gpu: 2}\n")
    env.cli("deploy", str(project), "--no-wait")
    blocked = json.loads(env.cli("get", "wide", "-o", "json").stdout)[0]
    assert blocked["status"] == "compute unavailable" and "missing devices" in blocked["reason"]
    env.cli("delete", "wide")
    refused = env.cli("deploy", str(project), check=False)
    assert refused.returncode == 1 and "wide was not created (its job was removed)" in refused.stderr
    assert "cortexlite-wide" not in fake.jobs


def test_api_keys_reach_replicas_through_the_jobs_variable(
    nomad_env: NomadEnv, fake: FakeNomad, gateway: TraefikOnFake, start_runtime: StartRuntime, tmp_path: Path
) -> None:
    """Keys on Nomad: the record and rings are Variables; the fake's template runner plays the Nomad client's."""
    env = nomad_env
    project = make_api_project(tmp_path / "project", yaml="- name: answer\n  networking:\n    auth: api_key\n")
    first = json.loads(env.cli("keys", "create", "--label", "ci", "--save", "-o", "json").stdout)
    deployed = env.cli("deploy", str(project))
    assert "created answer" in deployed.stdout and first["key"] not in deployed.stdout + deployed.stderr
    ring = json.loads(fake.variables[VARIABLE]["api_keys"])
    assert [key["id"] for key in ring["keys"]] == [first["id"]]
    assert fake.variables[VARIABLE]["AWS_SECRET_ACCESS_KEY"] == FULL.secret_key

    job = fake.job(JOB)
    assert job is not None and job["Meta"]["cortexlite.auth"] == "api_key"
    task_dir = tmp_path / "task"
    with TemplateRunner(fake, JOB, task_dir) as runner:
        wanted = ("CORTEXLITE_AUTH", "CORTEXLITE_API_KEYS")
        runtime = start_runtime(project, env={k: v for k, v in task_env(job, task_dir).items() if k in wanted})
        fake.set_alloc_address(JOB, 0, "127.0.0.1", runtime.port)
        assert gateway.wait_routed("/answer", headers={"X-Api-Key": first["key"]}).json() == {"answer": "v1"}
        refused = httpx.post(gateway.url("/answer"), json={}, timeout=5)
        assert refused.status_code == 401 and "API key is required" in refused.json()["error"]
        (tmp_path / "payload.json").write_text("{}")
        predicted = env.cli("predict", "answer", str(tmp_path / "payload.json"))  # the key saved by --save
        assert json.loads(predicted.stdout) == {"answer": "v1"}

        # Rotation: a new key for the API works through the gateway while the first still does; then revoke.
        second = json.loads(env.cli("keys", "create", "answer", "-o", "json").stdout)
        assert gateway.wait_routed("/answer", 10, {"Authorization": f"Bearer {second['key']}"}).status_code == 200
        assert httpx.post(gateway.url("/answer"), json={}, headers={"X-Api-Key": first["key"]}).status_code == 200
        env.cli("keys", "revoke", first["id"])
        deadline = time.monotonic() + 10
        while httpx.post(gateway.url("/answer"), json={}, headers={"X-Api-Key": first["key"]}).status_code != 403:
            assert time.monotonic() < deadline, "the revoked key was never refused"
            time.sleep(0.1)
        denied = env.cli("predict", "answer", str(tmp_path / "payload.json"), check=False)
        assert denied.returncode == 1 and "403" in denied.stderr and "Traceback" not in denied.stderr
        assert runner.errors == []
        now = fake.job(JOB)  # keys changed through the Variable alone: no new job version, no restart
        assert now is not None and now["Version"] == job["Version"]

    listed = json.loads(env.cli("keys", "list", "-o", "json").stdout)
    assert {(key["id"], key["status"]) for key in listed} == {(first["id"], "revoked"), (second["id"], "active")}
    for entry in fake.requests:  # only hashes ever left this machine
        text = json.dumps(entry.body)
        assert first["key"] not in text and second["key"] not in text
    assert "answer is up to date" in env.cli("deploy", str(project)).stdout
    env.cli("delete", "answer")
    assert VARIABLE not in fake.variables and "cortexlite/prod/api-keys" in fake.variables
