"""End to end against a real Nomad agent (`nomad agent -dev`), when a `nomad` binary is on PATH.

No Nomad binary can be installed on this project's CI machines, so this test is skipped there (with
that reason) and the contract tests (test_nomad_contract.py) run against a fake agent instead. On a
machine with Nomad and Docker it deploys a real API: images from this machine's engine (the dev
agent's Docker driver uses the same engine), the bundle through SeaweedFS (replicas reach it through
the Docker bridge), the gateway job's Traefik on the host network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.conftest import CORTEXLITE, docker, make_api_project
from tests.integration.storage_server import FULL, SeaweedServer, TcpProxy

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        shutil.which("nomad") is None,
        reason="no nomad binary on PATH: the end-to-end test against `nomad agent -dev` did not run "
        "(the contract tests run against a fake agent)",
    ),
]


class DevAgent:
    """`nomad agent -dev` on free loopback ports, its data in a directory of the test's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {name: free_port() for name in ("http", "rpc", "serf")}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def start(self) -> None:
        config = self.root / "agent.hcl"
        ports = "\n".join(f"  {name} = {port}" for name, port in self.ports.items())
        config.write_text(f'data_dir = "{self.root / "data"}"\nports {{\n{ports}\n}}\n')
        command = ["nomad", "agent", "-dev", "-bind", "127.0.0.1", "-config", str(config)]
        with (self.root / "agent.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while not self._docker_ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nomad agent -dev did not start: {(self.root / 'agent.log').read_text()[-3000:]}")
            time.sleep(0.5)

    def _docker_ready(self) -> bool:
        try:
            nodes = httpx.get(f"{self.address}/v1/nodes", timeout=2).json()
            if not nodes or nodes[0].get("Status") != "ready":
                return False
            node = httpx.get(f"{self.address}/v1/node/{nodes[0]['ID']}", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool((node.get("Drivers") or {}).get("docker", {}).get("Healthy"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[DevAgent]:
    dev = DevAgent(tmp_path / "nomad")
    dev.root.mkdir()
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()
        # What the agent's Docker driver left: containers of this test's jobs, found by Nomad's own label.
        for job in ("cortexlite-answer", "cortexlite-gateway", "cortexlite-operator"):
            ids = docker("ps", "-aq", "-f", f"label=com.hashicorp.nomad.job_id={job}", check=False).stdout.split()
            if ids:
                docker("rm", "-f", *ids, check=False)


def _bridge_address() -> str:
    found = docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()
    return found or "172.17.0.1"


def test_a_real_dev_agent_serves_updates_and_reverts(
    agent: DevAgent, tmp_path: Path, s3_server: SeaweedServer, docker_image_options: Path
) -> None:
    s3_server.make_bucket("nomad-e2e")
    relay = TcpProxy(("127.0.0.1", s3_server.ports["s3"]), host=_bridge_address())  # replicas -> SeaweedFS
    home = tmp_path / "home"
    home.mkdir()
    (home / "image.json").write_text(docker_image_options.read_text())
    port, admin_port = free_port(), free_port()
    environ = {"CORTEXLITE_HOME": str(home), "CORTEXLITE_ENV": "dev", "NO_COLOR": "1"}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        import os

        result = subprocess.run(
            [str(CORTEXLITE), *args], env={**os.environ, **environ}, capture_output=True, text=True, timeout=900,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"cortexlite {' '.join(args)}: {result.stdout}\n{result.stderr}")
        return result

    try:
        cli(
            "env", "add", "dev", "--nomad-addr", agent.address, "--storage", "s3://nomad-e2e/dev",
            "--s3-endpoint", s3_server.endpoint, "--s3-access-key", FULL.access_key,
            "--s3-secret-key", FULL.secret_key, "--s3-replica-endpoint", relay.endpoint,
            "--gateway-port", str(port), "--gateway-admin-port", str(admin_port),
        )  # fmt: skip
        project = make_api_project(tmp_path / "project")
        cli("up", str(project))
        url = f"http://127.0.0.1:{port}/answer"
        deadline = time.monotonic() + 60  # Traefik polls the agent every 5 s
        while time.monotonic() < deadline:
            try:
                if httpx.post(url, json={}, timeout=5).json() == {"answer": "v1"}:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        assert httpx.post(url, json={}, timeout=5).json() == {"answer": "v1"}
        assert json.loads(cli("get", "-o", "json").stdout)[0]["status"] == "live"

        predictor = project / "predictor.py"
        predictor.write_text(predictor.read_text().replace('"v1"', '"v2"'))
        cli("deploy", str(project))
        assert httpx.post(url, json={}, timeout=5).json() == {"answer": "v2"}

        predictor.write_text("raise ImportError('broken on purpose')\n")
        failed = cli("deploy", str(project), check=False)
        assert failed.returncode == 1 and "which keeps serving" in failed.stderr
        assert httpx.post(url, json={}, timeout=5).json() == {"answer": "v2"}
    finally:
        cli("down", check=False)
        relay.close()
