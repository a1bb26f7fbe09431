"""The Docker experiment's figures: medians, the ratio against the bare `docker run`, the verdict, markdown."""

from __future__ import annotations

from typing import Any

from .control_report import cell_n, cell_s, median_of, ratio_of, verdict
from .docker_suite import DockerResults

__all__ = ["TARGET_DOCKER_COLD_START_S", "docker_markdown", "docker_summary"]

TARGET_DOCKER_COLD_START_S = 3.0


def docker_summary(docker: DockerResults, control: dict[str, Any] | None) -> dict[str, Any]:
    """`control` is the control suite's summary when it ran: its process-backend cold start goes alongside."""
    cold, bare = median_of(docker.cold_start_s), median_of(docker.bare_start_s)
    process = control["cold_start_s"] if control is not None else None
    return {
        "environment": docker.env,
        "image": docker.image,
        "image_cached_before_first_deploy": docker.image_cached,
        "image_build_s": docker.image_build_s,
        "first_deploy_s": docker.first_deploy_s,
        "cold_start_s": cold,
        "bare_docker_run_s": bare,
        "cold_start_ratio": ratio_of(cold, bare),
        "process_cold_start_s": process,
        "docker_to_process_ratio": ratio_of(cold, process),
        "delete_s": median_of(docker.delete_s),
        "wall_s": docker.wall_s,
        "leftovers_after_down": docker.leftovers,
        "volumes_removed": docker.volumes,
        "down_error": docker.down_error or None,
        "samples": {
            "cold_start_s": docker.cold_start_s,
            "bare_docker_run_s": docker.bare_start_s,
            "delete_s": docker.delete_s,
        },
    }


def docker_markdown(summary: dict[str, Any]) -> list[str]:
    s = summary
    lines = [
        "## Docker: iris in a Docker environment (host networking), real Traefik container",
        "",
        "| figure | measured | same-run baseline | ratio | target |",
        "|:--|---:|---:|---:|:--|",
        f"| cold start: `deploy` -> first 200 via the gateway (images cached) | {cell_s(s['cold_start_s'])} "
        f"| bare `docker run` of the same image -> first 200: {cell_s(s['bare_docker_run_s'])} "
        f"| {cell_n(s['cold_start_ratio'])} "
        f"| {verdict(s['cold_start_s'], TARGET_DOCKER_COLD_START_S, 's', at_least=False)} |",
    ]
    if s["process_cold_start_s"] is not None:
        lines.append(
            f"| the same cold start on the process backend (control suite, this run) "
            f"| {cell_s(s['process_cold_start_s'])} | docker / process | {cell_n(s['docker_to_process_ratio'])} | |"
        )
    cached = "cached" if s["image_cached_before_first_deploy"] else "built by it"
    lines += [
        "",
        f"Rounds (deploy / bare): {_pairs(s['samples'])}. Each round starts with `cortexlite delete iris` "
        f"(median {cell_s(s['delete_s'])}).",
        f"Image: `{s['image']}` ({cached}). `cortexlite image build` took {cell_s(s['image_build_s'])}; the first "
        f"deploy (starts the gateway, builds the dependency image when missing) {cell_s(s['first_deploy_s'])}; "
        f"the suite {cell_s(s['wall_s'])} in all.",
    ]
    if s["leftovers_after_down"] or s["down_error"]:
        left = ", ".join(s["leftovers_after_down"]) or "nothing"
        lines += ["", f"**`cortexlite down`** left {left} (removed by label){_error(s['down_error'])}."]
    return lines


def _pairs(samples: dict[str, list[float]]) -> str:
    pairs = zip(samples["cold_start_s"], samples["bare_docker_run_s"], strict=False)
    return ", ".join(f"{cold:.2f} / {bare:.2f} s" for cold, bare in pairs) or "none"


def _error(message: str | None) -> str:
    return f"; it failed: {' '.join(message.split())[:400]}" if message else ""
