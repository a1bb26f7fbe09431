"""Replica-wide Prometheus metrics, rendered in the text exposition format.

All requests pass through the one front process, so these counters are replica-wide whichever
process runs the predictor.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence

__all__ = ["Histogram", "Metrics"]

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self, name: str) -> list[str]:
        lines = []
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total!r}")
        lines.append(f"{name}_count {self.count}")
        return lines


class Metrics:
    def __init__(self, in_flight: Callable[[], int], queued: Callable[[], int]) -> None:
        self._in_flight = in_flight
        self._queued = queued
        self.requests = {"2XX": 0, "4XX": 0, "5XX": 0}
        self.duration = Histogram(DURATION_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.extra_gauges: Callable[[], list[str]] | None = None

    def record(self, status: int, seconds: float) -> None:
        key = "2XX" if status < 400 else "4XX" if status < 500 else "5XX"
        self.requests[key] += 1
        self.duration.observe(seconds)

    def render(self) -> bytes:
        lines = [
            "# HELP cortexlite_requests_total Predict requests answered, by status class.",
            "# TYPE cortexlite_requests_total counter",
            *(f'cortexlite_requests_total{{status_class="{k}"}} {v}' for k, v in self.requests.items()),
            "# HELP cortexlite_request_duration_seconds Time from admission to response.",
            "# TYPE cortexlite_request_duration_seconds histogram",
            *self.duration.render("cortexlite_request_duration_seconds"),
            "# HELP cortexlite_in_flight_requests Predict requests active or queued in this replica.",
            "# TYPE cortexlite_in_flight_requests gauge",
            f"cortexlite_in_flight_requests {self._in_flight()}",
            "# HELP cortexlite_queued_requests Predict requests waiting for a free thread or process.",
            "# TYPE cortexlite_queued_requests gauge",
            f"cortexlite_queued_requests {self._queued()}",
            "# HELP cortexlite_batch_size Requests per predict call with server-side batching.",
            "# TYPE cortexlite_batch_size histogram",
            *self.batch_size.render("cortexlite_batch_size"),
        ]
        if self.extra_gauges is not None:
            lines.extend(self.extra_gauges())
        return ("\n".join(lines) + "\n").encode()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and value >= 1 else repr(float(value))
