"""Contract tests of the fake Nomad agent (`tests/fake_nomad.py`), through plain httpx.

They pin what the fake enforces, so that a test of cortexlite's Nomad client against it means something:
auth, methods, Go's decoder errors, the strict check, deployments, auto-revert, scaling, blocking
queries and framed logs, with bodies shaped like the recorded responses.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake_nomad import FakeNomad
from tests.nomad_schema import load_response, reference_request

TOKEN = "s3cret-token"
JOB = "iris"


@pytest.fixture
def nomad() -> Iterator[FakeNomad]:
    """A cluster with GPUs enough for the reference job (one per allocation) at every count these tests use."""
    with FakeNomad(token=TOKEN, gpus=8) as fake:
        yield fake


@pytest.fixture
def client(nomad: FakeNomad) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=nomad.url, headers={"X-Nomad-Token": TOKEN}, timeout=10) as http:
        yield http


def _register(client: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = client.post("/v1/jobs", json=body or reference_request())
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _updated(env_value: str) -> dict[str, Any]:
    """The reference request with a changed task env: a new version that needs a deployment."""
    body = reference_request()
    body["Job"]["TaskGroups"][0]["Tasks"][0]["Env"]["CORTEXLITE_REFRESH"] = env_value
    return body


def _wait_deployment(client: httpx.Client, status: str, timeout: float = 2.5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    index = 0
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/job/{JOB}/deployment", params={"index": index, "wait": "500ms"})
        index = int(answer.headers["X-Nomad-Index"])
        body = answer.json()
        if body is not None and body["Status"] == status:
            return dict(body)
    raise AssertionError(f"no deployment reached {status!r}")


def _frames(raw: bytes) -> list[dict[str, Any]]:
    decoder, text, position, frames = json.JSONDecoder(), raw.decode(), 0, []
    while position < len(text):
        frame, position = decoder.raw_decode(text, position)
        frames.append(frame)
    return frames


def test_contract_requests_need_the_acl_token(nomad: FakeNomad) -> None:
    without = httpx.get(f"{nomad.url}/v1/jobs")
    wrong = httpx.get(f"{nomad.url}/v1/jobs", headers={"X-Nomad-Token": "nope"})
    right = httpx.get(f"{nomad.url}/v1/jobs", headers={"X-Nomad-Token": TOKEN})
    assert (without.status_code, without.text, without.headers["Content-Type"].split(";")[0]) == (
        403, "Permission denied", "text/plain",
    )  # fmt: skip
    assert wrong.status_code == 403
    assert (right.status_code, right.json()) == (200, [])
    assert [r.headers.get("x-nomad-token") for r in nomad.requests] == [None, "nope", TOKEN]


def test_contract_unknown_paths_404_and_wrong_methods_405(client: httpx.Client) -> None:
    assert client.get("/v1/nope").status_code == 404
    assert client.delete("/v1/jobs").status_code == 405
    assert client.get("/v1/validate/job").status_code == 405
    assert client.post("/v1/job/iris/deployment").status_code == 405


def test_contract_namespace_and_region_are_honoured(nomad: FakeNomad, client: httpx.Client) -> None:
    _register(client)
    other = client.get(f"/v1/job/{JOB}", params={"namespace": "team-b"})
    assert (other.status_code, other.text) == (404, "job not found")
    assert client.get(f"/v1/job/{JOB}", params={"namespace": "default"}).status_code == 200
    region = client.get(f"/v1/job/{JOB}", params={"region": "mars"})
    assert (region.status_code, region.text) == (500, "No path to region")
    assert nomad.requests[-1].query == {"region": "mars"}


def test_contract_a_string_duration_is_a_400_with_gos_decoder_message(client: httpx.Client) -> None:
    body = reference_request()
    body["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["Interval"] = "5s"
    answer = client.post("/v1/jobs", json=body)
    assert (answer.status_code, answer.text) == (400, load_response("job-register-error-400")["body_text"])
    body["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["Interval"] = 5e9
    assert client.post("/v1/jobs", json=body).status_code == 400
    assert client.post("/v1/jobs", content=b"{not json").status_code == 400
    assert client.post("/v1/jobs", json={"Job": {"Name": "x"}}).text == "Job ID hasn't been provided"


def test_contract_register_preserves_counts_and_enforces_the_index(nomad: FakeNomad, client: httpx.Client) -> None:
    first = _register(client)
    body = _updated("1")
    body["Job"]["TaskGroups"][0]["Count"] = 5
    stale = client.post("/v1/jobs", json={**body, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"] - 1})
    assert stale.status_code == 500 and "conflicting job modify index" in stale.text
    _register(client, {**body, "PreserveCounts": True, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"]})
    job = client.get(f"/v1/job/{JOB}").json()
    assert (job["Version"], job["TaskGroups"][0]["Count"]) == (1, 2)
    assert nomad.jobs[JOB]["TaskGroups"][0]["Count"] == 5  # as sent
    _register(client, body)  # a count change only: a new version, no deployment
    assert client.get(f"/v1/job/{JOB}/deployment").json()["JobVersion"] == 1
    assert len(client.get(f"/v1/job/{JOB}/allocations").json()) == 5
    _wait_deployment(client, "successful")  # the rollout of version 1 ends; the count of version 2 holds
    allocs = client.get(f"/v1/job/{JOB}/allocations").json()
    assert sorted(a["Name"] for a in allocs) == [f"iris.api[{n}]" for n in range(5)]
    assert {a["JobVersion"] for a in allocs} == {2}
    assert client.post("/v1/jobs").text == "Request body is empty"


def test_contract_a_strict_violation_is_a_500_and_a_validation_error(client: httpx.Client) -> None:
    body = reference_request()
    body["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["port"] = ["http"]
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 500
    assert answer.text.startswith("fake-nomad strict check:")
    assert "Config.port: unknown key 'port'" in answer.text
    validated = client.post("/v1/validate/job", json={"Job": body["Job"]})
    assert validated.status_code == 200
    (error,) = validated.json()["ValidationErrors"]
    assert error.startswith("fake-nomad strict check: Job.TaskGroups[0].Tasks[0].Config.port")
    assert client.get(f"/v1/job/{JOB}").status_code == 404


def test_contract_validation_repeats_nomads_errors(client: httpx.Client) -> None:
    body = reference_request()
    body["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["Interval"] = 5
    body["Job"]["TaskGroups"][0]["Tasks"][0]["Driver"] = ""
    validated = client.post("/v1/validate/job", json={"Job": body["Job"]}).json()
    assert validated["Error"] == load_response("validate-job-invalid")["body"]["Error"]
    registered = client.post("/v1/jobs", json=body)
    assert (registered.status_code, registered.text) == (500, load_response("job-register-error-500")["body_text"])
    assert (
        client.post("/v1/validate/job", json=reference_request()).json() == load_response("validate-job-valid")["body"]
    )


def test_contract_a_deployment_runs_then_succeeds(nomad: FakeNomad, client: httpx.Client) -> None:
    nomad.set_alloc_address(JOB, 1, "127.0.0.9", 18888)
    nomad.script_deployment(JOB, "successful", after=0.6)
    registered = _register(client)
    assert registered["EvalID"] and registered["JobModifyIndex"] > 0
    running = client.get(f"/v1/job/{JOB}/deployment").json()
    assert (running["Status"], running["JobVersion"], running["TaskGroups"]["api"]["DesiredTotal"]) == ("running", 0, 2)
    done = _wait_deployment(client, "successful")
    assert done["TaskGroups"]["api"]["HealthyAllocs"] == 2
    allocs = client.get(f"/v1/job/{JOB}/allocations").json()
    assert sorted(a["Name"] for a in allocs) == ["iris.api[0]", "iris.api[1]"]
    assert all(a["ClientStatus"] == "running" and a["DeploymentStatus"]["Healthy"] for a in allocs)
    second = next(a for a in allocs if a["Name"] == "iris.api[1]")
    ports = client.get(f"/v1/allocation/{second['ID']}").json()["AllocatedResources"]["Shared"]["Ports"]
    assert ports == [{"Label": "http", "Value": 18888, "To": 8888, "HostIP": "127.0.0.9"}]
    job = client.get(f"/v1/job/{JOB}").json()
    assert (job["Version"], job["Stable"], job["Status"]) == (0, True, "running")
    assert nomad.jobs[JOB] == reference_request()["Job"]
    assert _register(client)["EvalID"] == ""  # unchanged: no new version, no evaluation


def test_contract_a_failed_deployment_auto_reverts(nomad: FakeNomad, client: httpx.Client) -> None:
    _register(client)
    _wait_deployment(client, "successful")
    oom = {"Type": "Terminated", "ExitCode": 137, "Details": {"oom_killed": "true", "exit_code": "137"}}
    nomad.script_deployment(JOB, "failed", after=0.1, failed_events=[oom])
    _register(client, _updated("1"))
    failed = _wait_deployment(client, "failed")
    assert failed["JobVersion"] == 1
    assert failed["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    job = client.get(f"/v1/job/{JOB}").json()
    assert job["Version"] == 2 and "CORTEXLITE_REFRESH" not in job["TaskGroups"][0]["Tasks"][0]["Env"]
    allocs = client.get(f"/v1/job/{JOB}/allocations").json()
    (broken,) = [a for a in allocs if a["ClientStatus"] == "failed"]
    assert (broken["JobVersion"], broken["DeploymentStatus"]["Healthy"]) == (1, False)
    (event,) = broken["TaskStates"]["predictor"]["Events"]
    assert (event["Type"], event["ExitCode"], event["Details"]["oom_killed"]) == ("Terminated", 137, "true")
    assert set(event) == set(load_response("allocation-read")["body"]["TaskStates"]["predictor"]["Events"][0])
    assert sorted(a["JobVersion"] for a in allocs if a["ClientStatus"] == "running") == [2, 2]


def test_contract_scaling_is_refused_during_a_deployment(nomad: FakeNomad, client: httpx.Client) -> None:
    nomad.script_deployment(JOB, "successful", after=0.6)
    _register(client)
    request = {"Count": 3, "Target": {"Group": "api"}, "Message": "autoscaler: 3 replicas"}
    refused = client.post(f"/v1/job/{JOB}/scale", json=request)
    assert (refused.status_code, refused.text) == (400, "job scaling blocked due to active deployment")
    _wait_deployment(client, "successful")
    accepted = client.post(f"/v1/job/{JOB}/scale", json=request)
    assert accepted.status_code == 200 and accepted.json()["EvalID"]
    status = client.get(f"/v1/job/{JOB}/scale").json()["TaskGroups"]["api"]
    assert (status["Desired"], status["Running"], status["Events"][0]["PreviousCount"]) == (3, 3, 2)
    assert client.get(f"/v1/job/{JOB}/deployment").json()["JobVersion"] == 0  # no deployment for a count
    assert client.post("/v1/job/nope/scale", json=request).status_code == 404


def test_contract_a_blocking_query_returns_on_change(nomad: FakeNomad, client: httpx.Client) -> None:
    nomad.script_deployment(JOB, "successful", after=0.4)
    _register(client)
    first = client.get(f"/v1/job/{JOB}/allocations")
    index = int(first.headers["X-Nomad-Index"])
    started = time.monotonic()
    changed = client.get(f"/v1/job/{JOB}/allocations", params={"index": index, "wait": "5s"})
    assert time.monotonic() - started < 2  # well before the 5s wait: the deployment's end woke it
    assert int(changed.headers["X-Nomad-Index"]) > index
    assert all(a["DeploymentStatus"]["Healthy"] for a in changed.json())  # only true once it ended
    started = time.monotonic()
    idle = client.get(f"/v1/job/{JOB}/deployment", params={"index": changed.headers["X-Nomad-Index"], "wait": "300ms"})
    assert 0.25 < time.monotonic() - started < 1.5 and idle.json()["Status"] == "successful"


def test_contract_logs_are_framed_and_followed(nomad: FakeNomad, client: httpx.Client) -> None:
    _register(client)
    alloc = client.get(f"/v1/job/{JOB}/allocations").json()[0]["ID"]
    nomad.add_log(JOB, "loading predictor\n")
    params = {"task": "predictor", "type": "stdout"}
    (frame,) = _frames(client.get(f"/v1/client/fs/logs/{alloc}", params=params).content)
    assert base64.b64decode(frame["Data"]) == b"loading predictor\n"
    assert (frame["Offset"], frame["File"]) == (18, "alloc/logs/predictor.stdout.0")
    assert client.get(f"/v1/client/fs/logs/{alloc}", params={**params, "plain": "true"}).text == "loading predictor\n"
    tail = client.get(f"/v1/client/fs/logs/{alloc}", params={**params, "origin": "end", "offset": "6", "plain": "true"})
    assert tail.text == "ictor\n"
    assert client.get(f"/v1/client/fs/logs/{alloc}", params={"task": "predictor"}).status_code == 400
    assert client.get("/v1/client/fs/logs/not-an-alloc", params=params).status_code == 404
    threading.Timer(0.2, nomad.add_log, (JOB, "ready\n")).start()
    received = b""
    with client.stream("GET", f"/v1/client/fs/logs/{alloc}", params={**params, "follow": "true"}) as stream:
        for chunk in stream.iter_bytes():
            received += chunk
            if b"{}" in received and received.count(b"Offset") == 2:
                break
    data = b"".join(base64.b64decode(f["Data"]) for f in _frames(received) if f)
    assert data == b"loading predictor\nready\n"


def test_contract_plan_without_gpus_is_unplaceable(client: httpx.Client) -> None:
    with FakeNomad() as bare, httpx.Client(base_url=bare.url) as no_gpus:
        plan = no_gpus.post(f"/v1/job/{JOB}/plan", json={**reference_request(), "Diff": True}).json()
    assert plan["FailedTGAllocs"]["api"]["ConstraintFiltered"] == {"missing devices": 1}
    assert plan["Annotations"]["DesiredTGUpdates"]["api"]["Place"] == 2
    assert plan["Diff"]["Type"] == "Added"
    _register(client)
    changed = _updated("2")
    plan = client.post(f"/v1/job/{JOB}/plan", json={**changed, "Diff": True}).json()
    updates = plan["Annotations"]["DesiredTGUpdates"]["api"]
    assert (updates["DestructiveUpdate"], updates["Ignore"]) == (1, 1)  # MaxParallel 1
    assert client.post(f"/v1/job/{JOB}/plan", json={**changed, "Diffs": True}).status_code == 500


def test_contract_plan_with_gpus_places_the_job() -> None:
    with FakeNomad(gpus=2) as nomad, httpx.Client(base_url=nomad.url) as client:
        plan = client.post(f"/v1/job/{JOB}/plan", json=reference_request()).json()
    assert (plan["FailedTGAllocs"], plan["Diff"]) == (None, None)


def test_contract_variables_and_stop_and_purge(nomad: FakeNomad, client: httpx.Client) -> None:
    path = "nomad/jobs/iris"
    stored = client.put(f"/v1/var/{path}", json={"Namespace": "default", "Path": path, "Items": {"key": "v"}}).json()
    assert (stored["Path"], stored["Items"], stored["ModifyIndex"] >= stored["CreateIndex"]) == (
        path,
        {"key": "v"},
        True,
    )
    assert client.get(f"/v1/var/{path}").json()["Items"] == {"key": "v"}
    assert nomad.variables == {path: {"key": "v"}}
    assert client.put("/v1/var/nomad/secrets", json={"Items": {"a": "b"}}).status_code == 400
    assert client.delete(f"/v1/var/{path}").status_code == 200
    assert client.get(f"/v1/var/{path}").status_code == 404
    _register(client)
    assert client.delete(f"/v1/job/{JOB}").json()["EvalID"]
    stopped = client.get(f"/v1/job/{JOB}").json()
    assert (stopped["Stop"], stopped["Status"]) == (True, "dead")
    assert client.get("/v1/jobs", params={"prefix": "ir", "meta": "true"}).json()[0]["Meta"]["cortexlite.api"] == "iris"
    client.delete(f"/v1/job/{JOB}", params={"purge": "true"})
    assert client.get(f"/v1/job/{JOB}").status_code == 404
    assert JOB not in nomad.jobs


def test_contract_a_job_without_gpus_to_run_on_is_blocked() -> None:
    """Registered anyway (as Nomad does): a blocked evaluation says why, and nothing is placed."""
    with FakeNomad() as bare, httpx.Client(base_url=bare.url, timeout=10) as client:
        assert client.post("/v1/jobs", json=reference_request()).status_code == 200
        evaluations = client.get(f"/v1/job/{JOB}/evaluations").json()
        blocked = [e for e in evaluations if e["Status"] == "blocked"]
        assert blocked and blocked[0]["FailedTGAllocs"]["api"]["ConstraintFiltered"] == {"missing devices": 1}
        assert blocked[0]["QueuedAllocations"] == {"api": 2}
        assert client.get(f"/v1/job/{JOB}/allocations").json() == []
        assert client.get(f"/v1/job/{JOB}/deployment").json()["Status"] == "running"
