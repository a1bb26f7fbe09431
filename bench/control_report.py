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
    "cell_n",
    "cell_s",
    "control_markdown",
    "control_summary",
    "median_of",
    "ratio_of",
    "verdict",
]

TARGET_COLD_START_S = 2.0
TARGET_REDEPLOY_S = 1.0
TARGET_GATEWAY_RATIO = 0.7  # gateway / direct req/s
TARGET_GATEWAY_P50_MS = 1.0  # added p50


def control_summary(control: ControlResults, connections: int) -> dict[str, Any]:
    cold, bare = median_of(control.cold_start_s), median_of(control.bare_start_s)
    redeploy, cli = median_of(control.redeploy_s), median_of(control.cli_start_s)
    hop: dict[str, Any] = {}
    for count in sorted(control.gateway):
        gateway, direct = control.gateway[count], control.direct.get(count, [])
        g_rps, d_rps = (
            median_of([r.requests_per_second for r in gateway]),
            median_of([r.requests_per_second for r in direct]),
        )
        g_p50, d_p50 = median_of([r.p50_ms for r in gateway]), median_of([r.p50_ms for r in direct])
        hop[str(count)] = {
            "gateway_rps": g_rps, "direct_rps": d_rps, "rps_ratio": ratio_of(g_rps, d_rps),
            "gateway_p50_ms": g_p50, "direct_p50_ms": d_p50,
            "added_p50_ms": g_p50 - d_p50 if g_p50 is not None and d_p50 is not None else None,
            "gateway_p99_ms": median_of([r.p99_ms for r in gateway]),
            "direct_p99_ms": median_of([r.p99_ms for r in direct]),
            "gateway_errors": sum(r.errors for r in gateway),
            "samples_rps": {
                "gateway": [r.requests_per_second for r in gateway],
                "direct": [r.requests_per_second for r in direct],
            },
        }  # fmt: skip
    return {
        "first_deploy_s": control.first_deploy_s,
        "cold_start_s": cold,
        "bare_runtime_start_s": bare,
        "cold_start_ratio": ratio_of(cold, bare),
        "redeploy_s": redeploy,
        "cli_start_s": cli,
        "redeploy_ratio": ratio_of(redeploy, cli),
        "gateway": hop,
        "samples": {
            "cold_start_s": control.cold_start_s,
            "bare_runtime_start_s": control.bare_start_s,
            "redeploy_s": control.redeploy_s,
            "cli_start_s": control.cli_start_s,
        },
    }


def control_markdown(summary: dict[str, Any], connections: int) -> list[str]:
    s = summary
    many, one = s["gateway"].get(str(connections), {}), s["gateway"].get("1", {})
    errors = sum(row.get("gateway_errors", 0) for row in s["gateway"].values())
    return [
        "## Control plane: process environment, iris, real Traefik",
        "",
        "| figure | measured | same-run baseline | ratio | target |",
        "|:--|---:|---:|---:|:--|",
        f"| cold start: `deploy` -> first 200 via the gateway (venv cached) | {cell_s(s['cold_start_s'])} "
        f"| bare runtime -> first 200: {cell_s(s['bare_runtime_start_s'])} | {cell_n(s['cold_start_ratio'])} "
        f"| {verdict(s['cold_start_s'], TARGET_COLD_START_S, 's', at_least=False)} |",
        f"| no-change redeploy | {cell_s(s['redeploy_s'])} | `cortexlite version`: {cell_s(s['cli_start_s'])} "
        f"| {cell_n(s['redeploy_ratio'])} | {verdict(s['redeploy_s'], TARGET_REDEPLOY_S, 's', at_least=False)} |",
        f"| req/s at {connections} connections via the gateway | {cell_n(many.get('gateway_rps'), 0)} "
        f"| direct to the replica: {cell_n(many.get('direct_rps'), 0)} | {cell_n(many.get('rps_ratio'))} "
        f"| {verdict(many.get('rps_ratio'), TARGET_GATEWAY_RATIO, '', at_least=True)} |",
        f"| p50 at 1 connection via the gateway (the hop's latency) | {cell_n(one.get('gateway_p50_ms'))} ms "
        f"| direct: {cell_n(one.get('direct_p50_ms'))} ms | added {cell_n(one.get('added_p50_ms'))} ms "
        f"| {verdict(one.get('added_p50_ms'), TARGET_GATEWAY_P50_MS, ' ms', at_least=False)} |",
        f"| req/s at 1 connection via the gateway | {cell_n(one.get('gateway_rps'), 0)} "
        f"| direct: {cell_n(one.get('direct_rps'), 0)} | {cell_n(one.get('rps_ratio'))} | |",
        f"| p50 at {connections} connections via the gateway (mostly queueing) "
        f"| {cell_n(many.get('gateway_p50_ms'))} ms "
        f"| direct: {cell_n(many.get('direct_p50_ms'))} ms | added {cell_n(many.get('added_p50_ms'))} ms | |",
        f"| p99 at {connections} connections via the gateway | {cell_n(many.get('gateway_p99_ms'))} ms "
        f"| direct: {cell_n(many.get('direct_p99_ms'))} ms "
        f"| {cell_n(ratio_of(many.get('gateway_p99_ms'), many.get('direct_p99_ms')))} | |",
        "",
        f"The first deploy, which makes the replica venv (runtime + scikit-learn from pip's cache), took "
        f"{cell_s(s['first_deploy_s'])}. Gateway errors (socket errors + non-2xx): {errors}.",
    ]


def median_of(values: list[float]) -> float | None:
    return median(values) if values else None


def ratio_of(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def cell_n(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def cell_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def verdict(value: float | None, target: float, unit: str, *, at_least: bool) -> str:
    bound = f"{'>=' if at_least else '<='} {target:g}{unit}"
    if value is None:
        return f"{bound}: no data"
    met = value >= target if at_least else value <= target
    return f"{bound}: {'met' if met else '**missed**'}"
