"""Human-written quantities: always finite and in range; a refusal is a ValueError naming what was expected."""

from __future__ import annotations

import math

import pytest

from cortexlite_runtime.config import RuntimeConfig
from cortexlite_runtime.errors import ConfigError
from cortexlite_runtime.units import MAX_SECONDS, parse_cpu, parse_duration, parse_memory


@pytest.mark.parametrize(
    ("value", "seconds"), [("10ms", 0.01), ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0), (2, 2.0), (" .5 ", 0.5)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["inf", "nan", "1e400", "1" * 400, "1" * 400 + "h", math.inf, -math.inf, math.nan, 10**400, True, None, "", "-1s"],
    ids=lambda value: repr(value)[:12],
)
def test_non_finite_or_overflowing_durations_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration") as refused:
        parse_duration(value)
    assert len(str(refused.value)) < 120


def test_durations_have_a_ceiling() -> None:
    assert parse_duration(MAX_SECONDS) == MAX_SECONDS
    with pytest.raises(ValueError, match="must be at most"):
        parse_duration("1" + "0" * 300)
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(-1)


@pytest.mark.parametrize("value", [math.inf, math.nan, "1" * 400, 10**400, "1" * 400 + "m", "nan", 2e6])
def test_non_finite_or_overflowing_cores_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError, match="cores"):
        parse_cpu(value)


@pytest.mark.parametrize("value", [math.inf, "9" * 400 + "Ti", 10**400, "inf", 2**63, "9000000Ti"])
def test_non_finite_or_overflowing_sizes_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError, match=r"size|bytes"):
        parse_memory(value)


def test_cores_and_sizes() -> None:
    assert (parse_cpu("500m"), parse_cpu(2), parse_memory("1Gi"), parse_memory("100M")) == (0.5, 2.0, 2**30, 10**8)


@pytest.mark.parametrize("raw", ["inf", "1" * 400, "1e400", "1" + "0" * 20])
def test_a_huge_grace_period_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="CORTEX_GRACE_PERIOD"):
        RuntimeConfig.from_env({"CORTEX_GRACE_PERIOD": raw})


def test_the_header_limit_setting() -> None:
    assert RuntimeConfig.from_env({}).max_header_bytes == 65_536
    assert RuntimeConfig.from_env({"CORTEXLITE_MAX_HEADER_BYTES": "8192"}).max_header_bytes == 8192
    with pytest.raises(ConfigError, match="CORTEXLITE_MAX_HEADER_BYTES"):
        RuntimeConfig.from_env({"CORTEXLITE_MAX_HEADER_BYTES": "10"})
