"""Reading spec files: `cortexlite.yaml`/`cortex.yaml` and the resolved-spec JSON.

Every failure is a `SpecError` whose message names the file, the API and the field, e.g.
`cortexlite.yaml: iris: predictor: processes_per_replica: must be >= 1 (got 0)`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import SpecError
from .spec import RESOLVED_SPEC_VERSION, ApiSpec, ResolvedSpec

__all__ = [
    "SPEC_FILENAMES",
    "find_spec_file",
    "format_validation_error",
    "load_api_specs",
    "load_resolved_spec",
    "read_yaml_list",
    "select_api",
]

SPEC_FILENAMES = ("cortexlite.yaml", "cortexlite.yml", "cortex.yaml", "cortex.yml")


def find_spec_file(project_dir: Path) -> Path | None:
    for name in SPEC_FILENAMES:
        candidate = project_dir / name
        if candidate.is_file():
            return candidate
    return None


def read_yaml_list(path: Path) -> list[Any]:
    """The YAML document at `path`, which must be a list (a single mapping is accepted as one API)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path.name}: cannot read the file: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{where}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name}: invalid YAML: {exc}") from exc
    if data is None:
        raise SpecError(f"{path.name}: the file is empty; expected a list of APIs")
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise SpecError(f"{path.name}: expected a list of APIs (got {_kind(data)})")
    return data


def load_api_specs(path: Path, notices: list[str] | None = None) -> list[ApiSpec]:
    """Every API in a `cortexlite.yaml`/`cortex.yaml`, validated by the spec models.

    Notices (Cortex spellings mapped, Cortex keys ignored) are appended to `notices`, each
    prefixed like an error: `cortex.yaml: iris: networking: local_port is ignored: ...`.
    """
    apis: list[ApiSpec] = []
    for index, item in enumerate(read_yaml_list(path)):
        label = _api_label(item, index)
        if not isinstance(item, dict):
            raise SpecError(f"{path.name}: {label}: expected a mapping (got {_kind(item)})")
        found: list[str] = []
        try:
            apis.append(ApiSpec.model_validate(item, context={"notices": found}))
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, f"{path.name}: {label}")) from exc
        if notices is not None:
            notices.extend(f"{path.name}: {label}: {notice}" for notice in found)
    _check_unique(apis, path.name)
    return apis


def _check_unique(apis: Sequence[ApiSpec], source: str) -> None:
    names: dict[str, int] = {}
    endpoints: dict[str, str] = {}
    for index, api in enumerate(apis):
        if api.name in names:
            raise SpecError(f"{source}: {api.name}: name: must be unique (API #{names[api.name] + 1} has it too)")
        names[api.name] = index
        if api.endpoint in endpoints:
            raise SpecError(
                f"{source}: {api.name}: networking: endpoint: must be unique ({endpoints[api.endpoint]} uses "
                f"{api.endpoint} too)"
            )
        endpoints[api.endpoint] = api.name


def select_api(apis: Sequence[ApiSpec], name: str | None, source: str) -> ApiSpec:
    if not apis:
        raise SpecError(f"{source}: no APIs defined")
    if name is None:
        return apis[0]
    for api in apis:
        if api.name == name:
            return api
    known = ", ".join(api.name for api in apis)
    raise SpecError(f"{source}: no API named {name!r} (CORTEXLITE_API_NAME); found: {known}")


def load_resolved_spec(path: Path) -> ResolvedSpec:
    """The resolved-spec JSON the control plane wrote for this replica."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the resolved spec (CORTEX_API_SPEC): {exc}") from exc
    except ValueError as exc:
        raise SpecError(f"{path}: the resolved spec is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a JSON object (got {_kind(data)})")
    version = data.get("version")
    if version != RESOLVED_SPEC_VERSION:
        raise SpecError(
            f"{path}: resolved-spec version {version!r} is not supported "
            f"(this runtime reads version {RESOLVED_SPEC_VERSION})"
        )
    try:
        return ResolvedSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, str(path))) from exc


def format_validation_error(exc: ValidationError, prefix: str) -> str:
    """One line per problem: `prefix: field: subfield: message`."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"] if not _is_internal(part)]
        if error["type"] == "extra_forbidden" and loc:
            message = f"key {loc.pop()} is not supported"
        else:
            message = _describe(error)
        lines.append(": ".join(filter(None, (prefix, *loc, message))))
    return "\n".join(lines)


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "missing":
        return "is required"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
        bound = next(iter(ctx.values()))
        return f"must be {op[kind]} {bound} (got {got!r})"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '?')} (got {got!r})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer (got {got!r})"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number (got {got!r})"
    if kind in ("string_type",):
        return f"expected a string (got {got!r})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (got {_kind(got)})"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false (got {got!r})"
    if kind == "string_too_short":
        return "must not be empty"
    return f"{error['msg']} (got {got!r})"


def _is_internal(part: object) -> bool:
    # pydantic adds tags such as `function-after[...]` for validators; they mean nothing to users.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _api_label(item: object, index: int) -> str:
    if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
        return str(item["name"])
    return f"api #{index + 1}"


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
