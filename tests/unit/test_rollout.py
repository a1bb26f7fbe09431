"""The rolling-update decision: budgets, single steps, and whole simulated rollouts."""

from __future__ import annotations

import pytest

from cortexlite.rollout import Budget, Fleet, Step, budget, clamp_replicas, next_step
from cortexlite_runtime.sections import UpdateStrategySpec


@pytest.mark.parametrize(
    ("surge", "unavailable", "target", "expected"),
    [
        ("25%", "25%", 1, Budget(1, 0)),  # surge rounds up, unavailability down
        ("25%", "25%", 4, Budget(1, 1)),
        ("25%", "25%", 10, Budget(3, 2)),
        (0, "25%", 2, Budget(0, 1)),  # both would be 0 -> one may be unavailable
        ("0%", "10%", 5, Budget(0, 1)),
        (2, 0, 3, Budget(2, 0)),
        ("100%", "0%", 3, Budget(3, 0)),
    ],
)
def test_budget(surge: int | str, unavailable: int | str, target: int, expected: Budget) -> None:
    assert budget(UpdateStrategySpec(max_surge=surge, max_unavailable=unavailable), target) == expected


@pytest.mark.parametrize(
    ("fleet", "limits", "expected"),
    [
        # creating: no old replicas, start the target at once
        (Fleet(3, 0, 0, 0, 0), Budget(1, 0), Step(start=3)),
        # surge first: one new beside the old one, nothing retired while it starts
        (Fleet(1, 1, 0, 0, 0), Budget(1, 0), Step(start=1)),
        (Fleet(1, 1, 0, 0, 1), Budget(1, 0), Step()),
        # the new one serves: the old one goes
        (Fleet(1, 1, 0, 1, 0), Budget(1, 0), Step(retire_old_serving=1)),
        (Fleet(1, 0, 0, 1, 0), Budget(1, 0), Step(done=True)),
        # no surge: one old goes first (unavailability), then its replacement starts
        (Fleet(1, 1, 0, 0, 0), Budget(0, 1), Step(retire_old_serving=1)),
        (Fleet(1, 0, 0, 0, 0), Budget(0, 1), Step(start=1)),
        # 4 replicas at 25%/25%: one surge and one unavailable at once
        (Fleet(4, 4, 0, 0, 0), Budget(1, 1), Step(start=1, retire_old_serving=1)),
        # idle old replicas (failed, never routed) always go at once
        (Fleet(2, 2, 1, 0, 0), Budget(1, 0), Step(start=0, retire_old_idle=1, retire_old_serving=0)),
        # scaling down an up-to-date fleet: starting ones go before serving ones
        (Fleet(2, 0, 0, 3, 1), Budget(1, 0), Step(retire_new_starting=1, retire_new_serving=1)),
        # scaling up an up-to-date fleet
        (Fleet(4, 0, 0, 2, 0), Budget(1, 1), Step(start=2)),
        # the target shrank during an update: old ones go down to the floor
        (Fleet(2, 4, 0, 0, 0), Budget(1, 0), Step(retire_old_serving=2)),
    ],
)
def test_next_step(fleet: Fleet, limits: Budget, expected: Step) -> None:
    assert next_step(fleet, limits) == expected


def _simulate(target: int, old: int, limits: Budget, max_rounds: int = 200) -> list[Fleet]:
    """Play a rollout where every started replica becomes ready by the next round."""
    fleet = Fleet(target, old, 0, 0, 0)
    history = [fleet]
    for _ in range(max_rounds):
        step = next_step(fleet, limits)
        if step.done:
            return history
        new_serving = fleet.new_serving + fleet.new_starting - step.retire_new_serving - step.retire_new_starting
        fleet = Fleet(
            target,
            fleet.old_serving - step.retire_old_serving,
            fleet.old_idle - step.retire_old_idle,
            new_serving,
            step.start,
        )
        history.append(fleet)
    raise AssertionError(f"no end after {max_rounds} rounds: {history[-3:]}")


@pytest.mark.parametrize("target", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("old", [1, 2, 4, 10])
@pytest.mark.parametrize("strategy", [("25%", "25%"), (1, 0), (0, 1), ("50%", "0%"), (0, "50%"), (3, 3)])
def test_a_rollout_always_ends_within_its_limits(target: int, old: int, strategy: tuple[int | str, int | str]) -> None:
    limits = budget(UpdateStrategySpec(max_surge=strategy[0], max_unavailable=strategy[1]), target)
    history = _simulate(target, old, limits)
    last = history[-1]
    assert (last.old_serving, last.old_idle, last.new_serving, last.new_starting) == (0, 0, target, 0)
    for fleet in history[1:]:
        total = fleet.old_serving + fleet.old_idle + fleet.new_serving + fleet.new_starting
        assert total <= max(target, old) + limits.surge
        if old >= target:
            assert fleet.old_serving + fleet.new_serving >= target - limits.unavailable


@pytest.mark.parametrize(("count", "low", "high", "expected"), [(1, 1, 5, 1), (0, 1, 5, 1), (9, 1, 5, 5), (3, 3, 3, 3)])
def test_clamp(count: int, low: int, high: int, expected: int) -> None:
    assert clamp_replicas(count, low, high) == expected
