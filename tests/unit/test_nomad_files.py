"""The job files under nomad/: rendered files match their renderers, and the HCL files say what the JSON says.

No Nomad agent is involved: the JSON files are checked against Nomad's API field map
(`tests/nomad_schema.py`), the HCL files only for HCL syntax (python-hcl2) and a few facts shared with
their JSON twins. Whether Nomad's own parser accepts an HCL file is not tested here.
"""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.nomad_schema import check_job_request

REPO = Path(__file__).resolve().parents[2]
NOMAD_DIR = REPO / "nomad"
RENDER_SCRIPT = REPO / "scripts" / "render-nomad-files.py"
RENDER_HINT = "run `.venv/bin/python scripts/render-nomad-files.py` and commit the result"
JSON_FILES = sorted(NOMAD_DIR.glob("*.json"))
HCL_FILES = sorted(NOMAD_DIR.glob("*.hcl"))
HCL_JOBS = ("minio", "operator", "traefik")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    example_jobs = runpy.run_path(str(RENDER_SCRIPT))["example_jobs"]
    return {name: {"Job": job} for name, job in example_jobs(REPO).items()}


def test_the_job_files_are_there() -> None:
    assert {path.name for path in HCL_FILES} == {f"{name}.nomad.hcl" for name in HCL_JOBS}
    assert {f"{name}.nomad.json" for name in HCL_JOBS} <= {path.name for path in JSON_FILES}


def test_rendered_files_match_their_renderers(rendered: dict[str, dict[str, Any]]) -> None:
    assert rendered, "scripts/render-nomad-files.py renders nothing"
    for name, body in rendered.items():
        path = NOMAD_DIR / name
        assert path.is_file(), f"nomad/{name} is missing: {RENDER_HINT}"
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        assert on_disk == json.loads(json.dumps(body)), f"nomad/{name} differs from its renderer: {RENDER_HINT}"


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda path: path.name)
def test_json_files_pass_the_strict_api_check(path: Path) -> None:
    issues = check_job_request(json.loads(path.read_text(encoding="utf-8")))
    assert issues == [], f"nomad/{path.name}:\n" + "\n".join(f"  {issue}" for issue in issues)


@pytest.mark.parametrize("path", HCL_FILES, ids=lambda path: path.name)
def test_hcl_files_parse_syntax_only(path: Path) -> None:
    """HCL2 syntax, as python-hcl2 reads it; Nomad's job schema is not applied."""
    assert "job" in _load_hcl(path)


@pytest.mark.parametrize("name", HCL_JOBS)
def test_hcl_files_match_their_json(name: str) -> None:
    hcl = _hcl_facts(_load_hcl(NOMAD_DIR / f"{name}.nomad.hcl"))
    api = _json_facts(json.loads((NOMAD_DIR / f"{name}.nomad.json").read_text(encoding="utf-8"))["Job"])
    assert hcl == api


# --- secrets ------------------------------------------------------------------------------------

_SECRET_NAME = r"[A-Za-z0-9_]*(?:PASSWORD|SECRET|TOKEN|ACCESS_KEY)[A-Za-z0-9_]*"
_ASSIGNMENT = re.compile(rf"""["']?(?<![<\w])({_SECRET_NAME})["']?[ \t]*[:=][ \t]*["']?([^\s"',]*)""", re.IGNORECASE)
# What stands in for a value: a template, a shell expansion, a placeholder, or nothing at all.
_REFERENCE = re.compile(r"^(?:$|\{\{|\$|<|\.\.\.|\[)")
_KNOWN_SECRETS = re.compile(r"minioadmin|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----")


def secret_values(text: str) -> list[str]:
    """Secret-looking values written into `text` (`NAME=value` where NAME sounds secret, known default keys)."""
    found = [match.group(0) for match in _ASSIGNMENT.finditer(text) if not _REFERENCE.match(match.group(2))]
    return found + [match.group(0) for match in _KNOWN_SECRETS.finditer(text)]


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("MINIO_ROOT_PASSWORD=hunter2hunter2", True),
        ('"CORTEXLITE_S3_SECRET_KEY": "abc123"', True),
        ("NOMAD_TOKEN = 'a1b2c3'", True),
        ("user minioadmin", True),
        ("MINIO_ROOT_PASSWORD={{ .MINIO_ROOT_PASSWORD.Value | toJSON }}", False),
        ('MINIO_ROOT_PASSWORD="$(openssl rand -hex 24)"', False),
        ("export CORTEXLITE_S3_SECRET_KEY=<the password>", False),
        ("NOMAD_TOKEN in its environment", False),
        ("values shown as `<secret:CORTEXLITE_S3_SECRET_KEY>`", False),
    ],
)
def test_the_secret_check_sees_values(text: str, flagged: bool) -> None:
    assert bool(secret_values(text)) is flagged


@pytest.mark.parametrize("path", sorted(p for p in NOMAD_DIR.iterdir() if p.is_file()), ids=lambda path: path.name)
def test_no_secret_values_in_nomad_files(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        text = "\n".join(_strings(json.loads(text)))  # templates' newlines as newlines, not `\n`
    found = len(secret_values(text))  # a count: the values themselves stay out of the test log
    assert found == 0, f"nomad/{path.name} holds {found} value(s) that look like secrets"


# --- helpers ------------------------------------------------------------------------------------


def _load_hcl(path: Path) -> dict[str, Any]:
    """python-hcl2's reading, without its markers and with strings unquoted (python-hcl2 7 and 8)."""
    text = path.read_text(encoding="utf-8")
    try:
        from hcl2.utils import SerializationOptions
    except ImportError:  # python-hcl2 < 8
        return dict(_clean(hcl2.loads(text)))
    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, preserve_heredocs=False, strip_string_quotes=True
    )
    return dict(_clean(hcl2.loads(text, serialization_options=options)))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(key): _clean(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return _unquote(value) if isinstance(value, str) else value


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _labelled(blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """`group "x" {...}` blocks as python-hcl2 gives them ([{label: body}, ...]), as (label, body) pairs."""
    return [(label, body) for block in blocks for label, body in block.items()]


def _one(blocks: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The body of an unlabelled block that occurs at most once (`config`, `env`, `network`)."""
    assert blocks is None or len(blocks) == 1
    return blocks[0] if blocks else {}


def _hcl_facts(parsed: dict[str, Any]) -> dict[str, Any]:
    [(job_id, job)] = _labelled(parsed["job"])
    groups = {}
    for group_name, group in _labelled(job.get("group", [])):
        ports = {label: port.get("static") for label, port in _labelled(_one(group.get("network")).get("port", []))}
        tasks = {}
        for task_name, task in _labelled(group.get("task", [])):
            config = _one(task.get("config"))
            env = {key: _unescape(str(value)) for key, value in _one(task.get("env")).items()}
            args = [_unescape(arg) for arg in config.get("args", [])]
            tasks[task_name] = {"driver": task["driver"], "image": config.get("image"), "args": args, "env": env}
        groups[group_name] = {"ports": ports, "tasks": tasks}
    return {"id": job_id, "type": job.get("type", "service"), "groups": groups}


def _json_facts(job: dict[str, Any]) -> dict[str, Any]:
    groups = {}
    for group in job["TaskGroups"]:
        networks = group.get("Networks") or [{}]
        ports = {port["Label"]: port["Value"] for port in networks[0].get("ReservedPorts") or []}
        tasks = {
            task["Name"]: {
                "driver": task["Driver"],
                "image": task["Config"].get("image"),
                "args": task["Config"].get("args", []),
                "env": task.get("Env") or {},
            }
            for task in group["Tasks"]
        }
        groups[group["Name"]] = {"ports": ports, "tasks": tasks}
    return {"id": job["ID"], "type": job.get("Type", "service"), "groups": groups}


def _unescape(text: str) -> str:
    """HCL's `$${` is a literal `${` (Nomad's runtime interpolation), as the API form writes it."""
    return text.replace("$${", "${")


def _strings(value: Any) -> list[str]:
    """Every key and scalar of a JSON document, one per line, a scalar on its key's line (`KEY: value`)."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            nested = isinstance(item, dict | list)
            lines += [f"{key}:", *_strings(item)] if nested else [f"{key}: {item}"]
        return lines
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [str(value)]
