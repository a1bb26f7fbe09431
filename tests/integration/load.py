"""A bounded load generator for zero-downtime tests: keep-alive clients at a steady rate, on loopback."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

__all__ = ["Load"]


@dataclass
class Load:
    """Requests at a steady rate from a few keep-alive clients; bounded in count and time."""

    url: str
    rate: float = 160.0
    clients: int = 4
    max_requests: int = 20_000
    max_seconds: float = 120.0
    results: list[tuple[float, int, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.started = time.monotonic()
        for index in range(self.clients):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self.duration = time.monotonic() - self.started

    def _run(self, index: int) -> None:
        interval = self.clients / self.rate
        next_at = time.monotonic() + index * interval / self.clients
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stop.is_set() and len(self.results) < self.max_requests:
                if time.monotonic() - self.started > self.max_seconds:
                    return
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                try:
                    reply = client.post(self.url, json={})
                    outcome = (time.monotonic(), reply.status_code, reply.text)
                except httpx.HTTPError as exc:
                    outcome = (time.monotonic(), 0, repr(exc))
                with self._lock:
                    self.results.append(outcome)

    def successes(self) -> int:
        return sum(1 for _, status, _ in self.results if status == 200)
