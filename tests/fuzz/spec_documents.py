"""Hypothesis strategies for spec files: valid specs mutated structurally, then as text, then as bytes.

A document starts from a few valid APIs (cortexlite's and Cortex's spellings), gets wrong types, unknown
keys, huge numbers, odd unicode, nested garbage, duplicate APIs or a non-list root, is dumped as YAML,
and may then get YAML-level trouble appended (tags that cannot be converted, alias bombs of bounded
size, recursive aliases, deep nesting, duplicate keys) and byte-level damage (invalid UTF-8, truncation).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import strategies as st

__all__ = ["PROJECT_FILES", "VALID_APIS", "resolved_spec_documents", "spec_documents"]

# Files the control-plane fuzz puts next to the spec, so that the valid APIs' paths exist.
PROJECT_FILES = {"predictor.py": "class PythonPredictor: ...\n", "models/m.onnx": "onnx", "src/helper.py": "X = 1\n"}

VALID_APIS: list[dict[str, Any]] = [
    {"name": "iris"},
    {
        "name": "full",
        "kind": "RealtimeAPI",
        "predictor": {
            "type": "python",
            "path": "predictor.py",
            "python_path": "src",
            "config": {"labels": ["a", "b"], "threshold": 0.5},
            "env": {"MODE": "fast", "N": 3},
            "processes_per_replica": 2,
            "threads_per_process": 2,
            "server_side_batching": {"max_batch_size": 8, "batch_interval": "100ms"},
        },
        "compute": {"cpu": "500m", "mem": "1Gi", "gpu": 1, "gpu_mem": "8Gi", "gpu_model": "A100"},
        "autoscaling": {"min_replicas": 1, "max_replicas": 4, "init_replicas": 2, "window": "60s"},
        "update_strategy": {"max_surge": "25%", "max_unavailable": 0},
        "networking": {"endpoint": "/full/v1"},
    },
    {"name": "onnx", "predictor": {"type": "onnx", "path": "predictor.py", "model_path": "models/m.onnx"}},
    {  # Cortex 0.15
        "name": "cortex-015",
        "endpoint": "/c15",
        "predictor": {"type": "python", "path": "predictor.py", "model": "s3://bucket/m"},
        "autoscaling": {"workers_per_replica": 2, "threads_per_worker": 1},
        "tracker": {"model_type": "classification"},
    },
    {  # Cortex 0.22
        "name": "cortex-022",
        "predictor": {"type": "python", "path": "predictor.py", "models": {"path": "models/"}},
        "networking": {"local_port": 8890, "api_gateway": "public"},
    },
]

_SECTIONS: dict[str, list[str]] = {
    "predictor": [
        "type", "path", "model_path", "model", "models", "config", "env", "python_path", "processes_per_replica",
        "threads_per_process", "server_side_batching", "image",
    ],
    "compute": ["cpu", "gpu", "mem", "gpu_mem", "gpu_model", "inf"],
    "autoscaling": [
        "min_replicas", "max_replicas", "init_replicas", "target_replica_concurrency", "max_replica_concurrency",
        "window", "downscale_stabilization_period", "upscale_stabilization_period", "max_downscale_factor",
        "max_upscale_factor", "downscale_tolerance", "upscale_tolerance", "workers_per_replica", "threads_per_worker",
    ],
    "update_strategy": ["max_surge", "max_unavailable"],
    "networking": ["endpoint", "local_port", "api_gateway"],
    "tracker": ["model_type"],
    "monitoring": ["model_type"],
}  # fmt: skip
_TOP_KEYS = ["name", "kind", "endpoint", *_SECTIONS]
_NUMERIC = {
    "predictor": ["processes_per_replica", "threads_per_process"],
    "compute": ["cpu", "gpu", "mem", "gpu_mem"],
    "autoscaling": _SECTIONS["autoscaling"][:-2],
    "update_strategy": ["max_surge", "max_unavailable"],
}
_extremes = st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308, 10**400, 0, -1, 2**63, 0.5, 1e-300])

_huge_numbers = st.sampled_from(
    [10**20, -(10**20), 2**63, 2**64 + 1, 10**400, -(10**400), 10**4000, 1e308, -1e308, 5e-324, -0.0]
) | st.floats(allow_nan=True, allow_infinity=True)
_odd_strings = st.sampled_from(
    ["", " ", "\x00", "~", "null", "yes", "0x1F", "0o17", "1e400", "9" * 400 + "Ti", "9" * 400 + "h", "500m",
     "-1s", "10ms", "0s", "25%", "101%", "-5%", "/iris", "//x", "/a b", "s3://", "gs://b/m", "../x.py", "/etc/x.py",
     "a\u202eb", "\ud800", "\udcff", "🙂", "é" * 50, "x" * 10_000, "CORTEX_X", "BatchAPI", "SyncAPI", "tensorflow",
     "onnx", "python", "2001-02-30", "predictor.py", "models/m.onnx", "src", "&anchor", "*alias", "!!int x"]
)  # fmt: skip
_odd_paths = st.sampled_from(
    ["predictor.py", "missing.py", "a\nb.py", "x\x1e.py", "\udcff.py", "\ud800.py", "a\x00b", "../x.py", "/etc/x.py",
     "x" * 300 + ".py", "", ".", "..", "src", "src\n", "src\x85", "models", "models/m.onnx", "models/m.onnx\n",
     "s3://b/m", "gs://b/m", "~/x", "src/../predictor.py", "a\u202eb.py"]
)  # fmt: skip
_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | _huge_numbers
    | _odd_strings
    | _any_text
    | st.sampled_from([kind for keys in _SECTIONS.values() for kind in keys])
)
_keys = st.sampled_from(_TOP_KEYS + [key for keys in _SECTIONS.values() for key in keys]) | _any_text | st.integers()
_garbage = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4), max_leaves=12
)


# Where the loaders' checks are: numbers and paths get the extreme values more often than random garbage would.
_ACTIONS = ["set", "set-in-section", "extreme-number", "extreme-number", "odd-path", "odd-path", "delete", "key",
            "duplicate-api"]  # fmt: skip


@st.composite
def _mutated_apis(draw: st.DrawFn) -> Any:
    apis = copy.deepcopy(draw(st.lists(st.sampled_from(VALID_APIS), min_size=1, max_size=3)))
    for _ in range(draw(st.integers(0, 3))):
        api = apis[draw(st.integers(0, len(apis) - 1))]
        action = draw(st.sampled_from(_ACTIONS))
        if action == "set":
            api[draw(st.sampled_from(_TOP_KEYS))] = draw(_garbage)
        elif action == "set-in-section":
            section = draw(st.sampled_from(list(_SECTIONS)))
            if not isinstance(api.get(section), dict):
                api[section] = {}
            api[section][draw(st.sampled_from(_SECTIONS[section]) | _keys)] = draw(_garbage)
        elif action == "extreme-number":
            section = draw(st.sampled_from(list(_NUMERIC)))
            if not isinstance(api.get(section), dict):
                api[section] = {}
            api[section][draw(st.sampled_from(_NUMERIC[section]))] = draw(_extremes)
        elif action == "odd-path":
            if not isinstance(api.get("predictor"), dict):
                api["predictor"] = {}
            api["predictor"][draw(st.sampled_from(["path", "python_path", "model_path"]))] = draw(_odd_paths)
        elif action == "delete" and api:
            del api[draw(st.sampled_from(list(api)))]
        elif action == "duplicate-api":
            apis.append(copy.deepcopy(api))
        else:
            api[draw(_keys)] = draw(_garbage)
    root = draw(st.sampled_from(["list", "list", "list", "single-mapping", "garbage"]))
    if root == "single-mapping":
        return apis[0]
    return draw(_garbage) if root == "garbage" else apis


def _alias_bomb(levels: int, fan_out: int, field: str) -> str:
    lines = ["- name: bomb", "  predictor:", "    config:", "      l0: &l0 [" + ", ".join(["x"] * fan_out) + "]"]
    for level in range(1, levels):
        lines.append(f"      l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * fan_out) + "]")
    return "\n".join([*lines, f"  {field}: *l{levels - 1}", ""])


_TAGS = [
    "!!int", "!!float", "!!bool", "!!timestamp", "!!binary", "!!null", "!!str", "!!set", "!!omap", "!!map", "!!seq",
    "!!python/object:os.system", "!!python/name:os.system", "!custom",
]  # fmt: skip
_TAGGED_VALUES = [
    "abc", "0x", "maybe", "2001-02-30", "2001-12-14t21:59:43.10-99:00", "'!!!'", "9" * 5000, "[1, 2]", "{a: 1}",
    "~", "''",
]  # fmt: skip
_yaml_trouble = st.one_of(
    st.builds(
        _alias_bomb,
        st.integers(1, 9),
        st.integers(2, 10),
        st.sampled_from(["name", "tracker", "autoscaling", "compute", "kind", "endpoint", "colour"]),
    ),
    st.builds(
        "- name: tagged\n  {}: {} {}\n".format,
        st.sampled_from(["name", "predictor", "compute", "autoscaling", "tracker"]),
        st.sampled_from(_TAGS),
        st.sampled_from(_TAGGED_VALUES),
    ),
    st.builds(
        "- name: deep\n  predictor:\n    config: {{k: {}{}}}\n".format,
        st.sampled_from([50, 300, 450, 700]).map(lambda depth: "[" * depth),
        st.sampled_from([50, 300, 450, 700]).map(lambda depth: "]" * depth),
    ),
    st.just("- name: big\n  predictor: {processes_per_replica: " + "9" * 5000 + "}\n"),
    st.just("- name: cycle\n  predictor:\n    config: &self {k: *self}\n"),
    st.just("- &api {name: cycle, predictor: {config: {list: &l [1, *l]}}}\n"),
    st.just("- {name: dup, name: dup2, predictor: {}, predictor: []}\n"),
    st.just("- {<<: *missing, name: merge}\n"),
    st.just("- {<<: [1, 2], name: merge}\n"),
    st.just("- name: tab\n\tpredictor: {}\n"),
    st.just("---\n- name: second-document\n"),
    st.just("- name: nul\x00\n"),
)
_bad_bytes = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xfe\xff"])


@st.composite
def spec_documents(draw: st.DrawFn) -> bytes:
    """A `cortexlite.yaml` file's bytes: a mutated valid spec, perhaps with YAML trouble and byte damage."""
    value = draw(_mutated_apis())
    style = draw(st.sampled_from([False, None, True]))
    text = yaml.safe_dump(value, default_flow_style=style, allow_unicode=draw(st.booleans()), sort_keys=False)
    if draw(st.booleans()):
        text += draw(_yaml_trouble)
    data = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "none", "none", "invalid-utf8", "truncate"]))
    if damage == "invalid-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(_bad_bytes) + data[at:]
    elif damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    return data


@st.composite
def resolved_spec_documents(draw: st.DrawFn) -> bytes:
    """A resolved-spec JSON file's bytes: a mutated API in the envelope, perhaps damaged or deeply nested."""
    value = draw(_mutated_apis())
    api = value[0] if isinstance(value, list) and value else value
    envelope: Any = {"version": draw(st.sampled_from([1, 1, 1, 2, "1", None])), "api": api}
    if draw(st.integers(0, 9)) == 0:
        envelope = draw(_garbage)
    data = json.dumps(envelope, default=str).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "none", "invalid-utf8", "truncate", "deep"]))
    if damage == "invalid-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(_bad_bytes) + data[at:]
    elif damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "deep":
        depth = draw(st.sampled_from([100, 5000, 100_000]))
        data = (
            b'{"version": 1, "api": {"name": "x", "predictor": {"config": {"k": '
            + b"[" * depth
            + b"]" * depth
            + b"}}}}"
        )
    return data
