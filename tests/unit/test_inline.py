"""InlinePolicy: when a 1 x 1 predictor may run on the event loop."""

from __future__ import annotations

import pytest

from cortexlite_runtime.inline import InlinePolicy


def _feed(policy: InlinePolicy, seconds: float, count: int, *, inline: bool) -> None:
    for _ in range(count):
        policy.observe(seconds, inline=inline)


@pytest.mark.parametrize(
    ("calls", "allowed"),
    [
        ([], False),  # no proof yet
        ([0.001] * 9, False),  # not enough proof
        ([0.001] * 10, True),
        ([0.001] * 9 + [0.006], False),  # one slow call resets the proof
        ([0.006] + [0.001] * 10, True),  # slow calls on the thread cost no penalty
        ([0.005] * 10, True),  # the limit itself is fast enough
        ([0.0051] * 10, False),
    ],
)
def test_proof_on_the_thread(calls: list[float], allowed: bool) -> None:
    policy = InlinePolicy(limit=0.005, warmup=10)
    for seconds in calls:
        policy.observe(seconds, inline=False)
    assert policy.allowed is allowed


def test_zero_limit_disables() -> None:
    policy = InlinePolicy(limit=0, warmup=1)
    _feed(policy, 0.0, 100, inline=False)
    assert not policy.allowed


def test_slow_inline_call_doubles_the_proof_needed() -> None:
    policy = InlinePolicy(limit=0.005, warmup=10, max_needed=40)
    _feed(policy, 0.001, 10, inline=False)
    policy.observe(0.1, inline=True)
    assert (policy.allowed, policy.needed) == (False, 20)
    _feed(policy, 0.001, 19, inline=False)
    assert not policy.allowed
    policy.observe(0.001, inline=False)
    assert policy.allowed
    policy.observe(0.1, inline=True)
    policy.observe(0.1, inline=False)
    policy.observe(0.1, inline=False)
    assert policy.needed == 40  # capped; only inline slow calls raise it
    policy.observe(0.1, inline=True)
    assert policy.needed == 40


def test_long_fast_inline_runs_halve_the_proof_again() -> None:
    policy = InlinePolicy(limit=0.005, warmup=10)
    _feed(policy, 0.001, 10, inline=False)
    policy.observe(0.1, inline=True)
    policy.observe(0.1, inline=True)  # needed 40
    _feed(policy, 0.001, 40, inline=False)
    assert policy.allowed and policy.needed == 40
    _feed(policy, 0.001, 40, inline=True)  # 80 in a row: halve
    assert policy.needed == 20 and policy.allowed
    _feed(policy, 0.001, 20, inline=True)
    assert policy.needed == 10
    _feed(policy, 0.001, 100, inline=True)
    assert policy.needed == 10  # never below the warm-up
