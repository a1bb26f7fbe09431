"""API keys on Nomad, against the in-process fake agent (no Nomad agent ran; `tests/fake_nomad.py`).

The record and the rings are Nomad Variables; the fake's template runner (`tests/fake_nomad_templates.py`,
a stand-in for a Nomad client's) renders the job's key template into a task directory, and the runtime's
real `KeyRing` reads what it rendered.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortexlite.environments import BackendKind, Environment
from cortexlite.errors import NotFoundError
from cortexlite.keys import KeyConflict, KeyStore
from cortexlite.nomad.cluster import Cluster
from cortexlite.nomad.job import KEYS_PATH, NomadRelease, render_job, variable_path
from cortexlite.nomad.keys import RING_ITEM, VariableKeys, record_path
from cortexlite.nomad.rollout import _register
from cortexlite.release import make_release
from cortexlite.settings import Settings
from cortexlite_runtime.auth import KeyRing
from cortexlite_runtime.spec import ApiSpec
from tests.fake_nomad import FakeNomad
from tests.fake_nomad_templates import TemplateError, TemplateRunner, render_template, task_env

TOKEN = "keys-token"
SECRET = "wJalrXUtnFEMI/K7MDENG#not-a-comment"


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad(token=TOKEN) as agent:
        yield agent


@pytest.fixture
def cluster(fake: FakeNomad, tmp_path: Path) -> Iterator[Cluster]:
    environment = Environment(
        name="prod", backend=BackendKind.NOMAD, nomad_addr=fake.url, nomad_token=TOKEN, storage="s3://models/prod",
        s3_endpoint="http://127.0.0.1:9", s3_access_key="AKIAKEYS", s3_secret_key=SECRET,
        registry="registry.local:5000",
    )  # fmt: skip
    with Cluster.open(Settings.from_env({"CORTEXLITE_HOME": str(tmp_path / "home")}), environment) as opened:
        yield opened


def _deploy(cluster: Cluster, name: str = "iris") -> dict[str, object]:
    """Register the API's job with networking.auth: api_key as a deploy does: its variable first, then the job."""
    api = ApiSpec.model_validate({"name": name, "predictor": {"type": "python", "path": "predictor.py"},
                                  "networking": {"auth": "api_key"}})  # fmt: skip
    release = make_release(api, "f" * 64, "registry.local:5000/cortexlite/runtime:0123456789ab")
    job = render_job(NomadRelease(release, release.runtime, "s3://models/prod/b.zip", 1), cluster.job_settings())
    _register(cluster, name, job, False, lambda _line: None, auth="api_key")
    return job


def test_keys_live_in_variables_and_reach_the_replica_through_its_template(
    fake: FakeNomad, cluster: Cluster, tmp_path: Path
) -> None:
    store = KeyStore(VariableKeys(cluster))
    early = store.create(None, "before the deploy")
    # The record is a variable of hashes; no job variable exists before the API's deploy.
    record = json.loads(fake.variables[record_path("prod")]["record"])
    assert [key["sha256"] for key in record["keys"]] and early.key not in json.dumps(record)
    assert variable_path("iris") not in fake.variables

    job = _deploy(cluster)
    items = fake.variables[variable_path("iris")]
    assert items["AWS_SECRET_ACCESS_KEY"] == SECRET, "the storage secrets beside the ring"
    assert [key["id"] for key in json.loads(items[RING_ITEM])["keys"]] == [early.record.id]
    assert early.key not in json.dumps(fake.requests[-1].body), "hashes only ever leave this machine"

    task_dir = tmp_path / "task"
    with TemplateRunner(fake, "cortexlite-iris", task_dir) as runner:
        env = task_env(job, task_dir)
        ring = KeyRing(Path(env["CORTEXLITE_API_KEYS"]))
        assert ring.path == task_dir / KEYS_PATH
        assert ring.check([(b"x-api-key", early.key.encode())]) is None
        assert (task_dir / KEYS_PATH).stat().st_mode & 0o777 == 0o600
        storage_file = (task_dir / "secrets/cortexlite-storage.env").read_text()
        assert f"AWS_SECRET_ACCESS_KEY={json.dumps(SECRET)}" in storage_file
        storage_written = (task_dir / "secrets/cortexlite-storage.env").stat().st_ino

        # A key made after the deploy: the ring in the job's variable changes, Nomad re-renders the file.
        late = KeyStore(VariableKeys(cluster)).create("iris")
        _until(lambda: ring.check([(b"authorization", f"Bearer {late.key}".encode())]) is None, "the new key works")
        assert ring.check([(b"x-api-key", early.key.encode())]) is None, "old and new are valid together"
        assert fake.variables[variable_path("iris")]["AWS_SECRET_ACCESS_KEY"] == SECRET, "other items kept"

        store.revoke(early.record.id)
        _until(lambda: getattr(ring.check([(b"x-api-key", early.key.encode())]), "status", 0) == 403, "revoked: 403")
        assert ring.check([(b"x-api-key", late.key.encode())]) is None
        # The storage template's output never changed, so it was never rewritten (its change_mode restarts the task).
        assert (task_dir / "secrets/cortexlite-storage.env").stat().st_ino == storage_written
        assert not runner.errors


def test_concurrent_key_commands_lose_nothing(fake: FakeNomad, cluster: Cluster) -> None:
    """Two machines creating keys at once: check-and-set on the record makes every one of them count."""
    _deploy(cluster)
    made: list[str] = []
    failures: list[BaseException] = []

    def machine() -> None:
        try:
            for _ in range(4):
                made.append(KeyStore(VariableKeys(cluster)).create("iris").record.id)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=machine) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    record = json.loads(fake.variables[record_path("prod")]["record"])
    assert sorted(key["id"] for key in record["keys"]) == sorted(made) and len(made) == 12
    ring = json.loads(fake.variables[variable_path("iris")][RING_ITEM])
    assert sorted(key["id"] for key in ring["keys"]) == sorted(made), "the last ring written has every key"


def test_a_stale_write_is_refused_and_retried(fake: FakeNomad, cluster: Cluster) -> None:
    slow, quick = VariableKeys(cluster), VariableKeys(cluster)
    slow.read_record()  # nothing yet: index 0
    first = KeyStore(quick).create(None)
    with pytest.raises(KeyConflict, match="changed meanwhile"):
        slow.write_record(b'{"version": 1, "keys": []}')
    assert json.loads(fake.variables[record_path("prod")]["record"])["keys"][0]["id"] == first.record.id
    second = KeyStore(slow).create(None)  # reads again: both keys kept
    ids = [key.id for key in KeyStore(quick).entries()]
    assert ids == [first.record.id, second.record.id]
    puts = [entry for entry in fake.requests if entry.method == "PUT" and "api-keys" in entry.path]
    assert [entry.query.get("cas") for entry in puts][:2] == ["0", "0"], "create-only while there was none"


def test_unknown_keys_and_apis_are_clear_errors(cluster: Cluster) -> None:
    store = KeyStore(VariableKeys(cluster))
    with pytest.raises(NotFoundError, match="no API key deadbeef in environment prod"):
        store.revoke("deadbeef")
    assert store.entries() == []


def test_the_fake_template_runner_blocks_on_a_missing_variable_and_fails_on_a_missing_item() -> None:
    ring = {"EmbeddedTmpl": '{{ with nomadVar "nomad/jobs/x" }}{{ .api_keys.Value }}{{ end }}\n', "DestPath": "s"}
    assert render_template(ring, {}) is None
    assert render_template(ring, {"nomad/jobs/x": {"api_keys": '{"keys": []}'}}) == '{"keys": []}\n'
    with pytest.raises(TemplateError, match="nil pointer"):
        render_template(ring, {"nomad/jobs/x": {"other": "1"}})
    with pytest.raises(TemplateError, match="does not know"):
        render_template({"EmbeddedTmpl": "{{ env `HOME` }}", "DestPath": "s"}, {})


def _until(condition: object, what: str, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting: {what}")
