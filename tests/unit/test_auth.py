"""API key checks (runtime auth.py), the key record (keys.py) and the environment's auth settings."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from cortexlite.environments import EnvironmentRequest, build_environment
from cortexlite.errors import EnvConfigError, NotFoundError
from cortexlite.gateway.config import GatewayLayout
from cortexlite.gateway.process import GatewayProcess
from cortexlite.keys import KeyStore, effective_auth, ring_relative
from cortexlite.state import EnvState
from cortexlite_runtime.auth import KeyRing, hash_key, parse_keys_file, presented_key
from cortexlite_runtime.spec import ApiSpec


def _ring_file(path: Path, valid: list[str], revoked: tuple[str, ...] = ()) -> None:
    entries = [{"id": k[:4], "sha256": hash_key(k), "revoked": False} for k in valid]
    entries += [{"id": k[:4], "sha256": hash_key(k), "revoked": True} for k in revoked]
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps({"keys": entries}))
    staged.replace(path)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),
        ([(b"authorization", b"Bearer nope")], 401),
        ([(b"authorization", b"Basic good")], 401),
        ([(b"authorization", b"Bearer good")], None),
        ([(b"authorization", b"bearer  good")], None),
        ([(b"x-api-key", b"good")], None),
        ([(b"x-api-key", b"old")], 403),
        ([(b"x-api-key", b"g" * 10_000)], 401),
        ([(b"x-api-key", b"\xff\xfe")], 401),
    ],
)
def test_a_request_passes_only_with_a_valid_key(
    tmp_path: Path, headers: list[tuple[bytes, bytes]], status: int | None
) -> None:
    path = tmp_path / "ring.json"
    _ring_file(path, ["good"], ["old"])
    denial = KeyRing(path).check(headers)
    assert (denial.status if denial else None) == status


def test_a_new_key_is_valid_at_once_and_a_revocation_applies_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    _ring_file(path, ["first"])
    ring = KeyRing(path)
    assert ring.check([(b"x-api-key", b"first")]) is None
    time.sleep(0.06)
    _ring_file(path, ["first", "second"])
    assert ring.check([(b"x-api-key", b"second")]) is None  # an unknown key re-reads the file
    _ring_file(path, ["second"], ["first"])
    deadline = time.monotonic() + 1.5
    while ring.check([(b"x-api-key", b"first")]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    denial = ring.check([(b"x-api-key", b"first")])
    assert denial is not None and denial.status == 403


def test_a_broken_ring_file_keeps_the_previous_keys(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    _ring_file(path, ["good"])
    ring = KeyRing(path)
    path.write_text("{not json")
    os.utime(path, ns=(1, 1))
    ring._refresh(force=True)
    assert ring.check([(b"x-api-key", b"good")]) is None and ring.error is not None
    assert KeyRing(tmp_path / "missing.json").check([(b"x-api-key", b"good")]) is not None
    with pytest.raises(ValueError, match="sha256"):
        parse_keys_file(b'{"keys": [{"id": "x"}]}')
    assert presented_key([(b"authorization", b"Token abc")]) is None


def test_the_key_record_stores_hashes_scopes_and_revocations(tmp_path: Path) -> None:
    state = EnvState(tmp_path, "local")
    store = KeyStore.of(state)
    one = store.create("iris", "billing")
    every = store.create(None)
    assert one.key.startswith("clk_") and len(one.key) > 40 and one.key != every.key
    record = tmp_path / "envs" / "local" / "keys.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert one.key not in record.read_text()
    iris = json.loads((tmp_path / ring_relative("local", "iris")).read_text())
    assert {entry["sha256"] for entry in iris["keys"]} == {hash_key(one.key), hash_key(every.key)}
    store.publish("text")  # an API deployed later gets the environment-wide keys
    text = json.loads((tmp_path / ring_relative("local", "text")).read_text())
    assert [entry["sha256"] for entry in text["keys"]] == [hash_key(every.key)]
    assert store.revoke(one.record.id).revoked_at is not None
    assert [
        entry["revoked"] for entry in json.loads((tmp_path / ring_relative("local", "iris")).read_text())["keys"]
    ] == [True, False]
    assert "sha256" not in json.dumps([key.public() for key in store.entries()])
    with pytest.raises(NotFoundError, match="no API key"):
        store.revoke("00000000")
    with pytest.raises(NotFoundError, match="for API text"):
        store.revoke(one.record.id, api="text")  # an iris key does not open text


def test_auth_defaults_and_the_gateway_bind() -> None:
    guarded = ApiSpec.model_validate({"name": "a", "networking": {"auth": "api_key"}})
    plain = ApiSpec.model_validate({"name": "a"})
    assert effective_auth(plain, None) == "none" and effective_auth(plain, "api_key") == "api_key"
    assert effective_auth(guarded, None) == "api_key"
    assert effective_auth(ApiSpec.model_validate({"name": "a", "networking": {"auth": "none"}}), "api_key") == "none"
    assert ApiSpec.model_validate({"name": "a", "networking": {"timeout": "2s"}}).networking.timeout == 2.0
    local = build_environment(EnvironmentRequest(name="dev"))
    assert local.gateway_bind == "127.0.0.1" and not local.exposed_without_auth
    exposed = build_environment(EnvironmentRequest(name="lan", gateway_listen="0.0.0.0"))
    assert exposed.gateway_bind == "0.0.0.0" and exposed.exposed_without_auth
    assert not build_environment(
        EnvironmentRequest(name="lan", gateway_listen="0.0.0.0", auth="api_key")
    ).exposed_without_auth
    with pytest.raises(EnvConfigError, match="IP address"):
        build_environment(EnvironmentRequest(name="bad", gateway_listen="everywhere"))
    with pytest.raises(EnvConfigError, match="auth"):
        build_environment(EnvironmentRequest(name="bad", auth="password"))
    saved = build_environment(EnvironmentRequest(name="dev")).model_copy(update={"api_keys": {"*": "clk_x"}})
    assert saved.api_key("iris") == "clk_x" and "clk_x" not in json.dumps(saved.public())


def test_the_process_gateway_listens_where_the_environment_says(tmp_path: Path) -> None:
    layout = GatewayLayout(tmp_path)
    assert "127.0.0.1:8888" in GatewayProcess(layout, 8888, 8889)._static
    wide = GatewayProcess(layout, 8888, 8889, bind="0.0.0.0")._static
    assert "0.0.0.0:8888" in wide and "127.0.0.1:8889" in wide  # the admin port stays on loopback
