"""A typed client of Nomad's HTTP API, over httpx: the calls cortexlite makes and nothing more.

Why not python-nomad: it lacks the scale endpoint, validation of JSON jobs and streaming log
follow. Every request carries the ACL token (`X-Nomad-Token`), the namespace and the region; TLS
uses the cluster's CA; time is bounded (connect 5 s, read 30 s beyond a blocking query's wait).
Errors keep Nomad's own text and name the agent: 403 `NomadAuthError`, 404 `NomadNotFound`,
400/500 on jobs `NomadInvalid`, no answer `NomadUnreachable`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from cortexlite.errors import (
    NomadAuthError,
    NomadConflict,
    NomadError,
    NomadInvalid,
    NomadNotFound,
    NomadUnreachable,
)
from cortexlite.nomad.settings import NomadSettings

__all__ = ["LogChunk", "NomadClient", "Registration", "decode_frames"]

_GET_ATTEMPTS = 3
_BODY_LIMIT = 2000


@dataclass(frozen=True)
class Registration:
    eval_id: str
    job_modify_index: int
    warnings: str


@dataclass(frozen=True)
class LogChunk:
    data: bytes
    file: str


class NomadClient:
    def __init__(self, settings: NomadSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        headers = {"X-Nomad-Token": settings.token} if settings.token else {}
        verify: Any = False if settings.skip_verify else (str(settings.ca_cert) if settings.ca_cert else True)
        cert = (str(settings.client_cert), str(settings.client_key)) if settings.client_cert else None
        self._http = httpx.Client(
            base_url=settings.address, headers=headers, verify=verify, cert=cert, trust_env=False,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout), transport=transport,
        )  # fmt: skip

    def close(self) -> None:
        self._http.close()

    # --- jobs -----------------------------------------------------------------------------------

    def validate(self, job: Mapping[str, Any]) -> list[str]:
        """Nomad's validation of `job`: its errors (empty when valid). Validate answers 200 either way."""
        body = self._json("POST", "/v1/validate/job", body={"Job": job})
        errors = [str(error) for error in body.get("ValidationErrors") or []]
        if not errors and body.get("Error"):
            errors = [str(body["Error"])]
        return errors

    def plan(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._json("POST", f"/v1/job/{_id(job)}/plan", body={"Job": job, "Diff": True}))

    def register(self, job: Mapping[str, Any], *, preserve_counts: bool) -> Registration:
        body = self._json("POST", "/v1/jobs", body={"Job": job, "PreserveCounts": preserve_counts})
        return Registration(
            str(body.get("EvalID") or ""), int(body.get("JobModifyIndex") or 0), str(body.get("Warnings") or "")
        )

    def job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return dict(self._json("GET", f"/v1/job/{_q(job_id)}"))
        except NomadNotFound:
            return None

    def jobs(self, prefix: str) -> list[dict[str, Any]]:
        found = self._json("GET", "/v1/jobs", params={"prefix": prefix, "meta": "true"})
        return [dict(item) for item in found or []]

    def deregister(self, job_id: str, *, purge: bool = True) -> None:
        self._json("DELETE", f"/v1/job/{_q(job_id)}", params={"purge": "true"} if purge else None)

    def deployment(self, job_id: str, index: int = 0, wait: float | None = None) -> tuple[dict[str, Any] | None, int]:
        """The job's latest deployment (None: it never had one) and the index; blocks while `index` is current."""
        answer = self._request("GET", f"/v1/job/{_q(job_id)}/deployment", params=_blocking(index, wait), wait=wait)
        body = _parse(answer)
        return (dict(body) if isinstance(body, dict) else None), _index(answer)

    def fail_deployment(self, deployment_id: str) -> None:
        """Mark a running deployment failed: with `AutoRevert`, Nomad goes back to the last stable version."""
        self._json("POST", f"/v1/deployment/fail/{_q(deployment_id)}", body={"DeploymentID": deployment_id})

    def allocations(self, job_id: str, index: int = 0, wait: float | None = None) -> tuple[list[dict[str, Any]], int]:
        answer = self._request("GET", f"/v1/job/{_q(job_id)}/allocations", params=_blocking(index, wait), wait=wait)
        body = _parse(answer)
        return [dict(item) for item in body or []], _index(answer)

    def allocation(self, alloc_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/allocation/{_q(alloc_id)}"))

    def evaluations(self, job_id: str) -> list[dict[str, Any]]:
        return [dict(item) for item in self._json("GET", f"/v1/job/{_q(job_id)}/evaluations") or []]

    def scale(self, job_id: str, group: str, count: int, message: str, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Set the group's count. Nomad answers 400 while a deployment runs (`NomadInvalid`, status 400)."""
        body = {"Count": count, "Target": {"Group": group}, "Message": message, "Meta": dict(meta)}
        return dict(self._json("POST", f"/v1/job/{_q(job_id)}/scale", body=body))

    def scale_status(self, job_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/v1/job/{_q(job_id)}/scale"))

    # --- variables ------------------------------------------------------------------------------

    def variable(self, path: str) -> dict[str, Any] | None:
        """The variable at `path` (its `Items` and `ModifyIndex`), or None when there is none."""
        try:
            return dict(self._json("GET", f"/v1/var/{quote(path)}"))
        except NomadNotFound:
            return None

    def put_variable(self, path: str, items: Mapping[str, str], *, cas: int | None = None) -> None:
        """Write the variable (all its items). With `cas`, only if its ModifyIndex is still `cas` (0: only if new);
        otherwise `NomadConflict`."""
        body: dict[str, Any] = {"Path": path, "Items": dict(items)}
        if self.settings.namespace:
            body["Namespace"] = self.settings.namespace
        params = {"cas": str(cas)} if cas is not None else None
        self._json("PUT", f"/v1/var/{quote(path)}", body=body, params=params)

    def delete_variable(self, path: str) -> None:
        try:
            self._json("DELETE", f"/v1/var/{quote(path)}")
        except NomadNotFound:
            return

    # --- logs -----------------------------------------------------------------------------------

    def logs(
        self, alloc_id: str, task: str, kind: str, *, follow: bool = False, tail_bytes: int | None = None
    ) -> Iterator[LogChunk]:
        """A task's stdout or stderr: the last `tail_bytes` (else all), then, with `follow`, what it writes next."""
        params: dict[str, str] = {"task": task, "type": kind, "follow": "true" if follow else "false"}
        if tail_bytes is not None:
            params |= {"origin": "end", "offset": str(tail_bytes)}
        timeout = httpx.Timeout(None if follow else self.settings.read_timeout, connect=self.settings.connect_timeout)
        path = f"/v1/client/fs/logs/{_q(alloc_id)}"
        try:
            with self._http.stream("GET", path, params=self._params(params), timeout=timeout) as answer:
                if answer.status_code != 200:
                    answer.read()
                    raise _error(answer, self.settings.address)
                yield from decode_frames(answer.iter_bytes())
        except httpx.HTTPError as exc:
            raise NomadUnreachable(f"Nomad at {self.settings.address}: reading logs of {alloc_id}: {exc}") from exc

    # --- plumbing -------------------------------------------------------------------------------

    def _json(self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        return _parse(self._request(method, path, body=body, params=params))

    def _request(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None,
        wait: float | None = None,
    ) -> httpx.Response:  # fmt: skip
        timeout = httpx.Timeout(self.settings.read_timeout + (wait or 0), connect=self.settings.connect_timeout)
        attempts = _GET_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                answer = self._http.request(method, path, params=self._params(params), json=body, timeout=timeout)
            except httpx.HTTPError as exc:
                if attempt < attempts and isinstance(exc, httpx.TransportError) and not _certificate(exc):
                    time.sleep(0.5 * attempt)
                    continue
                raise NomadUnreachable(_unreachable(self.settings.address, method, path, exc)) from exc
            if answer.status_code >= 400:
                raise _error(answer, self.settings.address)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _params(self, params: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(params or {})
        if self.settings.namespace:
            merged.setdefault("namespace", self.settings.namespace)
        if self.settings.region:
            merged.setdefault("region", self.settings.region)
        return merged


def decode_frames(chunks: Iterator[bytes]) -> Iterator[LogChunk]:
    """Nomad's framed log stream: JSON objects back to back, `Data` in base64, `{}` as heartbeats."""
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode("utf-8", "replace")
        position = 0
        while True:
            while position < len(buffer) and buffer[position].isspace():
                position += 1
            if position >= len(buffer):
                break
            try:
                frame, position = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                break  # an incomplete frame: wait for the rest
            if isinstance(frame, dict) and frame.get("Data"):
                yield LogChunk(base64.b64decode(frame["Data"]), str(frame.get("File", "")))
        buffer = buffer[position:]


def _parse(answer: httpx.Response) -> Any:
    if not answer.content:
        return None
    try:
        return answer.json()
    except ValueError as exc:
        raise NomadError(f"Nomad answered {answer.request.url.path} with something that is not JSON") from exc


def _error(answer: httpx.Response, address: str) -> NomadError:
    text = answer.text.strip()[:_BODY_LIMIT] or answer.reason_phrase
    what = f"Nomad at {address} refused {answer.request.method} {answer.request.url.path} ({answer.status_code})"
    if answer.status_code == 403:
        return NomadAuthError(
            f"{what}: {text}; check the ACL token (nomad_token or NOMAD_TOKEN) and its policy", answer.status_code
        )
    if answer.status_code == 404:
        return NomadNotFound(f"{what}: {text}", answer.status_code)
    if answer.status_code == 409:
        return NomadConflict(f"{what}: it changed since it was read", answer.status_code)
    if answer.status_code in (400, 500) and "/job" in answer.request.url.path:
        return NomadInvalid(f"{what}: {text}", answer.status_code)
    return NomadError(f"{what}: {text}", answer.status_code)


def _unreachable(address: str, method: str, path: str, exc: httpx.HTTPError) -> str:
    if _certificate(exc):
        return (
            f"Nomad at {address}: its TLS certificate is not trusted ({method} {path}: {exc}); give the CA that "
            "signed it with `env add --ca-cert` (or NOMAD_CACERT)"
        )
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "did not answer"
    return f"Nomad at {address} {kind} ({method} {path}: {exc or type(exc).__name__}); check nomad_addr or NOMAD_ADDR"


def _certificate(exc: httpx.HTTPError) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _blocking(index: int, wait: float | None) -> dict[str, str]:
    if index <= 0 or wait is None:
        return {}
    return {"index": str(index), "wait": f"{max(1, int(wait * 1000))}ms"}


def _index(answer: httpx.Response) -> int:
    try:
        return int(answer.headers.get("X-Nomad-Index", "0"))
    except ValueError:
        return 0


def _id(job: Mapping[str, Any]) -> str:
    return _q(str(job["ID"]))


def _q(value: str) -> str:
    return quote(value, safe="")
