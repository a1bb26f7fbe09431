"""The storage client, bundles and model fetching against a real S3 server (SeaweedFS, auth on).

Faults come from a loopback TCP proxy the test owns: it cuts connections after N bytes or
stalls the server's answers, so every failure here is a real network failure.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from loguru import logger

from cortexlite.bundles import BundleStore
from cortexlite_runtime.bundle import BUNDLE_MARKER, bundle_key, fetch_project, make_bundle
from cortexlite_runtime.errors import (
    BundleError,
    StorageAuthError,
    StorageDenied,
    StorageError,
    StorageNotFound,
    StorageUnreachable,
)
from cortexlite_runtime.models import fetch_model
from cortexlite_runtime.storage import Location, Storage
from tests.integration.storage_server import FULL, READ_ONLY, Credentials, SeaweedServer, TcpProxy

pytestmark = pytest.mark.timeout(180)


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "predictor.py").write_text("class PythonPredictor:\n    def predict(self, payload):\n        return 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "pkg").mkdir()
    (root / "pkg" / "helper.py").write_text("X = 1\n")
    return root


def _files(root: Path) -> list[PurePosixPath]:
    return sorted(PurePosixPath(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())


def test_credentials_and_buckets_fail_with_named_errors(s3_server: SeaweedServer, tmp_path: Path) -> None:
    s3_server.make_bucket("named-errors")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 1000)
    cases: list[tuple[Credentials, type[Exception], str]] = [
        (Credentials("no-such-key", "whatever"), StorageAuthError, "InvalidAccessKeyId: access key no-such-key"),
        (Credentials(FULL.access_key, "wrong-secret"), StorageAuthError, "SignatureDoesNotMatch"),
        (READ_ONLY, StorageDenied, "write access"),
    ]
    for credentials, error, text in cases:
        storage = Storage(s3_server.settings(credentials))
        with pytest.raises(error) as caught:
            storage.upload("named-errors", "k", payload)
        message = str(caught.value)
        assert text in message and s3_server.endpoint in message and "named-errors" in message, message
    storage = Storage(s3_server.settings())
    with pytest.raises(StorageNotFound, match="--create-bucket"):
        storage.require_bucket("no-such-bucket")
    # The read-only identity reads what the full one wrote.
    storage.upload("named-errors", "k", payload)
    assert Storage(s3_server.settings(READ_ONLY)).get_bytes("named-errors", "k") == payload.read_bytes()


def test_bundle_uploads_once_and_round_trips(s3_server: SeaweedServer, tmp_path: Path) -> None:
    s3_server.make_bucket("bundles-once")
    project = _project(tmp_path / "project")
    store = BundleStore(tmp_path / "home", Location.parse("s3://bundles-once/team"), s3_server.settings())
    log: list[str] = []
    first = store.ship(project, log.append)
    assert first.uploaded and first.uri == f"s3://bundles-once/team/bundles/{first.sha256}.zip"
    again = BundleStore(tmp_path / "home", Location.parse("s3://bundles-once/team"), s3_server.settings())
    second = again.ship(project, log.append)
    assert not second.uploaded and second.sha256 == first.sha256
    assert any("nothing uploaded" in line for line in log), log
    stored = Storage(s3_server.settings()).stat("bundles-once", f"team/bundles/{first.sha256}.zip")
    assert stored is not None and stored.sha256 == first.sha256
    # Reproducible: zipping the same files again gives the same bytes.
    remade = make_bundle(project, _files(project), tmp_path / "again.zip")
    assert remade.sha256 == first.sha256
    target = tmp_path / "fetched"
    assert fetch_project(first.uri, target, tmp_path / "cache", s3_server.settings()) == first.sha256
    assert (target / "pkg" / "helper.py").read_text() == "X = 1\n"
    assert os.access(target / "run.sh", os.X_OK) and not os.access(target / "predictor.py", os.X_OK)
    assert (target / BUNDLE_MARKER).read_text().strip() == first.sha256
    # A restarted container finds its project in place and fetches nothing.
    assert fetch_project(first.uri, target, None, s3_server.settings(endpoint="http://127.0.0.1:1")) == first.sha256


def test_unsafe_and_tampered_bundles_are_refused(s3_server: SeaweedServer, tmp_path: Path) -> None:
    s3_server.make_bucket("bundles-bad")
    storage = Storage(s3_server.settings())
    evil = tmp_path / "evil.zip"
    for name in ("../outside.py", "/etc/cron.d/x", "ok/../../outside.py"):
        with zipfile.ZipFile(evil, "w") as archive:
            archive.writestr("predictor.py", "x = 1\n")
            archive.writestr(name, "pwned\n")
        digest = hashlib.sha256(evil.read_bytes()).hexdigest()
        storage.upload("bundles-bad", bundle_key("p", digest), evil)
        target = tmp_path / "slip" / "project"
        with pytest.raises(BundleError, match="refusing"):
            fetch_project(f"s3://bundles-bad/{bundle_key('p', digest)}", target, None, s3_server.settings())
        assert not (tmp_path / "slip" / "outside.py").exists() and not (target / "predictor.py").exists()
    # Content that does not match the sha256 in its name.
    good = make_bundle(_project(tmp_path / "project"), _files(tmp_path / "project"), tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("predictor.py", "import os; os.system('rm -rf /')\n")
    storage.upload("bundles-bad", bundle_key("p", good.sha256), tmp_path / "other.zip")
    target = tmp_path / "tampered"
    with pytest.raises(BundleError, match="tampered"):
        fetch_project(f"s3://bundles-bad/{bundle_key('p', good.sha256)}", target, None, s3_server.settings())
    assert not (target / "predictor.py").exists()


def test_upload_cut_mid_way_fails_within_the_retry_budget(
    s3_server: SeaweedServer, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    s3_server.make_bucket("bundles-cut")
    project = tmp_path / "big"
    project.mkdir()
    (project / "predictor.py").write_text("class PythonPredictor:\n    def predict(self):\n        return 1\n")
    (project / "weights.bin").write_bytes(os.urandom(3 * 2**20))
    s3_proxy.cut_after = 256 * 1024
    settings = s3_server.settings(endpoint=s3_proxy.endpoint, retry_budget=4.0, read_timeout=2.0)
    store = BundleStore(tmp_path / "home", Location.parse("s3://bundles-cut/p"), settings)
    started = time.monotonic()
    with pytest.raises(StorageUnreachable) as caught:
        store.ship(project, lambda _line: None)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0 + 2.0 + 1.0, elapsed  # the budget, plus at most one read timeout
    message = str(caught.value)
    assert "upload" in message and s3_proxy.endpoint in message and "bundles-cut" in message, message
    assert "retry budget 4s" in message and s3_proxy.connections >= 2, (message, s3_proxy.connections)
    # Nothing half-written is visible under the bundle's name.
    bundle = store.bundle(project)
    assert Storage(s3_server.settings()).stat("bundles-cut", f"p/bundles/{bundle.sha256}.zip") is None


def test_stalled_reads_time_out(s3_server: SeaweedServer, s3_proxy: TcpProxy) -> None:
    s3_server.make_bucket("stalled")
    s3_proxy.stall = True
    storage = Storage(s3_server.settings(endpoint=s3_proxy.endpoint, retry_budget=1.0, read_timeout=1.0))
    started = time.monotonic()
    with pytest.raises(StorageUnreachable, match="read timeout"):
        storage.stat("stalled", "anything")
    assert time.monotonic() - started < 1.0 + 1.0 + 1.0


def test_models_are_fetched_once_per_content_and_versions_pick_the_highest(
    s3_server: SeaweedServer, s3_proxy: TcpProxy, tmp_path: Path
) -> None:
    s3_server.make_bucket("models-cache")
    storage = Storage(s3_server.settings())
    for version, text in ((1, "one"), (2, "two"), (10, "ten")):
        model = tmp_path / f"m{version}"
        model.write_text(text)
        storage.upload("models-cache", f"clf/{version}/model.txt", model)
    settings = s3_server.settings(endpoint=s3_proxy.endpoint)
    cache = tmp_path / "node-cache"
    first = fetch_model("s3://models-cache/clf", cache, tmp_path / "replica1" / "model", settings)
    assert first.version == 10 and (first.path / "model.txt").read_text() == "ten" and not first.cached
    assert (tmp_path / "replica1" / "model").is_symlink()
    bytes_after_first = s3_proxy.received
    second = fetch_model("s3://models-cache/clf", cache, tmp_path / "replica2" / "model", settings)
    assert second.cached and second.downloaded_bytes == 0
    assert s3_proxy.received - bytes_after_first < 4096, "the second fetch only lists (no download)"
    # Retrained at the same path: a new entry.
    (tmp_path / "m10").write_text("ten, retrained")
    storage.upload("models-cache", "clf/10/model.txt", tmp_path / "m10")
    third = fetch_model("s3://models-cache/clf", cache, None, settings)
    assert not third.cached and (third.path / "model.txt").read_text() == "ten, retrained"
    single = fetch_model("s3://models-cache/clf/2/model.txt", cache, None, settings)
    assert single.path.read_text() == "two"
    with pytest.raises(StorageNotFound, match="no model at s3://models-cache/nothing"):
        fetch_model("s3://models-cache/nothing", cache, None, settings)
    # A cache the replica cannot write (a root-owned volume from an older cortexlite): fetched all the same,
    # uncached, with a warning that says how to mend it.
    blocked = tmp_path / "blocked-cache"
    blocked.write_text("not a directory")
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        uncached = fetch_model("s3://models-cache/clf/2/model.txt", blocked, None, settings)
    finally:
        logger.remove(sink)
    assert uncached.path.read_text() == "two" and not uncached.cached
    assert any("not writable" in line and "docker volume rm cortexlite-<env>-cache" in line for line in lines), lines


def test_env_add_checks_the_store_and_offers_to_create_the_bucket(s3_server: SeaweedServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    environ = {**os.environ, "CORTEXLITE_HOME": str(tmp_path / "home"), "NO_COLOR": "1", "COLUMNS": "200"}
    environ.pop("CORTEXLITE_S3_SECRET_KEY", None)
    command = [
        str(Path(sys.executable).parent / "cortexlite"), "env", "add", "gpu1", "--docker-host", "tcp://127.0.0.1:1",
        "--storage", "s3://made-by-env-add/team", "--s3-endpoint", s3_server.endpoint,
        "--s3-access-key", FULL.access_key, "--s3-secret-key", FULL.secret_key,
    ]  # fmt: skip

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *extra], env=environ, capture_output=True, text=True, timeout=60, check=False)

    missing = run()
    assert missing.returncode == 1 and "--create-bucket" in missing.stderr and "Traceback" not in missing.stderr
    assert "made-by-env-add" in missing.stderr and s3_server.endpoint in missing.stderr, missing.stderr
    created = run("--create-bucket")
    assert created.returncode == 0 and "created the bucket made-by-env-add" in created.stdout, created.stderr
    config = tmp_path / "home" / "config.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    listed = subprocess.run(
        [command[0], "env", "list", "-o", "json"], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    assert FULL.secret_key not in listed.stdout and "<secret:s3_secret_key>" in listed.stdout
    bad = subprocess.run(
        [*command[:3], "gpu2", *command[4:-2], "--s3-secret-key", "wrong"],
        env=environ, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "SignatureDoesNotMatch" in bad.stderr, bad.stderr


def test_a_store_with_a_private_ca_needs_the_ca_bundle(tmp_path: Path) -> None:
    """SeaweedFS over HTTPS with a certificate from a CA made here: trusted only with CORTEXLITE_S3_CA_BUNDLE."""
    from tests.integration.storage_server import make_certificates

    certificate, key = make_certificates(tmp_path / "tls")
    (tmp_path / "weed").mkdir()
    server = SeaweedServer(tmp_path / "weed", tls=(certificate, key))
    server.start()
    try:
        ca = tmp_path / "tls" / "ca.pem"
        trusted = Storage(server.settings(ca_bundle=ca))
        trusted.make_bucket("private-ca")
        trusted.put_bytes("private-ca", "k", b"over TLS")
        assert trusted.get_bytes("private-ca", "k") == b"over TLS"
        started = time.monotonic()
        with pytest.raises(StorageError, match="CORTEXLITE_S3_CA_BUNDLE") as caught:
            Storage(server.settings()).get_bytes("private-ca", "k")
        assert time.monotonic() - started < 2, "a certificate failure is not retried"
        assert "not trusted" in str(caught.value) and server.endpoint in str(caught.value)
    finally:
        server.stop()
