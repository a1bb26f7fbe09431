"""Cortex's request-based autoscaling policy, as a pure function.

Every decision (every 10 s in the operator):

1. `avg_in_flight`: the API's `cortexlite_in_flight_requests` summed over its replicas, averaged
   over the last `window` seconds of samples. No sample in the window: no decision.
2. `raw = avg_in_flight / target_replica_concurrency`; the recommendation is `ceil(raw)`, except
   that inside the tolerance band around the current count (`current * (1 - downscale_tolerance)
   < raw < current`, or `current < raw < current * (1 + upscale_tolerance)`) it stays `current`.
3. Factor limits: at least `min(current - 1, ceil(current * max_downscale_factor))`, at most
   `max(current + 1, ceil(current * max_upscale_factor))` (so ±1 is always allowed).
4. Clamp to `min_replicas`..`max_replicas`. The recommendation is recorded.
5. Stabilization: no scale-down before `downscale_stabilization_period` has passed since the
   policy started, and never below the highest recommendation of that period; no scale-up before
   `upscale_stabilization_period` has passed, and never above the lowest recommendation of that
   period.

This is Cortex's `autoscaleFn` (pkg/operator/resources/realtimeapi/autoscaler.go) rule for rule; the
state (start time, recent recommendations) is plain data so the operator can persist it and a
restarted operator keeps its stabilization windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from cortexlite_runtime.spec import ApiSpec

__all__ = ["Decision", "Policy", "Sample", "ScalerState", "average_in_flight", "decide", "policy_for"]


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target_replica_concurrency: float
    window: float = 60.0
    downscale_stabilization_period: float = 300.0
    upscale_stabilization_period: float = 60.0
    max_downscale_factor: float = 0.75
    max_upscale_factor: float = 1.5
    downscale_tolerance: float = 0.05
    upscale_tolerance: float = 0.05


def policy_for(api: ApiSpec) -> Policy:
    """The API's autoscaling section; the target defaults to processes x threads, as in Cortex."""
    scaling, predictor = api.autoscaling, api.predictor
    target = scaling.target_replica_concurrency
    if target is None:
        target = float(predictor.processes_per_replica * predictor.threads_per_process)
    return Policy(
        min_replicas=scaling.min_replicas, max_replicas=scaling.max_replicas, target_replica_concurrency=target,
        window=scaling.window, downscale_stabilization_period=scaling.downscale_stabilization_period,
        upscale_stabilization_period=scaling.upscale_stabilization_period,
        max_downscale_factor=scaling.max_downscale_factor, max_upscale_factor=scaling.max_upscale_factor,
        downscale_tolerance=scaling.downscale_tolerance, upscale_tolerance=scaling.upscale_tolerance,
    )  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """The API's in-flight requests summed over its replicas at one moment."""

    at: float
    in_flight: float


@dataclass(frozen=True)
class ScalerState:
    started_at: float | None = None
    recommendations: tuple[tuple[float, int], ...] = ()  # (time, recommended replicas), oldest first


@dataclass(frozen=True)
class Decision:
    replicas: int  # what the API should run now
    state: ScalerState
    avg_in_flight: float | None = None
    raw: float | None = None
    recommendation: int | None = None
    reason: str = ""
    inputs: dict[str, float] = field(default_factory=dict)


def average_in_flight(samples: Sequence[Sample], now: float, window: float) -> float | None:
    """The mean of the samples taken in the last `window` seconds; None when there are none."""
    recent = [sample.in_flight for sample in samples if now - window < sample.at <= now]
    return sum(recent) / len(recent) if recent else None


def decide(policy: Policy, samples: Sequence[Sample], current: int, state: ScalerState, now: float) -> Decision:
    """The replica count `policy` asks for now, given the samples and the previous state (pure)."""
    started = state.started_at if state.started_at is not None else now
    avg = average_in_flight(samples, now, policy.window)
    if avg is None:
        return Decision(current, ScalerState(started, state.recommendations), reason="no metrics in the window")
    raw = avg / policy.target_replica_concurrency
    recommendation = _recommend(policy, raw, current)
    keep = max(policy.downscale_stabilization_period, policy.upscale_stabilization_period)
    kept = [(at, count) for at, count in state.recommendations if now - at <= keep]
    history = (*kept, (now, recommendation))
    request, reason = _stabilize(policy, history, recommendation, current, running=now - started, now=now)
    inputs = {
        "avg_in_flight": avg, "target_replica_concurrency": policy.target_replica_concurrency, "raw": raw,
        "current": current, "recommendation": recommendation, "running_for_s": now - started,
    }  # fmt: skip
    return Decision(request, ScalerState(started, history), avg, raw, recommendation, reason, inputs)


def _recommend(policy: Policy, raw: float, current: int) -> int:
    recommendation = math.ceil(raw)
    if current * (1 - policy.downscale_tolerance) < raw < current:
        recommendation = current
    if current < raw < current * (1 + policy.upscale_tolerance):
        recommendation = current
    floor = min(current - 1, math.ceil(current * policy.max_downscale_factor))
    ceiling = max(current + 1, math.ceil(current * policy.max_upscale_factor))
    recommendation = max(floor, min(ceiling, recommendation))
    return max(policy.min_replicas, min(policy.max_replicas, recommendation))


def _stabilize(
    policy: Policy,
    history: Sequence[tuple[float, int]],
    recommendation: int,
    current: int,
    *,
    running: float,
    now: float,
) -> tuple[int, str]:
    if recommendation < current:
        period = policy.downscale_stabilization_period
        if running < period:
            return current, f"no scale-down in the first downscale stabilization period ({period:g}s)"
        highest = max(count for at, count in history if now - at <= period)
        if recommendation < highest:
            return highest, f"the highest recommendation of the last {period:g}s is {highest}"
    if recommendation > current:
        period = policy.upscale_stabilization_period
        if running < period:
            return current, f"no scale-up in the first upscale stabilization period ({period:g}s)"
        lowest = min(count for at, count in history if now - at <= period)
        if recommendation > lowest:
            return lowest, f"the lowest recommendation of the last {period:g}s is {lowest}"
    return recommendation, "recommended"
