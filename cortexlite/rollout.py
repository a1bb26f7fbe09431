"""Rolling updates as a pure decision: from a fleet's state to the next step.

Kubernetes' RollingUpdate, which Cortex used: at most `target + max_surge` replicas exist at once,
and at least `target - max_unavailable` serve. Percentages count against the target; surge rounds
up and unavailability down; when both come to 0, one replica may be unavailable (so an update can
always progress). Only ready replicas in routing count as serving.

The same step function creates an API (no old replicas), scales one (no old replicas, another
target), updates and rolls back (the "old" replicas are then the failed version's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from cortexlite_runtime.sections import UpdateStrategySpec

__all__ = ["Budget", "Fleet", "Step", "budget", "clamp_replicas", "next_step"]


@dataclass(frozen=True)
class Budget:
    surge: int
    unavailable: int


@dataclass(frozen=True)
class Fleet:
    target: int
    old_serving: int  # replicas of other versions, ready and in routing
    old_idle: int  # replicas of other versions not serving (starting, failed, not routed)
    new_serving: int  # replicas of the target version, ready and in routing
    new_starting: int  # replicas of the target version not ready yet


@dataclass(frozen=True)
class Step:
    start: int = 0  # new replicas to start
    retire_old_idle: int = 0
    retire_old_serving: int = 0
    retire_new_starting: int = 0
    retire_new_serving: int = 0
    done: bool = False

    @property
    def idle(self) -> bool:
        return not (
            self.start or self.retire_old_idle or self.retire_old_serving
            or self.retire_new_starting or self.retire_new_serving
        )  # fmt: skip


def budget(strategy: UpdateStrategySpec, target: int) -> Budget:
    surge = _absolute(strategy.max_surge, target, math.ceil)
    unavailable = _absolute(strategy.max_unavailable, target, math.floor)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return Budget(surge, unavailable)


def clamp_replicas(count: int, minimum: int, maximum: int) -> int:
    return max(minimum, min(maximum, count))


def next_step(fleet: Fleet, limits: Budget) -> Step:
    """What to do now to move `fleet` toward `target` serving replicas of the new version, none of the old."""
    target = fleet.target
    old = fleet.old_serving + fleet.old_idle
    new = fleet.new_serving + fleet.new_starting
    if old == 0 and fleet.new_serving == target and fleet.new_starting == 0:
        return Step(done=True)
    excess = max(0, new - target)
    retire_new_starting = min(excess, fleet.new_starting)
    retire_new_serving = excess - retire_new_starting
    new -= excess
    start = max(0, min(target - new, target + limits.surge - (old + new)))
    serving = fleet.old_serving + fleet.new_serving - retire_new_serving
    retire_old_serving = max(0, min(fleet.old_serving, serving - (target - limits.unavailable)))
    return Step(
        start=start,
        retire_old_idle=fleet.old_idle,
        retire_old_serving=retire_old_serving,
        retire_new_starting=retire_new_starting,
        retire_new_serving=retire_new_serving,
    )


def _absolute(value: int | str, target: int, rounding: Callable[[float], int]) -> int:
    if isinstance(value, int):
        return value
    return rounding(target * int(value.rstrip("%")) / 100)
