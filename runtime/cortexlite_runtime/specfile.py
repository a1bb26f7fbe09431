"""Reading spec files: `cortexlite.yaml`/`cortex.yaml` and the resolved-spec JSON.

Every failure is a `SpecError` whose message names the file, the API and the field, e.g.
`cortexlite.yaml: iris: predictor: processes_per_replica: must be >= 1 (got 0)`. YAML is read
safely: no Python tags, a bounded expansion of aliases (no "billion laughs"), no recursive aliases.
"""

from __future__ import annotations

import json
import re
import reprlib
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
# Nodes that aliases may add to a document beyond those written in it: enough for any real reuse of
# anchors, far below what a document of nested aliases expands to (10 levels of 10: 10**10).
MAX_ALIAS_EXPANSION = 100_000
_SURROGATE = re.compile("[\ud800-\udfff]")


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
        data = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{where}: invalid YAML: {problem}") from exc
    except yaml.reader.ReaderError as exc:
        where = f"character #x{exc.character:04x} at offset {exc.position}"
        raise SpecError(f"{path.name}: invalid YAML: {where}: {exc.reason}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name}: invalid YAML: {exc}") from exc
    except RecursionError as exc:  # PyYAML composes and constructs recursively
        raise SpecError(f"{path.name}: invalid YAML: lists or mappings are nested too deeply") from exc
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
        except (ArithmeticError, RecursionError) as exc:  # a validator failing on an extreme value (10**400)
            raise SpecError(f"{path.name}: {label}: a value is out of range: {exc}") from exc
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
    except (ValueError, RecursionError) as exc:
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
    except (ArithmeticError, RecursionError) as exc:
        raise SpecError(f"{path}: a value is out of range: {exc}") from exc


def format_validation_error(exc: ValidationError, prefix: str) -> str:
    """One line per problem: `prefix: field: subfield: message`."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"] if not _is_internal(part)]
        if error["type"] == "extra_forbidden" and loc:
            message = f"key {loc.pop()} is not supported"
        else:
            message = _describe(error)
        lines.append(_printable(": ".join(filter(None, (prefix, *loc, message)))))
    return "\n".join(lines)


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _PREVIEW.repr(error.get("input"))
    if kind == "missing":
        return "is required"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
        bound = next(iter(ctx.values()))
        return f"must be {op[kind]} {bound} (got {got})"
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected', '?')} (got {got})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer (got {got})"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number (got {got})"
    if kind in ("string_type",):
        return f"expected a string (got {got})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (got {_kind(error.get('input'))})"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false (got {got})"
    if kind == "string_too_short":
        return "must not be empty"
    return f"{error['msg']} (got {got})"


def _is_internal(part: object) -> bool:
    # pydantic adds tags such as `function-after[...]` for validators; they mean nothing to users.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _api_label(item: object, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    if isinstance(name, str) and name and len(name) <= 100 and name.isprintable():
        return name
    return f"api #{index + 1}"


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


# Values quoted in messages stay short, whatever the document holds.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxstring, _PREVIEW.maxother, _PREVIEW.maxlong = 3, 100, 100, 40
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = _PREVIEW.maxset = _PREVIEW.maxfrozenset = 6


def _printable(text: str) -> str:
    """`text` with every character that is not printable escaped: a problem stays on one line (a key may hold
    a newline), and a lone surrogate (a "\\ud800" escape in the YAML) cannot break the terminal's encoding."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class _SpecLoader(yaml.SafeLoader):
    """The safe loader, where a scalar that cannot be converted (`!!int abc`, 2001-02-30) is a YAML error,
    and so is a lone surrogate (a "\\ud800" escape): no JSON could carry it to a replica."""

    def construct_scalar(self, node: yaml.ScalarNode | yaml.MappingNode) -> Any:
        value = super().construct_scalar(node)
        if isinstance(value, str) and _SURROGATE.search(value):
            problem = f"{_PREVIEW.repr(value)} holds a lone surrogate (an escape such as \\ud800 is not a character)"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, OverflowError) as exc:  # none of them a yaml.YAMLError
            tag = node.tag.rpartition(":")[2]
            what = _PREVIEW.repr(node.value) if isinstance(node, yaml.ScalarNode) else "this collection"
            detail = "" if isinstance(exc, KeyError) else f": {exc}"  # a KeyError says only the key again
            problem = f"cannot read {what} as {tag}{detail}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from exc


def _load_yaml(text: str) -> Any:
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_aliases(root: yaml.Node) -> None:
    """Refuse recursive aliases, and aliases that expand the document by more than MAX_ALIAS_EXPANSION nodes."""
    sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded
    open_nodes: set[int] = set()  # the path from the root to the node being counted
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
        elif id(node) in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a node that contains it (a recursive structure)", node.start_mark
            )
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children)
    if sizes[id(root)] - len(sizes) > MAX_ALIAS_EXPANSION:
        raise yaml.constructor.ConstructorError(
            None, None, f"aliases expand the document by more than {MAX_ALIAS_EXPANSION} nodes", root.start_mark
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
