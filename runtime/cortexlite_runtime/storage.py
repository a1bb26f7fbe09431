"""S3-compatible storage: the only module that imports `minio`.

URLs: `s3://bucket/prefix` for any S3-compatible server (MinIO, SeaweedFS and other self-hosted
stores are addressed path-style, AWS virtual-hosted), `oss://bucket/prefix` for Aliyun OSS
(virtual-hosted, `s3.oss-<region>.aliyuncs.com` unless an endpoint is given), and plain paths or
`file://` for a directory on this machine.

Every request is bounded: a connect timeout, a read timeout, and a total retry budget after
which a failing operation stops being retried (the SDK's own defaults retry for many minutes).
Failures become `StorageError`s that name the endpoint and the bucket.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from .errors import (
    ConfigError,
    StorageAuthError,
    StorageDenied,
    StorageError,
    StorageNotFound,
    StorageUnreachable,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRY_BUDGET",
    "Location",
    "ObjectInfo",
    "Progress",
    "Storage",
    "StorageSettings",
    "is_remote_url",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_RETRY_BUDGET = 30.0
CHUNK = 1 << 20
SHA256_META = "sha256"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_OSS_HOST = re.compile(r"^(?:s3\.)?oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")
_RETRYABLE_CODES = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"}
_AUTH_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed",
}  # fmt: skip
_MISSING_OBJECT = {"NoSuchKey", "NotFound", "ResourceNotFound", "NoSuchObject"}

# (bytes done, bytes in all)
Progress = Callable[[int, int], None]
T = TypeVar("T")


def is_remote_url(value: str) -> bool:
    return value.startswith(("s3://", "oss://"))


@dataclass(frozen=True)
class Location:
    """A bucket and a key prefix (or a whole key), parsed from `s3://` / `oss://`."""

    scheme: str  # "s3" | "oss"
    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, url: str, what: str = "storage URL") -> Location:
        parts = urlsplit(url)
        if parts.scheme not in ("s3", "oss"):
            raise ConfigError(f"{what} {url!r}: expected s3://bucket/prefix or oss://bucket/prefix")
        bucket = parts.netloc
        if not _BUCKET.match(bucket):
            raise ConfigError(
                f"{what} {url!r}: {bucket!r} is not a bucket name (3-63 lower-case letters, digits, '.' and '-')"
            )
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            raise ConfigError(f"{what} {url!r}: '?' and '#' are not supported in storage URLs")
        if parts.scheme == "oss" and "." in bucket:
            raise ConfigError(f"{what} {url!r}: OSS bucket names have no dots ({bucket!r})")
        key = parts.path.strip("/")
        if any(part in ("", ".", "..") for part in key.split("/")) and key:
            raise ConfigError(f"{what} {url!r}: the key must not hold empty, '.' or '..' parts")
        return cls(parts.scheme, bucket, key)

    def child(self, *parts: str) -> Location:
        key = "/".join(part.strip("/") for part in (self.key, *parts) if part.strip("/"))
        return replace(self, key=key)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str | None:
        return self.metadata.get(SHA256_META)


@dataclass(frozen=True)
class StorageSettings:
    """How to reach the store; from an environment's definition, `CORTEXLITE_S3_*`, then `AWS_*`.

    `endpoint` is `host[:port]` or a URL (`http://minio:9000`); `None` means the provider's public
    endpoint (AWS, or OSS's for `region`). `replica_endpoint` is the address replicas use when it
    differs from the CLI's (a laptop reaching MinIO through a tunnel, replicas on its LAN address).
    """

    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    secure: bool | None = None
    ca_bundle: Path | None = None
    replica_endpoint: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    retry_budget: float = DEFAULT_RETRY_BUDGET

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, defined: Mapping[str, Any] | None = None
    ) -> StorageSettings:
        """`defined` (an environment's `s3_*` fields, without the prefix) wins over the variables."""
        env = os.environ if environ is None else environ
        given = {key: value for key, value in (defined or {}).items() if value is not None}

        def pick(key: str, *names: str) -> str | None:
            if key in given:
                return str(given[key])
            for name in names:
                value = env.get(name, "").strip()
                if value:
                    return value
            return None

        secure = pick("secure", "CORTEXLITE_S3_SECURE")
        ca_bundle = pick("ca_bundle", "CORTEXLITE_S3_CA_BUNDLE", "AWS_CA_BUNDLE")
        return cls(
            endpoint=pick("endpoint", "CORTEXLITE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            access_key=pick("access_key", "CORTEXLITE_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
            secret_key=pick("secret_key", "CORTEXLITE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
            region=pick("region", "CORTEXLITE_S3_REGION", "AWS_DEFAULT_REGION", "AWS_REGION"),
            secure=_flag("CORTEXLITE_S3_SECURE", secure) if secure is not None else None,
            ca_bundle=Path(ca_bundle) if ca_bundle else None,
            replica_endpoint=pick("replica_endpoint", "CORTEXLITE_S3_REPLICA_ENDPOINT"),
            connect_timeout=_seconds(
                "CORTEXLITE_S3_CONNECT_TIMEOUT", pick("connect_timeout", "CORTEXLITE_S3_CONNECT_TIMEOUT"),
                DEFAULT_CONNECT_TIMEOUT,
            ),
            read_timeout=_seconds(
                "CORTEXLITE_S3_READ_TIMEOUT", pick("read_timeout", "CORTEXLITE_S3_READ_TIMEOUT"), DEFAULT_READ_TIMEOUT
            ),
            retry_budget=_seconds(
                "CORTEXLITE_S3_RETRY_BUDGET", pick("retry_budget", "CORTEXLITE_S3_RETRY_BUDGET"), DEFAULT_RETRY_BUDGET
            ),
        )  # fmt: skip

    def for_replicas(self) -> StorageSettings:
        """The settings as replicas see them: the replica endpoint when there is one."""
        return replace(self, endpoint=self.replica_endpoint or self.endpoint, replica_endpoint=None)

    def address(self, scheme: str = "s3") -> tuple[str, bool]:
        """`(host[:port], https?)` for requests to a bucket of `scheme`."""
        raw = self.endpoint
        if raw is None:
            if scheme == "oss":
                if not self.region:
                    raise ConfigError(
                        "oss:// storage needs a region (CORTEXLITE_S3_REGION, e.g. cn-hangzhou) or an endpoint "
                        "(CORTEXLITE_S3_ENDPOINT, e.g. https://s3.oss-cn-hangzhou.aliyuncs.com)"
                    )
                return f"s3.oss-{self.region}.aliyuncs.com", True if self.secure is None else self.secure
            return "s3.amazonaws.com", True if self.secure is None else self.secure
        if "://" in raw:
            parts = urlsplit(raw)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                raise ConfigError(f"S3 endpoint {raw!r}: expected host[:port], http://host[:port] or https://host")
            return parts.netloc, parts.scheme == "https"
        return raw.rstrip("/"), True if self.secure is None else self.secure

    def signing_region(self, scheme: str = "s3") -> str:
        if self.region:
            return self.region
        host, _ = self.address(scheme)
        found = _OSS_HOST.match(host.split(":")[0])
        if found:
            return found.group(1)
        if scheme == "oss":
            raise ConfigError(f"oss:// storage at {host}: set the region (CORTEXLITE_S3_REGION, e.g. cn-hangzhou)")
        # MinIO, SeaweedFS and most self-hosted stores sign with us-east-1; naming it saves a
        # GetBucketLocation round trip before every first request.
        return "us-east-1"

    def sdk_region(self, scheme: str = "s3") -> str | None:
        """The region the client signs with; None lets the SDK ask AWS where a bucket lives."""
        if self.endpoint is None and scheme == "s3" and not self.region:
            return None
        return self.signing_region(scheme)

    def endpoint_url(self, scheme: str = "s3") -> str:
        host, secure = self.address(scheme)
        return f"{'https' if secure else 'http'}://{host}"

    def replica_environment(self, scheme: str = "s3") -> dict[str, str]:
        """Variables replicas get, so the runtime and the user's own boto3/minio code reach the store.

        The secret key is part of it: callers that show an environment (`--dry-run`) mask it.
        """
        settings = self.for_replicas()
        url = settings.endpoint_url(scheme)
        env = {
            "CORTEXLITE_S3_ENDPOINT": url,
            "CORTEXLITE_S3_REGION": settings.signing_region(scheme),
            "CORTEXLITE_S3_CONNECT_TIMEOUT": f"{self.connect_timeout:g}",
            "CORTEXLITE_S3_READ_TIMEOUT": f"{self.read_timeout:g}",
            "CORTEXLITE_S3_RETRY_BUDGET": f"{self.retry_budget:g}",
            "AWS_ENDPOINT_URL": url,
            "AWS_ENDPOINT_URL_S3": url,
            "AWS_DEFAULT_REGION": settings.signing_region(scheme),
            # Recent boto3 (>= 1.36) adds CRC checksums that MinIO/SeaweedFS/OSS may reject.
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }
        if settings.access_key:
            env |= {"CORTEXLITE_S3_ACCESS_KEY": settings.access_key, "AWS_ACCESS_KEY_ID": settings.access_key}
        if settings.secret_key:
            env |= {"CORTEXLITE_S3_SECRET_KEY": settings.secret_key, "AWS_SECRET_ACCESS_KEY": settings.secret_key}
        return env


class _Progress:
    """minio's progress protocol (`set_meta`, `update`) over a `(done, total)` callback."""

    def __init__(self, callback: Progress) -> None:
        self.callback = callback
        self.total = 0
        self.done = 0

    def set_meta(self, object_name: str, total_length: int) -> None:
        self.total = total_length
        self.done = 0
        self.callback(0, total_length)

    def update(self, length: int) -> None:
        self.done += length
        self.callback(self.done, self.total)


class Storage:
    """Bounded, retried operations on one store (settings + URL scheme)."""

    def __init__(
        self, settings: StorageSettings, scheme: str = "s3", *, http_client: urllib3.PoolManager | None = None
    ) -> None:
        self.settings = settings
        self.scheme = scheme
        host, secure = settings.address(scheme)
        self.endpoint = f"{'https' if secure else 'http'}://{host}"
        self._http = http_client or urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
            retries=False,
            maxsize=8,
            cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
            ca_certs=str(settings.ca_bundle) if settings.ca_bundle else None,
        )
        if settings.ca_bundle is not None and not settings.ca_bundle.is_file():
            raise ConfigError(f"S3 CA bundle {settings.ca_bundle} does not exist (CORTEXLITE_S3_CA_BUNDLE)")
        self.client = Minio(
            host,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=secure,
            region=settings.sdk_region(scheme),
            http_client=self._http,
        )

    @classmethod
    def for_location(cls, location: Location, settings: StorageSettings | None = None) -> Storage:
        return cls(settings or StorageSettings.from_env(), location.scheme)

    def close(self) -> None:
        self._http.clear()

    def where(self, bucket: str, key: str | None = None) -> str:
        target = f"bucket {bucket}" + (f", object {key}" if key else "")
        return f"{self.endpoint} ({target})"

    # --- operations ------------------------------------------------------------------------------

    def bucket_exists(self, bucket: str) -> bool:
        """Whether the bucket exists (and these keys may list it).

        A listing, not HEAD: an answer with a body says which refusal it is (a wrong secret, an
        unknown key, no permission), where HEAD's bare 403 cannot.
        """

        def call() -> bool:
            try:
                next(iter(self.client.list_objects(bucket, prefix=".cortexlite-bucket-check/")), None)
            except S3Error as exc:
                if exc.code == "NoSuchBucket":
                    return False
                raise
            return True

        return self._retry("check", bucket, None, call)

    def make_bucket(self, bucket: str) -> None:
        self._retry("create", bucket, None, lambda: self.client.make_bucket(bucket))

    def require_bucket(self, bucket: str) -> None:
        if not self.bucket_exists(bucket):
            raise StorageNotFound(
                f"the bucket {bucket} does not exist at {self.endpoint}; create it "
                "(`cortexlite env add ... --create-bucket`, or with your store's console)"
            )

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size, ETag and metadata; None when there is no such object."""

        def call() -> ObjectInfo | None:
            try:
                found = self.client.stat_object(bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING_OBJECT:
                    return None
                raise
            return ObjectInfo(key, int(found.size or 0), (found.etag or "").strip('"'), _metadata(found.metadata))

        return self._retry("read", bucket, key, call)

    def list(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        """Every object under `prefix` (recursive), sorted by key."""

        def call() -> list[ObjectInfo]:
            found = self.client.list_objects(bucket, prefix=prefix, recursive=True)
            return sorted(
                (
                    ObjectInfo(str(item.object_name), int(item.size or 0), (item.etag or "").strip('"'))
                    for item in found
                    if item.object_name and not item.is_dir
                ),
                key=lambda info: info.key,
            )

        return self._retry("list", bucket, prefix, call)

    def upload(
        self, bucket: str, key: str, path: Path, *, metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:  # fmt: skip
        def call() -> None:
            self.client.fput_object(
                bucket, key, str(path), metadata=dict(metadata or {}),
                progress=_Progress(progress) if progress else None,
            )  # fmt: skip

        self._retry("upload", bucket, key, call)

    def put_bytes(self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        import io

        self._retry(
            "upload", bucket, key,
            lambda: self.client.put_object(bucket, key, io.BytesIO(data), len(data), metadata=dict(metadata or {})),
        )  # fmt: skip

    def download(
        self, bucket: str, key: str, target: Path, *, progress: Progress | None = None, digest: bool = True
    ) -> str:
        """Write the object to `target` (atomically: a temporary file, then a rename); return its sha256.

        `digest=False` skips the hash (and returns ""): models are keyed by their listing, not their bytes,
        and on a fast link hashing costs a third of the transfer's time.
        """
        target.parent.mkdir(parents=True, exist_ok=True)

        def call() -> str:
            response = self.client.get_object(bucket, key)
            fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                hasher = hashlib.sha256() if digest else None
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                if progress:
                    progress(0, total)
                with os.fdopen(fd, "wb") as handle:
                    for chunk in response.stream(CHUNK):
                        handle.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                if total and done != total:
                    raise urllib3.exceptions.ProtocolError(f"got {done} of {total} bytes")
                os.replace(temporary, target)
                return hasher.hexdigest() if hasher is not None else ""
            finally:
                response.close()
                response.release_conn()
                if os.path.exists(temporary):
                    os.unlink(temporary)

        return self._retry("download", bucket, key, call)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        def call() -> bytes:
            response = self.client.get_object(bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return self._retry("download", bucket, key, call)

    # --- retries and errors ----------------------------------------------------------------------

    def _retry(self, action: str, bucket: str, key: str | None, call: Callable[[], T]) -> T:
        """Run `call`, retrying transient failures with backoff until the retry budget is spent."""
        started = time.monotonic()
        delay, attempts = 0.25, 0
        while True:
            attempts += 1
            try:
                return call()
            except S3Error as exc:
                if exc.code not in _RETRYABLE_CODES:
                    raise self._refused(action, bucket, key, exc) from None
                cause: str = f"{exc.code}: {exc.message}"
            except (ServerError, InvalidResponseError) as exc:
                status = getattr(exc, "_status_code", None) or getattr(exc, "status_code", None) or 500
                if isinstance(exc, InvalidResponseError) and int(status) < 500:
                    if int(status) == 403:
                        raise StorageAuthError(
                            f"{self.where(bucket, key)} refused the credentials (HTTP 403); check the access and "
                            "secret keys (CORTEXLITE_S3_ACCESS_KEY / CORTEXLITE_S3_SECRET_KEY)"
                        ) from None
                    raise StorageError(f"{action} at {self.where(bucket, key)} failed: {exc}") from None
                cause = f"HTTP {status} from the server"
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if _is_certificate_error(exc):
                    raise StorageError(
                        f"{action} at {self.where(bucket, key)}: the server's TLS certificate is not trusted ({exc}); "
                        "give its CA with CORTEXLITE_S3_CA_BUNDLE (or `env add --s3-ca-bundle FILE`)"
                    ) from None
                cause = _network_cause(exc)
            except ValueError as exc:  # the SDK's own checks: a bucket or key name it refuses
                raise StorageError(f"{action} at {self.where(bucket, key)}: {exc}") from None
            elapsed = time.monotonic() - started
            if elapsed + delay > self.settings.retry_budget:
                raise StorageUnreachable(
                    f"{action} at {self.where(bucket, key)} failed after {attempts} attempt(s) in {elapsed:.1f}s: "
                    f"{cause} (connect timeout {self.settings.connect_timeout:g}s, read timeout "
                    f"{self.settings.read_timeout:g}s, retry budget {self.settings.retry_budget:g}s)"
                )
            time.sleep(delay)
            delay = min(delay * 2, 4.0)

    def _refused(self, action: str, bucket: str, key: str | None, exc: S3Error) -> StorageError:
        where = self.where(bucket, key)
        if exc.code in _AUTH_CODES:
            return StorageAuthError(
                f"{where} does not accept the credentials ({exc.code}: access key "
                f"{self.settings.access_key or '(none)'}); check CORTEXLITE_S3_ACCESS_KEY and CORTEXLITE_S3_SECRET_KEY"
            )
        if exc.code == "AccessDenied":
            writes = action in ("upload", "create")
            return StorageDenied(
                f"{where}: access denied to the access key {self.settings.access_key or '(none)'} for {action} "
                f"(an unknown key, or one without {'write' if writes else 'read'} access); "
                f"use credentials with {'write' if writes else 'read'} access to this bucket"
            )
        if exc.code == "NoSuchBucket":
            return StorageNotFound(
                f"the bucket {bucket} does not exist at {self.endpoint}; create it "
                "(`cortexlite env add ... --create-bucket`, or with your store's console)"
            )
        if exc.code in _MISSING_OBJECT:
            return StorageNotFound(f"{where}: no such object")
        return StorageError(f"{action} at {where} failed: {exc.code}: {exc.message}")


def _metadata(raw: Any) -> dict[str, str]:
    found = {}
    for name, value in (raw or {}).items():
        lower = str(name).lower()
        if lower.startswith("x-amz-meta-"):
            found[lower[len("x-amz-meta-") :]] = str(value)
    return found


def _is_certificate_error(exc: BaseException) -> bool:
    import ssl

    reason = getattr(exc, "reason", None)
    for candidate in (exc, reason, getattr(reason, "__context__", None), exc.__context__):
        if isinstance(candidate, ssl.SSLCertVerificationError):
            return True
        if isinstance(candidate, urllib3.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(candidate):
            return True
    return False


def _network_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and reason is not None:
        exc = reason
    # NewConnectionError subclasses ConnectTimeoutError: test it first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return f"cannot connect ({str(exc).rpartition(': ')[2][:120] or 'refused'})"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "the server stopped answering (read timeout)"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "no connection (connect timeout)"
    text = str(exc) or type(exc).__name__
    return f"connection lost ({text[:200]})"


def _flag(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false (got {raw!r})")


def _seconds(name: str, raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}: expected a number of seconds above 0 (got {raw!r})")
    return value
