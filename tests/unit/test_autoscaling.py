"""Cortex's autoscaling policy, rule by rule (table-driven)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cortexlite.autoscaling import Policy, Sample, ScalerState, average_in_flight, decide, policy_for
from cortexlite_runtime.spec import ApiSpec

# Stabilization periods of 0 isolate the rules that come before them.
BARE = Policy(
    min_replicas=1, max_replicas=100, target_replica_concurrency=1.0, window=60,
    downscale_stabilization_period=0, upscale_stabilization_period=0,
)  # fmt: skip
NOW = 10_000.0


def _flat(in_flight: float, now: float = NOW, window: float = 60) -> list[Sample]:
    return [Sample(now - age, in_flight) for age in range(int(window))]


def _decide(policy: Policy, in_flight: float, current: int, state: ScalerState | None = None) -> int:
    return decide(policy, _flat(in_flight), current, state or ScalerState(started_at=0.0), NOW).replicas


@pytest.mark.parametrize(
    ("in_flight", "target", "current", "expected", "rule"),
    [
        (3.0, 1.0, 3, 3, "exactly on target"),
        (4.5, 1.0, 3, 5, "ceil(raw) within the upscale factor (ceil(3 * 1.5) = 5)"),
        (10.0, 2.0, 4, 5, "raw 5 over a target of 2"),
        (3.1, 1.0, 3, 3, "inside the upscale tolerance (3 < 3.1 < 3.15)"),
        (3.2, 1.0, 3, 4, "just outside the upscale tolerance"),
        (2.9, 1.0, 3, 3, "inside the downscale tolerance (2.85 < 2.9 < 3)"),
        (2.8, 1.0, 3, 3, "outside the tolerance, ceil(2.8) = 3"),
        (1.9, 1.0, 3, 2, "ceil(1.9) = 2, above the downscale floor"),
        (100.0, 1.0, 4, 6, "upscale factor: at most ceil(4 * 1.5) = 6"),
        (100.0, 1.0, 1, 2, "+1 is always allowed (ceil(1 * 1.5) = 2)"),
        (0.0, 1.0, 8, 6, "downscale factor: at least ceil(8 * 0.75) = 6"),
        (0.0, 1.0, 2, 1, "-1 is always allowed (ceil(2 * 0.75) = 2, but 2 - 1 = 1)"),
        (0.0, 1.0, 1, 1, "clamped to min_replicas"),
    ],
)
def test_recommendation_rules(in_flight: float, target: float, current: int, expected: int, rule: str) -> None:
    assert _decide(replace(BARE, target_replica_concurrency=target), in_flight, current) == expected, rule


@pytest.mark.parametrize(
    ("policy", "in_flight", "current", "expected"),
    [
        (replace(BARE, max_replicas=4), 100.0, 3, 4),
        (replace(BARE, min_replicas=3), 0.0, 3, 3),
        (replace(BARE, min_replicas=5), 0.0, 3, 5),  # below the minimum (bounds just changed): up to it
        (replace(BARE, max_replicas=2), 3.0, 3, 2),
    ],
)
def test_clamps(policy: Policy, in_flight: float, current: int, expected: int) -> None:
    assert _decide(policy, in_flight, current) == expected


def test_no_scale_up_before_the_first_full_upscale_period() -> None:
    policy = replace(BARE, upscale_stabilization_period=60)
    state = ScalerState()
    for now in (NOW, NOW + 10, NOW + 50):
        decision = decide(policy, _flat(5.0, now), 1, state, now)
        assert decision.replicas == 1 and "first upscale stabilization period" in decision.reason
        state = decision.state
    assert decide(policy, _flat(5.0, NOW + 60), 1, state, NOW + 60).replicas == 2


def test_no_scale_down_before_the_first_full_downscale_period() -> None:
    policy = replace(BARE, downscale_stabilization_period=300)
    state = ScalerState(started_at=NOW)
    assert decide(policy, _flat(0.0, NOW + 290), 4, state, NOW + 290).replicas == 4
    assert decide(policy, _flat(0.0, NOW + 300), 4, state, NOW + 300).replicas == 3


def test_scale_down_never_goes_below_the_highest_recommendation_of_the_period() -> None:
    policy = replace(BARE, downscale_stabilization_period=60)
    history = ((NOW - 50, 4), (NOW - 30, 3))
    decision = decide(policy, _flat(0.0), 4, ScalerState(0.0, history), NOW)
    assert (decision.recommendation, decision.replicas) == (3, 4)
    older = ((NOW - 70, 4), (NOW - 30, 3))  # the 4 is outside the period now
    assert decide(policy, _flat(0.0), 4, ScalerState(0.0, older), NOW).replicas == 3


def test_scale_up_never_goes_above_the_lowest_recommendation_of_the_period() -> None:
    policy = replace(BARE, upscale_stabilization_period=60)
    history = ((NOW - 40, 2), (NOW - 20, 5))
    decision = decide(policy, _flat(100.0), 2, ScalerState(0.0, history), NOW)
    assert (decision.recommendation, decision.replicas) == (3, 2)
    assert "lowest recommendation" in decision.reason


def test_a_steady_burst_reaches_its_target_in_factor_steps() -> None:
    """Each step is bounded by the upscale factor, and by the previous decision's recommendation, which is
    still inside the period (Cortex counts a recommendation exactly `period` old): two ticks per step."""
    policy = replace(BARE, upscale_stabilization_period=10)
    state, current, steps = ScalerState(started_at=NOW - 10), 1, []
    for tick in range(10):
        now = NOW + 10 * tick
        decision = decide(policy, _flat(12.0, now), current, state, now)
        state, current = decision.state, decision.replicas
        steps.append(current)
    assert steps == [2, 2, 3, 3, 5, 5, 8, 8, 12, 12]


def test_no_metrics_no_decision_and_the_clock_starts() -> None:
    decision = decide(BARE, [], 3, ScalerState(), NOW)
    assert decision.replicas == 3 and decision.avg_in_flight is None
    assert decision.state.started_at == NOW and "no metrics" in decision.reason


def test_recommendations_older_than_both_periods_are_forgotten() -> None:
    policy = replace(BARE, downscale_stabilization_period=300, upscale_stabilization_period=60)
    history = ((NOW - 400, 9), (NOW - 200, 2))
    state = decide(policy, _flat(2.0), 2, ScalerState(0.0, history), NOW).state
    assert [count for _, count in state.recommendations] == [2, 2]


def test_the_average_covers_the_window_only() -> None:
    samples = [Sample(NOW - 100, 50.0), Sample(NOW - 59, 2.0), Sample(NOW - 1, 4.0), Sample(NOW + 1, 99.0)]
    assert average_in_flight(samples, NOW, 60) == 3.0
    assert average_in_flight(samples[:1], NOW, 60) is None


def test_the_inputs_are_reported() -> None:
    decision = decide(replace(BARE, target_replica_concurrency=2.0), _flat(6.0), 1, ScalerState(0.0), NOW)
    assert decision.inputs["avg_in_flight"] == 6.0 and decision.inputs["raw"] == 3.0
    assert decision.inputs["recommendation"] == 2 and decision.replicas == 2


def test_the_policy_comes_from_the_spec_and_the_target_defaults_to_processes_times_threads() -> None:
    api = ApiSpec.model_validate(
        {"name": "iris", "predictor": {"processes_per_replica": 2, "threads_per_process": 3},
         "autoscaling": {"min_replicas": 2, "window": "20s", "upscale_stabilization_period": "1m"}}
    )  # fmt: skip
    policy = policy_for(api)
    assert (policy.target_replica_concurrency, policy.min_replicas, policy.window) == (6.0, 2, 20.0)
    assert policy.upscale_stabilization_period == 60.0
    explicit = api.model_copy(
        update={"autoscaling": api.autoscaling.model_copy(update={"target_replica_concurrency": 1.5})}
    )
    assert policy_for(explicit).target_replica_concurrency == 1.5
