"""Turning samples into medians, ratios and verdicts; rendering them as markdown and JSON; writing them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

from .control_report import control_markdown, control_summary
from .docker_report import docker_markdown, docker_summary
from .reload_suite import reload_markdown, reload_summary
from .storage_suite import storage_markdown, storage_summary
from .suite import BATCH_OFF, BATCH_ON, CEILING, RUNTIME, THREADED, BenchSettings, Results

__all__ = ["Figures", "figures", "render_markdown", "to_json", "write_results"]

TARGET_RPS_RATIO = 0.9  # runtime / ceiling req/s, at the most connections
TARGET_P99_RATIO = 1.3  # runtime / ceiling p99
TARGET_BATCH_RATIO = 3.0  # batching on / off req/s
TARGET_MEMORY_MB = 20.0  # runtime - ceiling idle PSS


@dataclass(frozen=True)
class Figures:
    """Medians over the rounds of one (experiment, server, connections)."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    runs: int
    errors: int


def figures(results: Results, experiment: str, server: str, connections: int) -> Figures | None:
    runs = [
        s.result
        for s in results.samples
        if s.experiment == experiment and s.server == server and s.connections == connections
    ]
    if not runs:
        return None
    return Figures(
        requests_per_second=median(r.requests_per_second for r in runs),
        p50_ms=median(r.p50_ms for r in runs),
        p99_ms=median(r.p99_ms for r in runs),
        runs=len(runs),
        errors=sum(r.errors for r in runs),
    )


def to_json(results: Results) -> dict[str, Any]:
    settings = results.settings
    latency = [_latency_row(results, c) for c in settings.connections]
    control = control_summary(results.control, settings.gateway_connections) if results.control is not None else None
    return {
        "date": results.started.isoformat(timespec="seconds"),
        "machine": results.machine,
        "load_average": {"before": results.load_before, "after": results.load_after},
        "runtime_sources_after": results.runtime_after,
        "settings": asdict(settings),
        "targets": {
            "rps_ratio_at_max_connections": TARGET_RPS_RATIO,
            "p99_ratio": TARGET_P99_RATIO,
            "batching_ratio": TARGET_BATCH_RATIO,
            "memory_difference_mb": TARGET_MEMORY_MB,
        },
        "latency": latency,
        "batching": _batching_summary(results),
        "memory": _memory_summary(results),
        "control": control,
        "docker": docker_summary(results.docker, control) if results.docker is not None else None,
        "storage": storage_summary(results.storage) if results.storage is not None else None,
        "reload": reload_summary(results.reload) if results.reload is not None else None,
        "samples": [{**asdict(s), "result": asdict(s.result)} for s in results.samples],
    }


def render_markdown(results: Results) -> str:
    summary = to_json(results)
    settings = results.settings
    parts = [
        f"# cortexlite benchmark, {summary['date']}",
        "",
        _machine_line(results),
        *_changed_code(results),
        "",
        _method_line(settings),
    ]
    if "runtime" in settings.suites:
        parts += ["", *_latency_table(summary["latency"], max(settings.connections))]
        parts += ["", *_threaded_table(summary["latency"])]
    if "batching" in settings.suites:
        parts += ["", *_batching_table(summary["batching"], settings.batch_connections)]
    if "runtime" in settings.suites:
        parts += ["", *_memory_table(summary["memory"])]
    if summary["control"] is not None:
        parts += ["", *control_markdown(summary["control"], settings.gateway_connections)]
    if summary["docker"] is not None:
        parts += ["", *docker_markdown(summary["docker"])]
    if summary["storage"] is not None:
        parts += ["", *storage_markdown(summary["storage"])]
    if summary["reload"] is not None:
        parts += ["", *reload_markdown(summary["reload"])]
    if results.samples:
        parts += ["", *_rounds_table(results)]
    errors = [
        f"{s.server} c={s.connections} round {s.round + 1}: {s.result.errors}"
        for s in results.samples
        if s.result.errors
    ]
    if errors:
        parts += ["", "**Errors** (socket errors + non-2xx responses): " + "; ".join(errors)]
    return "\n".join(parts) + "\n"


def _method_line(settings: BenchSettings) -> str:
    if set(settings.suites) & {"runtime", "batching", "control"}:
        return (
            f"{settings.rounds} interleaved round(s) of {settings.seconds} s per server and connection count; "
            "`wrk -t1 --latency`, POST of a JSON row; figures are medians over the rounds."
        )
    if "docker" in settings.suites:
        return f"{settings.rounds} round(s); figures are medians over the rounds."
    return "Each section says how its figures were taken."


def write_results(results: Results, directory: Path) -> list[Path]:
    """latest.md, latest.json and a timestamped copy of the markdown; each written whole, then renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(results)
    stamp = results.started.strftime("%Y%m%d-%H%M%S")
    files = {
        directory / "latest.md": markdown,
        directory / "latest.json": json.dumps(to_json(results), indent=2) + "\n",
        directory / f"{stamp}.md": markdown,
    }
    for path, text in files.items():
        _write_atomically(path, text)
    return list(files)


def _latency_row(results: Results, connections: int) -> dict[str, Any]:
    ceiling = figures(results, "latency", CEILING, connections)
    runtime = figures(results, "latency", RUNTIME, connections)
    threaded = figures(results, "latency", THREADED, connections)
    row: dict[str, Any] = {
        "connections": connections,
        CEILING: _asdict(ceiling),
        RUNTIME: _asdict(runtime),
        THREADED: _asdict(threaded),
    }
    if ceiling and threaded:
        row["threaded_rps_ratio"] = _ratio(threaded.requests_per_second, ceiling.requests_per_second)
        row["threaded_p99_ratio"] = _ratio(threaded.p99_ms, ceiling.p99_ms)
    if ceiling and runtime:
        row["rps_ratio"] = _ratio(runtime.requests_per_second, ceiling.requests_per_second)
        row["p99_ratio"] = _ratio(runtime.p99_ms, ceiling.p99_ms)
        row["rps_ratio_paired"] = _paired_ratio(results, connections)
    return row


def _paired_ratio(results: Results, connections: int) -> float | None:
    """Median over rounds of runtime/ceiling req/s measured back to back: less sensitive to drifting noise."""
    by_round: dict[int, dict[str, float]] = {}
    for s in results.samples:
        if s.experiment == "latency" and s.connections == connections:
            by_round.setdefault(s.round, {})[s.server] = s.result.requests_per_second
    ratios = [_ratio(r[RUNTIME], r[CEILING]) for r in by_round.values() if CEILING in r and RUNTIME in r]
    valid = [x for x in ratios if x is not None]
    return median(valid) if valid else None


def _batching_summary(results: Results) -> dict[str, Any]:
    connections = results.settings.batch_connections
    off = figures(results, "batching", BATCH_OFF, connections)
    on = figures(results, "batching", BATCH_ON, connections)
    ratio = _ratio(on.requests_per_second, off.requests_per_second) if off and on else None
    return {"connections": connections, "off": _asdict(off), "on": _asdict(on), "ratio": ratio}


def _memory_summary(results: Results) -> dict[str, Any]:
    ceiling = results.memory_mb.get(CEILING)
    runtime = results.memory_mb.get(RUNTIME)
    summary: dict[str, Any] = {
        "ceiling_mb": median(ceiling) if ceiling else None,
        "runtime_mb": median(runtime) if runtime else None,
        "samples_mb": results.memory_mb,
    }
    if ceiling and runtime:
        summary["difference_mb"] = summary["runtime_mb"] - summary["ceiling_mb"]
    return summary


def _machine_line(results: Results) -> str:
    m = results.machine
    return (
        f"Machine: nproc {m['nproc']} ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"uvicorn {m['uvicorn']}, httptools {m['httptools']}, uvloop {m['uvloop']}, wrk {m['wrk']}, "
        f"cortexlite-runtime {m['cortexlite-runtime']} at {m['git']} (sources {m['runtime_sources']}); "
        f"load average before {results.load_before}, after {results.load_after}."
    )


def _changed_code(results: Results) -> list[str]:
    # The runtime is installed editable: an edit during the run changes what later rounds' servers import.
    before, after = results.machine["runtime_sources"], results.runtime_after
    if not after or after == before:
        return []
    return ["", f"**Warning:** the runtime's sources changed during the run ({before} -> {after}); rounds differ."]


def _latency_table(rows: list[dict[str, Any]], max_connections: int) -> list[str]:
    lines = [
        "## Throughput and latency: ceiling (raw ASGI on uvicorn) vs runtime (1 process x 1 thread), iris",
        "",
        "| conns | ceiling req/s | runtime req/s | ratio | target | ceiling p50 ms | runtime p50 ms "
        "| ceiling p99 ms | runtime p99 ms | p99 ratio | target |",
        "|---:|---:|---:|---:|:--|---:|---:|---:|---:|---:|:--|",
    ]
    for row in rows:
        target = row["connections"] == max_connections
        lines.append(_latency_line(row, row[CEILING] or {}, row[RUNTIME] or {}, rps_target=target))
    return lines


def _latency_line(row: dict[str, Any], c: dict[str, Any], r: dict[str, Any], *, rps_target: bool) -> str:
    rps_ratio, p99_ratio = row.get("rps_ratio"), row.get("p99_ratio")
    cells = [
        str(row["connections"]),
        _num(c.get("requests_per_second"), 0),
        _num(r.get("requests_per_second"), 0),
        _num(rps_ratio),
        _verdict(rps_ratio, TARGET_RPS_RATIO, at_least=True) if rps_target else "",
        _num(c.get("p50_ms")),
        _num(r.get("p50_ms")),
        _num(c.get("p99_ms")),
        _num(r.get("p99_ms")),
        _num(p99_ratio),
        _verdict(p99_ratio, TARGET_P99_RATIO, at_least=False),
    ]
    return "| " + " | ".join(cells) + " |"


def _threaded_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## The hop's cost: runtime with predict always on its thread (`CORTEXLITE_INLINE_PREDICT_LIMIT=0`)",
        "",
        "The runtime above runs a predictor proven fast (100 calls in a row under 5 ms) on the event loop;",
        "this server never does, so every request crosses to the predict thread and back.",
        "",
        "| conns | threaded req/s | ratio to ceiling | threaded p50 ms | threaded p99 ms | p99 ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        t = row[THREADED] or {}
        cells = [
            str(row["connections"]),
            _num(t.get("requests_per_second"), 0),
            _num(row.get("threaded_rps_ratio")),
            _num(t.get("p50_ms")),
            _num(t.get("p99_ms")),
            _num(row.get("threaded_p99_ratio")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _batching_table(batching: dict[str, Any], connections: int) -> list[str]:
    lines = [
        f"## Server-side batching: 20 ms per predict call, runtime 1x1, {connections} connections",
        "",
        "| batching | req/s | p50 ms | p99 ms |",
        "|:--|---:|---:|---:|",
    ]
    for key, label in (("off", "off"), ("on", "on (max_batch_size 16, batch_interval 0.01)")):
        f = batching[key] or {}
        lines.append(
            f"| {label} | {_num(f.get('requests_per_second'), 1)} | {_num(f.get('p50_ms'))} | {_num(f.get('p99_ms'))} |"
        )
    ratio = batching["ratio"]
    lines += ["", f"On/off req/s ratio: **{_num(ratio)}** ({_verdict(ratio, TARGET_BATCH_RATIO, at_least=True)})"]
    return lines


def _memory_table(memory: dict[str, Any]) -> list[str]:
    difference = memory.get("difference_mb")
    verdict = _verdict(difference, TARGET_MEMORY_MB, at_least=False, unit=" MB")
    return [
        "## Idle memory: PSS of the server and its descendants, iris loaded, after one request and 2 s",
        "",
        "| server | PSS MB |",
        "|:--|---:|",
        f"| ceiling | {_num(memory.get('ceiling_mb'), 1)} |",
        f"| runtime 1x1 | {_num(memory.get('runtime_mb'), 1)} |",
        f"| difference | {_signed(difference)} ({verdict}) |",
    ]


def _rounds_table(results: Results) -> list[str]:
    """Every run's req/s and p99, so that the spread behind each median is visible."""
    rounds = results.settings.rounds
    lines = [
        "## Every run: req/s / p99 ms, by round",
        "",
        "| experiment | server | conns | " + " | ".join(f"round {i + 1}" for i in range(rounds)) + " |",
        "|:--|:--|---:|" + "---:|" * rounds,
    ]
    cells: dict[tuple[str, str, int], list[str]] = {}
    for s in results.samples:
        row = cells.setdefault((s.experiment, s.server, s.connections), ["n/a"] * rounds)
        row[s.round] = f"{s.result.requests_per_second:,.0f} / {s.result.p99_ms:,.1f}"
    for (experiment, server, connections), row in cells.items():
        lines.append(f"| {experiment} | {server} | {connections} | " + " | ".join(row) + " |")
    return lines


def _verdict(value: float | None, target: float, *, at_least: bool, unit: str = "") -> str:
    bound = f"{'>=' if at_least else '<='} {target:g}{unit}"
    if value is None:
        return f"{bound}: no data"
    met = value >= target if at_least else value <= target
    return f"{bound}: {'met' if met else '**missed**'}"


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} MB"


def _asdict(value: Figures | None) -> dict[str, Any] | None:
    return asdict(value) if value is not None else None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
