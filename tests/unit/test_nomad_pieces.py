"""Pure parts of the Nomad backend: settings from the environment, log frames, plans, replica states.

The recorded response shapes come from Nomad's API documentation (tests/data/nomad/responses); no
Nomad agent ran.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cortexlite.environments import BackendKind, Environment
from cortexlite.errors import CortexliteError
from cortexlite.nomad.client import decode_frames
from cortexlite.nomad.plan import plan_lines, summarize_plan
from cortexlite.nomad.settings import NomadSettings
from cortexlite.nomad.status import replica_state
from cortexlite.nomad.watch import task_events

RESPONSES = Path(__file__).resolve().parents[1] / "data" / "nomad" / "responses"


def _response(name: str) -> dict[str, object]:
    return json.loads((RESPONSES / f"{name}.json").read_text())


def _nomad(**fields: object) -> Environment:
    return Environment.model_validate({"name": "prod", "backend": BackendKind.NOMAD, **fields})


def test_settings_prefer_the_environment_then_nomads_variables(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {
        "NOMAD_ADDR": "https://shell:4646/", "NOMAD_TOKEN": "shell-token", "NOMAD_NAMESPACE": "shell-ns",
        "NOMAD_REGION": "shell-region", "NOMAD_CACERT": str(ca), "NOMAD_SKIP_VERIFY": "true",
    }  # fmt: skip
    from_shell = NomadSettings.from_environment(_nomad(), environ)
    assert (from_shell.address, from_shell.token, from_shell.namespace, from_shell.region) == (
        "https://shell:4646", "shell-token", "shell-ns", "shell-region",
    )  # fmt: skip
    assert from_shell.ca_cert == ca and from_shell.skip_verify
    defined = _nomad(
        nomad_addr="http://defined:4646",
        nomad_token="t",
        nomad_namespace="ml",
        nomad_region="eu",
        nomad_ca_cert=str(ca),
    )
    settings = NomadSettings.from_environment(defined, environ)
    assert (settings.address, settings.token, settings.namespace, settings.region) == (
        "http://defined:4646", "t", "ml", "eu",
    )  # fmt: skip
    assert "token=" not in repr(settings)


@pytest.mark.parametrize(
    ("fields", "environ", "fragment"),
    [
        ({}, {}, "no Nomad address"),
        ({}, {"NOMAD_ADDR": "nomad:4646"}, "NOMAD_ADDR: expected an http://"),
        ({"nomad_addr": "http://n:4646", "nomad_ca_cert": "/nowhere/ca.pem"}, {}, "/nowhere/ca.pem is not a file"),
        ({"nomad_addr": "http://n:4646"}, {"CORTEXLITE_NOMAD_READ_TIMEOUT": "soon"}, "CORTEXLITE_NOMAD_READ_TIMEOUT"),
    ],
)
def test_settings_errors_name_the_setting(fields: dict[str, object], environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(CortexliteError) as caught:
        NomadSettings.from_environment(_nomad(**fields), environ)
    assert fragment in str(caught.value)


def test_the_token_never_shows_in_the_environments_public_form() -> None:
    public = _nomad(nomad_addr="http://n:4646", nomad_token="s3cr3t-token").public()
    assert public["nomad_token"] == "<secret:nomad_token>" and "s3cr3t-token" not in json.dumps(public)
    assert "s3cr3t-token" not in repr(_nomad(nomad_token="s3cr3t-token"))


def test_framed_logs_decode_across_chunk_boundaries() -> None:
    recorded = _response("logs-framed")
    text = str(recorded["body_text"])
    expected = b"".join(base64.b64decode(frame["Data"]) for frame in recorded["body_frames"] if frame.get("Data"))  # type: ignore[attr-defined]
    # Split every few bytes, with heartbeats between frames: the decoder must reassemble them.
    stream = text.replace("}{", "}{}{")
    chunks = [stream[i : i + 7].encode() for i in range(0, len(stream), 7)]
    decoded = list(decode_frames(iter(chunks)))
    assert b"".join(chunk.data for chunk in decoded) == expected
    assert {chunk.file for chunk in decoded} == {"alloc/logs/predictor.stdout.0"}


def test_a_plan_names_changes_and_unplaceable_groups() -> None:
    placeable = summarize_plan(_response("job-plan")["body"], [], "api")  # type: ignore[arg-type]
    assert placeable["valid"] and placeable["changes"] == {"replace": 1, "unchanged": 1}
    assert placeable["unplaceable"] == {}
    assert "~ api.predictor.Resources.MemoryMB: '1024' -> '512'" in placeable["diff"]
    assert "! api.predictor: forces create/destroy update" in placeable["diff"]
    gpu = summarize_plan(_response("job-plan-unplaceable")["body"], [], "api")  # type: ignore[arg-type]
    assert gpu["unplaceable"]["api"]["reasons"] == {"missing devices": 3}
    lines = plan_lines("resnet", gpu)
    assert any("cannot place group api" in line and "missing devices: 3" in line for line in lines)
    invalid = summarize_plan({}, ["Task group api validation failed: Missing task driver"], "api")
    assert plan_lines("x", invalid)[0] == "x: Nomad would refuse the job:"


def test_replica_states_from_recorded_allocations() -> None:
    allocations = _response("job-allocations")["body"]
    states = [replica_state(alloc) for alloc in allocations]  # type: ignore[union-attr]
    assert states[0] == ("ready", None)
    failed = [state for state in states if state[0] == "failed"]
    assert failed, states
    oom = [alloc for alloc in allocations if any("out of memory" in e for e in task_events(alloc))]  # type: ignore[union-attr]
    assert oom, "the recorded OOM-killed replacement shows as out of memory"
