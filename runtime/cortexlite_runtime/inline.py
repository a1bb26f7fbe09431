"""When a 1 x 1 predictor may run on the event loop instead of its thread.

Handing a request to the predict thread costs two thread wake-ups, and on virtual machines a
wake-up across vCPUs is dear: about 20 % of throughput for a sub-millisecond model (see
bench/results). So a replica with one process, one thread and no batching runs `predict` on the
event loop while the predictor has *proven* to be fast: after `needed` calls in a row that each
took at most `limit` seconds (wall clock, so a predictor that waits on I/O never qualifies). The
loop is then blocked only by calls just observed to be short.

A call over the limit sends the predictor back to its thread, and after an inline call over the
limit the proof needed to come back doubles (up to `max_needed` calls), so a model with frequent
slow calls settles on the thread; each long run of fast inline calls halves it again, so the odd
slow call on a noisy machine is forgotten. `limit = 0` turns this off.
"""

from __future__ import annotations

__all__ = ["InlinePolicy"]


class InlinePolicy:
    def __init__(self, limit: float, warmup: int = 100, max_needed: int = 100_000) -> None:
        self.limit = limit
        self.warmup = warmup
        self.needed = warmup
        self.max_needed = max_needed
        self.streak = 0  # fast calls in a row, on the thread or inline

    @property
    def allowed(self) -> bool:
        return self.limit > 0 and self.streak >= self.needed

    def observe(self, seconds: float, *, inline: bool) -> None:
        """Record one call's wall-clock duration."""
        if seconds <= self.limit:
            self.streak += 1
            if inline and self.streak >= 2 * self.needed and self.needed > self.warmup:
                self.needed //= 2
                self.streak = self.needed
            return
        self.streak = 0
        if inline:
            self.needed = min(self.needed * 2, self.max_needed)
