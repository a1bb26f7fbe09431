"""The control plane's figures: medians, ratios against the same-run baselines, verdicts, markdown."""

from __future__ import annotations

from statistics import median
from typing import Any

from .control import ControlResults

__all__ = [
    "TARGET_COLD_START_S",
    "TARGET_GATEWAY_P50_MS",
    "TARGET_GATEWAY_RATIO",
    "TARGET_REDEPLOY_S",
    "control_markdown",
    "control_summary",
]

TARGET_COLD_START_S = 2.0
TARGET_REDEPLOY_S = 1.0
TARGET_GATEWAY_RATIO = 0.7  # gateway / direct req/s
TARGET_GATEWAY_P50_MS = 1.0  # added p50


def control_summary(control: ControlResults) -> dict[str, Any]:
    cold, bare = _median(control.cold_start_s), _median(control.bare_start_s)
    redeploy, cli = _median(control.redeploy_s), _median(control.cli_start_s)
    gateway_rps = _median([r.requests_per_second for r in control.gateway])
    direct_rps = _median([r.requests_per_second for r in control.direct])
    gateway_p50 = _median([r.p50_ms for r in control.gateway])
    direct_p50 = _median([r.p50_ms for r in control.direct])
    return {
        "first_deploy_s": control.first_deploy_s,
        "cold_start_s": cold,
        "bare_runtime_start_s": bare,
        "cold_start_ratio": _ratio(cold, bare),
        "redeploy_s": redeploy,
        "cli_start_s": cli,
        "redeploy_ratio": _ratio(redeploy, cli),
        "gateway_rps": gateway_rps,
        "direct_rps": direct_rps,
        "gateway_rps_ratio": _ratio(gateway_rps, direct_rps),
        "gateway_p50_ms": gateway_p50,
        "direct_p50_ms": direct_p50,
        "gateway_added_p50_ms": gateway_p50 - direct_p50
        if gateway_p50 is not None and direct_p50 is not None
        else None,
        "gateway_p99_ms": _median([r.p99_ms for r in control.gateway]),
        "direct_p99_ms": _median([r.p99_ms for r in control.direct]),
        "gateway_errors": sum(r.errors for r in control.gateway),
        "samples": {
            "cold_start_s": control.cold_start_s,
            "bare_runtime_start_s": control.bare_start_s,
            "redeploy_s": control.redeploy_s,
            "cli_start_s": control.cli_start_s,
            "gateway_rps": [r.requests_per_second for r in control.gateway],
            "direct_rps": [r.requests_per_second for r in control.direct],
        },
    }


def control_markdown(summary: dict[str, Any], connections: int) -> list[str]:
    s = summary
    return [
        "## Control plane: process environment, iris, real Traefik",
        "",
        "| figure | measured | same-run baseline | ratio | target |",
        "|:--|---:|---:|---:|:--|",
        f"| cold start: `deploy` -> first 200 via the gateway (venv cached) | {_s(s['cold_start_s'])} "
        f"| bare runtime -> first 200: {_s(s['bare_runtime_start_s'])} | {_n(s['cold_start_ratio'])} "
        f"| {_verdict(s['cold_start_s'], TARGET_COLD_START_S, 's', at_least=False)} |",
        f"| no-change redeploy | {_s(s['redeploy_s'])} | `cortexlite version`: {_s(s['cli_start_s'])} "
        f"| {_n(s['redeploy_ratio'])} | {_verdict(s['redeploy_s'], TARGET_REDEPLOY_S, 's', at_least=False)} |",
        f"| req/s at {connections} connections via the gateway | {_n(s['gateway_rps'], 0)} "
        f"| direct to the replica: {_n(s['direct_rps'], 0)} | {_n(s['gateway_rps_ratio'])} "
        f"| {_verdict(s['gateway_rps_ratio'], TARGET_GATEWAY_RATIO, '', at_least=True)} |",
        f"| p50 at {connections} connections via the gateway | {_n(s['gateway_p50_ms'])} ms "
        f"| direct: {_n(s['direct_p50_ms'])} ms | added {_n(s['gateway_added_p50_ms'])} ms "
        f"| {_verdict(s['gateway_added_p50_ms'], TARGET_GATEWAY_P50_MS, ' ms added', at_least=False)} |",
        f"| p99 at {connections} connections via the gateway | {_n(s['gateway_p99_ms'])} ms "
        f"| direct: {_n(s['direct_p99_ms'])} ms | {_n(_ratio(s['gateway_p99_ms'], s['direct_p99_ms']))} | |",
        "",
        f"The first deploy, which makes the replica venv (runtime + scikit-learn from pip's cache), took "
        f"{_s(s['first_deploy_s'])}. Gateway errors (socket errors + non-2xx): {s['gateway_errors']}.",
    ]


def _median(values: list[float]) -> float | None:
    return median(values) if values else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _n(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _verdict(value: float | None, target: float, unit: str, *, at_least: bool) -> str:
    bound = f"{'>=' if at_least else '<='} {target:g}{unit if unit != ' ms added' else ' ms'}"
    if value is None:
        return f"{bound}: no data"
    met = value >= target if at_least else value <= target
    return f"{bound}: {'met' if met else '**missed**'}"
