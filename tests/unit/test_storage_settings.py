"""Storage settings, addressing and signing, model selection and bundle safety, all without a network.

Addressing is checked on the requests the SDK really builds: a recording `urllib3.PoolManager`
stands in for the connection pool and answers every request with an empty 200.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3

from cortexlite_runtime.bundle import BUNDLE_MARKER, extract_bundle, make_bundle, safe_members
from cortexlite_runtime.errors import BundleError, ConfigError, StorageNotFound
from cortexlite_runtime.models import select_model
from cortexlite_runtime.storage import (
    DEFAULT_CONNECT_TIMEOUT,
    Location,
    ObjectInfo,
    Storage,
    StorageSettings,
)

KEYS: dict[str, Any] = {"access_key": "AKIDEXAMPLE", "secret_key": "secret-example"}


# --- Location ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "bucket", "key"),
    [
        ("s3://models/iris/1", "s3", "models", "iris/1"),
        ("s3://models", "s3", "models", ""),
        ("s3://models/", "s3", "models", ""),
        ("oss://my-bucket-v2/team/bundles/", "oss", "my-bucket-v2", "team/bundles"),
        ("s3://abc/a.b-c_d/model.onnx", "s3", "abc", "a.b-c_d/model.onnx"),
    ],
)
def test_location_parses_buckets_and_keys(url: str, scheme: str, bucket: str, key: str) -> None:
    assert Location.parse(url) == Location(scheme, bucket, key)


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("s3://Models/x", "not a bucket name"),
        ("s3://ab/x", "not a bucket name"),
        ("s3://" + "a" * 64 + "/x", "not a bucket name"),
        ("s3://-models/x", "not a bucket name"),
        ("s3://models_1/x", "not a bucket name"),
        ("s3:///x", "not a bucket name"),
        ("s3://models/a/../b", "'..'"),
        ("s3://models/../b", "'..'"),
        ("s3://models/a/./b", "'..'"),
        ("s3://models/a//b", "'..'"),
        ("gs://models/x", "expected s3://bucket/prefix"),
        ("https://models/x", "expected s3://bucket/prefix"),
        ("file:///tmp/x", "expected s3://bucket/prefix"),
        ("/tmp/models", "expected s3://bucket/prefix"),
    ],
)
def test_location_refuses_bad_urls_naming_them(url: str, found: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Location.parse(url, "predictor.model_path")
    message = str(caught.value)
    assert url in message and "predictor.model_path" in message and found in message, message


def test_location_child_joins_parts_and_url_round_trips() -> None:
    root = Location.parse("oss://bucket-1")
    assert root.url == "oss://bucket-1"
    team = root.child("team/")
    assert team == Location("oss", "bucket-1", "team") and team.url == "oss://bucket-1/team"
    bundle = team.child("/bundles/", "", "abc.zip")
    assert bundle.url == "oss://bucket-1/team/bundles/abc.zip"
    assert Location.parse(bundle.url) == bundle
    assert root.child() == root


# --- StorageSettings.from_env --------------------------------------------------------------------

ENDPOINTS = {
    "CORTEXLITE_S3_ENDPOINT": "http://cortexlite:9000",
    "AWS_ENDPOINT_URL_S3": "http://aws-s3:9000",
    "AWS_ENDPOINT_URL": "http://aws:9000",
}


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (("CORTEXLITE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), "http://cortexlite:9000"),
        (("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), "http://aws-s3:9000"),
        (("AWS_ENDPOINT_URL",), "http://aws:9000"),
        ((), None),
    ],
)
def test_endpoint_precedence_among_variables(present: tuple[str, ...], expected: str | None) -> None:
    env = {name: ENDPOINTS[name] for name in present}
    assert StorageSettings.from_env(env).endpoint == expected


def test_defined_values_win_over_every_variable() -> None:
    env = {
        **ENDPOINTS,
        "CORTEXLITE_S3_ACCESS_KEY": "env-key", "AWS_ACCESS_KEY_ID": "aws-key",
        "CORTEXLITE_S3_SECRET_KEY": "env-secret", "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "CORTEXLITE_S3_REGION": "env-region", "AWS_DEFAULT_REGION": "aws-region",
        "CORTEXLITE_S3_SECURE": "false", "CORTEXLITE_S3_CONNECT_TIMEOUT": "9",
    }  # fmt: skip
    defined = {
        "endpoint": "https://defined:9000", "access_key": "defined-key", "secret_key": "defined-secret",
        "region": "defined-region", "secure": True, "connect_timeout": 2.5, "replica_endpoint": None,
    }  # fmt: skip
    settings = StorageSettings.from_env(env, defined)
    assert (settings.endpoint, settings.access_key, settings.secret_key, settings.region) == (
        "https://defined:9000", "defined-key", "defined-secret", "defined-region",
    )  # fmt: skip
    assert settings.secure is True and settings.connect_timeout == 2.5
    # A defined None falls through to the variables.
    assert StorageSettings.from_env({"AWS_ENDPOINT_URL": "http://aws:9000"}, {"endpoint": None}).endpoint == (
        "http://aws:9000"
    )


def test_keys_and_region_fall_back_to_aws_variables() -> None:
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "r2", "AWS_CA_BUNDLE": "/ca.pem"}
    settings = StorageSettings.from_env(env)
    assert (settings.access_key, settings.secret_key, settings.region) == ("a", "s", "r2")
    assert settings.ca_bundle == Path("/ca.pem")
    assert StorageSettings.from_env({**env, "AWS_DEFAULT_REGION": "r1"}).region == "r1"
    assert StorageSettings.from_env({**env, "CORTEXLITE_S3_ACCESS_KEY": "c"}).access_key == "c"


def test_blank_variables_count_as_unset() -> None:
    settings = StorageSettings.from_env({"CORTEXLITE_S3_ENDPOINT": "  ", "AWS_ENDPOINT_URL": "http://aws:9000"})
    assert settings.endpoint == "http://aws:9000"
    assert StorageSettings.from_env({}) == StorageSettings()


@pytest.mark.parametrize(
    ("raw", "secure"),
    [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False), ("false", False), ("no", False),
     ("off", False)],
)  # fmt: skip
def test_secure_flag_parsing(raw: str, secure: bool) -> None:
    assert StorageSettings.from_env({"CORTEXLITE_S3_SECURE": raw}).secure is secure


def test_secure_flag_refuses_other_words() -> None:
    with pytest.raises(ConfigError, match=r"CORTEXLITE_S3_SECURE: expected true or false \(got 'maybe'\)"):
        StorageSettings.from_env({"CORTEXLITE_S3_SECURE": "maybe"})
    assert StorageSettings.from_env({}).secure is None


@pytest.mark.parametrize(
    "name", ["CORTEXLITE_S3_CONNECT_TIMEOUT", "CORTEXLITE_S3_READ_TIMEOUT", "CORTEXLITE_S3_RETRY_BUDGET"]
)
@pytest.mark.parametrize("raw", ["0", "-1", "soon", "5s"])
def test_bad_timeouts_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StorageSettings.from_env({name: raw})
    assert name in str(caught.value) and repr(raw) in str(caught.value)


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_non_finite_timeouts_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="CORTEXLITE_S3_RETRY_BUDGET"):
        StorageSettings.from_env({"CORTEXLITE_S3_RETRY_BUDGET": raw})


def test_timeouts_parse_and_default() -> None:
    env = {"CORTEXLITE_S3_CONNECT_TIMEOUT": "1.5", "CORTEXLITE_S3_READ_TIMEOUT": "7", "CORTEXLITE_S3_RETRY_BUDGET": "3"}
    settings = StorageSettings.from_env(env)
    assert (settings.connect_timeout, settings.read_timeout, settings.retry_budget) == (1.5, 7.0, 3.0)
    assert StorageSettings.from_env({}).connect_timeout == DEFAULT_CONNECT_TIMEOUT


# --- address() and signing_region() --------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "scheme", "address", "region"),
    [
        (StorageSettings(endpoint="http://127.0.0.1:9000"), "s3", ("127.0.0.1:9000", False), "us-east-1"),
        (StorageSettings(endpoint="https://minio.lan/"), "s3", ("minio.lan", True), "us-east-1"),
        (StorageSettings(endpoint="minio.lan:9000", secure=False), "s3", ("minio.lan:9000", False), "us-east-1"),
        (StorageSettings(endpoint="minio.lan:9000"), "s3", ("minio.lan:9000", True), "us-east-1"),
        (StorageSettings(region="eu-west-1"), "s3", ("s3.amazonaws.com", True), "eu-west-1"),
        (StorageSettings(region="cn-hangzhou"), "oss", ("s3.oss-cn-hangzhou.aliyuncs.com", True), "cn-hangzhou"),
        (StorageSettings(endpoint="oss-cn-shanghai.aliyuncs.com"), "oss", ("oss-cn-shanghai.aliyuncs.com", True),
         "cn-shanghai"),
        (StorageSettings(endpoint="https://s3.oss-cn-beijing-internal.aliyuncs.com"), "oss",
         ("s3.oss-cn-beijing-internal.aliyuncs.com", True), "cn-beijing"),
    ],
)  # fmt: skip
def test_address_and_signing_region(
    settings: StorageSettings, scheme: str, address: tuple[str, bool], region: str
) -> None:
    assert settings.address(scheme) == address
    assert settings.signing_region(scheme) == region


@pytest.mark.parametrize("endpoint", ["ftp://minio:21", "http://", "http://minio:9000/some/path"])
def test_address_refuses_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="S3 endpoint"):
        StorageSettings(endpoint=endpoint).address()


def test_oss_needs_a_region_or_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="oss:// storage needs a region"):
        StorageSettings(**KEYS).address("oss")
    with pytest.raises(ConfigError, match="oss:// storage needs a region"):
        Storage(StorageSettings(**KEYS), "oss", http_client=_Recorder())
    with pytest.raises(ConfigError, match="set the region"):
        StorageSettings(endpoint="http://127.0.0.1:9000").signing_region("oss")


# --- requests the SDK builds: addressing style and signing scope ---------------------------------


class _Recorder(urllib3.PoolManager):
    """A connection pool that sends nothing: it records each request and answers an empty 200."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, body: Any = None, headers: Any = None, **kw: Any
    ) -> urllib3.HTTPResponse:
        self.requests.append((method, url, {str(k): str(v) for k, v in dict(headers or {}).items()}))
        answer = {
            "Content-Length": "11", "ETag": '"0123abcd"', "Last-Modified": "Wed, 21 Oct 2026 07:28:00 GMT",
            "x-amz-meta-sha256": "feed",
        }  # fmt: skip
        return urllib3.HTTPResponse(body=b"", status=200, headers=answer, preload_content=False)


def _stat_request(settings: StorageSettings, scheme: str, bucket: str, key: str) -> tuple[str, str, dict[str, str]]:
    recorder = _Recorder()
    storage = Storage(settings, scheme, http_client=recorder)
    info = storage.stat(bucket, key)
    assert info == ObjectInfo(key, 11, "0123abcd", {"sha256": "feed"})
    assert len(recorder.requests) == 1, recorder.requests  # the region is known: no GetBucketLocation first
    return recorder.requests[0]


def _scope(headers: dict[str, str]) -> str:
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential="), authorization
    return authorization.split("Credential=", 1)[1].split(",", 1)[0]


def test_oss_with_a_region_is_virtual_hosted_and_signed_for_it() -> None:
    method, url, headers = _stat_request(StorageSettings(region="cn-hangzhou", **KEYS), "oss", "team-models", "a/b.zip")
    parts = urlsplit(url)
    assert method == "HEAD"
    assert url == "https://team-models.s3.oss-cn-hangzhou.aliyuncs.com/a/b.zip"
    assert parts.hostname == "team-models.s3.oss-cn-hangzhou.aliyuncs.com" and parts.path == "/a/b.zip"
    scope = _scope(headers)
    assert scope.startswith("AKIDEXAMPLE/") and scope.endswith("/cn-hangzhou/s3/aws4_request"), scope


def test_oss_endpoint_without_region_signs_for_the_endpoints_region() -> None:
    settings = StorageSettings(endpoint="oss-cn-shanghai.aliyuncs.com", **KEYS)
    _, url, headers = _stat_request(settings, "oss", "team-models", "m.onnx")
    assert urlsplit(url).hostname == "team-models.oss-cn-shanghai.aliyuncs.com"
    assert url.startswith("https://")
    assert "/cn-shanghai/s3/aws4_request" in _scope(headers)


def test_s3_on_a_custom_endpoint_is_path_style_signed_us_east_1() -> None:
    settings = StorageSettings(endpoint="http://127.0.0.1:9000", **KEYS)
    _, url, headers = _stat_request(settings, "s3", "bundles", "team/bundles/x.zip")
    assert url == "http://127.0.0.1:9000/bundles/team/bundles/x.zip"
    assert "/us-east-1/s3/aws4_request" in _scope(headers)


# --- replica_environment -------------------------------------------------------------------------


def test_replica_environment_has_the_standard_variables() -> None:
    env = StorageSettings(endpoint="http://10.0.0.5:9000", region="eu-central-1", **KEYS).replica_environment()
    assert (
        env["AWS_ENDPOINT_URL"]
        == env["AWS_ENDPOINT_URL_S3"]
        == env["CORTEXLITE_S3_ENDPOINT"]
        == ("http://10.0.0.5:9000")
    )
    assert env["AWS_ACCESS_KEY_ID"] == env["CORTEXLITE_S3_ACCESS_KEY"] == "AKIDEXAMPLE"
    assert env["AWS_SECRET_ACCESS_KEY"] == env["CORTEXLITE_S3_SECRET_KEY"] == "secret-example"
    assert env["AWS_DEFAULT_REGION"] == env["CORTEXLITE_S3_REGION"] == "eu-central-1"
    assert env["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"
    assert env["AWS_RESPONSE_CHECKSUM_VALIDATION"] == "when_required"


def test_replica_environment_uses_the_replica_endpoint() -> None:
    settings = StorageSettings(endpoint="http://127.0.0.1:19000", replica_endpoint="http://192.168.1.9:9000", **KEYS)
    env = settings.replica_environment()
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://192.168.1.9:9000"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert settings.endpoint == "http://127.0.0.1:19000"  # the CLI's own address is unchanged


def test_replica_environment_for_oss_and_without_keys() -> None:
    env = StorageSettings(region="cn-hangzhou").replica_environment("oss")
    assert env["AWS_ENDPOINT_URL_S3"] == "https://s3.oss-cn-hangzhou.aliyuncs.com"
    assert env["AWS_DEFAULT_REGION"] == "cn-hangzhou"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & env.keys()


# --- select_model --------------------------------------------------------------------------------


def _listing(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(key, len(key), f"etag-{key}") for key in keys]


def test_select_model_exact_object() -> None:
    listed = _listing("models/iris.onnx", "models/iris.onnx.bak")
    selection = select_model(Location.parse("s3://bkt/models/iris.onnx"), listed)
    assert selection.single_file and selection.version is None
    assert [(name, info.key) for name, info in selection.objects] == [("iris.onnx", "models/iris.onnx")]


def test_select_model_picks_the_highest_integer_version() -> None:
    listed = _listing(
        "m/1/model.onnx", "m/2/model.onnx", "m/10/model.onnx", "m/10/vocab/words.txt", "m/99-old/model.onnx",
        "m/latest/model.onnx", "m/README.md", "m-other/11/model.onnx",
    )  # fmt: skip
    selection = select_model(Location.parse("s3://bkt/m"), listed)
    assert selection.version == 10 and not selection.single_file
    assert selection.prefix == "m/10"
    assert [name for name, _ in selection.objects] == ["model.onnx", "vocab/words.txt"]


def test_select_model_without_versions_takes_everything() -> None:
    listed = _listing("m/latest/model.onnx", "m/config.json", "m/v2/weights.bin", "m/empty-dir/")
    selection = select_model(Location.parse("s3://bkt/m/"), listed)
    assert selection.version is None and not selection.single_file
    assert [name for name, _ in selection.objects] == ["latest/model.onnx", "config.json", "v2/weights.bin"]


def test_select_model_digest_follows_the_content() -> None:
    location = Location.parse("s3://bkt/m")
    first = select_model(location, _listing("m/1/a"))
    changed = select_model(location, [ObjectInfo("m/1/a", 3, "another-etag")])
    assert first.digest == select_model(location, _listing("m/1/a")).digest != changed.digest


@pytest.mark.parametrize("keys", [(), ("other/1/model.onnx",), ("m/",), ("mx/model.onnx",)])
def test_select_model_with_nothing_there(keys: tuple[str, ...]) -> None:
    with pytest.raises(StorageNotFound, match="no model at s3://bkt/m"):
        select_model(Location.parse("s3://bkt/m"), _listing(*keys))


# --- bundles -------------------------------------------------------------------------------------


def _member(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def _zip_with(path: Path, name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipFile:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(_member("ok.txt"), b"fine")
        archive.writestr(_member(name, mode), b"target")
    return zipfile.ZipFile(path)


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/../b", "'..'"),
        ("/abs", "absolute"),
        ("/etc/passwd", "absolute"),
        ("C:\\x", "absolute or Windows"),
        ("C:x", "absolute or Windows"),
        ("a\\..\\x", "absolute or Windows"),
    ],
)
def test_safe_members_refuses_escaping_names(tmp_path: Path, name: str, found: str) -> None:
    with (
        _zip_with(tmp_path / "evil.zip", name) as archive,
        pytest.raises(BundleError, match=re.escape(found)) as caught,
    ):
        safe_members(archive, "bundle evil.zip")
    assert "bundle evil.zip" in str(caught.value)


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o600, stat.S_IFIFO | 0o644])
def test_safe_members_refuses_links_and_devices(tmp_path: Path, mode: int) -> None:
    with _zip_with(tmp_path / "link.zip", "innocent", mode) as archive, pytest.raises(BundleError, match="device"):
        safe_members(archive, "bundle link.zip")


def test_safe_members_keeps_files_and_skips_directories(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as archive:
        archive.writestr(_member("pkg/", stat.S_IFDIR | 0o755), b"")
        archive.writestr(_member("pkg/a.py"), b"A = 1\n")
    with zipfile.ZipFile(tmp_path / "ok.zip") as archive:
        names = [str(path) for _, path in safe_members(archive, "bundle ok.zip")]
    assert names == ["pkg/a.py"]


def _project(root: Path) -> list[PurePosixPath]:
    files = {"predictor.py": "class PythonPredictor: ...\n", "run.sh": "#!/bin/sh\necho hi\n", "pkg/a.py": "A = 1\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "run.sh").chmod(0o755)
    return [PurePosixPath(name) for name in files]


def test_make_bundle_is_reproducible_across_mtimes_and_order(tmp_path: Path) -> None:
    root = tmp_path / "project"
    files = _project(root)
    first = make_bundle(root, files, tmp_path / "one.zip")
    for path in root.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    second = make_bundle(root, list(reversed(files)), tmp_path / "two.zip")
    assert first.sha256 == second.sha256 == hashlib.sha256(second.path.read_bytes()).hexdigest()
    assert first.size == second.size == second.path.stat().st_size
    assert first.path.read_bytes() == second.path.read_bytes()
    (root / "pkg/a.py").write_text("A = 2\n")
    assert make_bundle(root, files, tmp_path / "three.zip").sha256 != first.sha256


def test_extract_bundle_keeps_the_executable_bit(tmp_path: Path) -> None:
    root = tmp_path / "project"
    files = _project(root)
    (root / "predictor.py").chmod(0o600)
    bundle = make_bundle(root, files, tmp_path / "b.zip")
    target = tmp_path / "extracted"
    extract_bundle(bundle.path, target, bundle.sha256)
    assert (target / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (target / "predictor.py").stat().st_mode & 0o777 == 0o644
    assert (target / "pkg/a.py").read_text() == "A = 1\n"
    assert (target / BUNDLE_MARKER).read_text() == bundle.sha256 + "\n"


def test_extract_bundle_writes_nothing_from_an_unsafe_bundle(tmp_path: Path) -> None:
    _zip_with(tmp_path / "evil.zip", "../escaped").close()
    with pytest.raises(BundleError, match=r"'\.\.'"):
        extract_bundle(tmp_path / "evil.zip", tmp_path / "target", "0" * 64)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "target").exists()


def test_make_bundle_handles_members_past_the_zip64_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit is 2 GiB; lowered here so the test stays small (the code path is the same).
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1 << 12)
    (tmp_path / "weights.bin").write_bytes(os.urandom(1 << 13))
    bundle = make_bundle(tmp_path, [PurePosixPath("weights.bin")], tmp_path / "out" / "b.zip")
    with zipfile.ZipFile(bundle.path) as archive:
        assert archive.read("weights.bin") == (tmp_path / "weights.bin").read_bytes()


@pytest.mark.parametrize("url", ["oss://my.bucket/x", "s3://bucket/key?versionId=1", "s3://bucket/key#frag"])
def test_urls_storage_cannot_address_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="storage URL"):
        Location.parse(url)


def test_aws_without_a_region_lets_the_sdk_find_the_bucket() -> None:
    assert StorageSettings().sdk_region("s3") is None
    assert StorageSettings(region="eu-west-1").sdk_region("s3") == "eu-west-1"
    assert StorageSettings(endpoint="http://127.0.0.1:9000").sdk_region("s3") == "us-east-1"


def test_incompressible_files_are_stored_and_text_is_deflated(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "weights.bin").write_bytes(os.urandom(256 * 1024))
    (root / "predictor.py").write_text("x = 1\n" * 5000)
    made = make_bundle(root, [PurePosixPath("predictor.py"), PurePosixPath("weights.bin")], tmp_path / "b.zip")
    with zipfile.ZipFile(made.path) as archive:
        kinds = {info.filename: info.compress_type for info in archive.infolist()}
    assert kinds == {"predictor.py": zipfile.ZIP_DEFLATED, "weights.bin": zipfile.ZIP_STORED}


def test_zips_written_by_other_tools_are_accepted(tmp_path: Path) -> None:
    """zipfile's own writestr records permission bits without a file type: a plain file."""
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("predictor.py", "x = 1\n")
    with zipfile.ZipFile(plain) as archive:
        assert [path for _, path in safe_members(archive, "plain.zip")] == [PurePosixPath("predictor.py")]
