"""Per-API traffic from Traefik's Prometheus metrics: what `cortexlite get` shows.

Router metrics count what clients received (a retried attempt is not an extra request), and the
router lives as long as the API, so the figures survive every replica replacement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cortexlite.gateway.config import router_name

__all__ = ["ApiTraffic", "parse_traffic"]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class ApiTraffic:
    requests: dict[str, float] = field(default_factory=dict)  # "2XX" -> count
    duration_sum: float = 0.0
    duration_count: float = 0.0

    def count(self, status_class: str) -> int:
        return int(self.requests.get(status_class, 0))

    @property
    def total(self) -> int:
        return int(sum(self.requests.values()))

    @property
    def average_latency(self) -> float | None:
        """Seconds, over every request since the gateway started; None before the first."""
        return self.duration_sum / self.duration_count if self.duration_count else None


def parse_traffic(text: str, apis: list[str], provider: str = "file") -> dict[str, ApiTraffic]:
    """Requests by status class and latency per API, from the Prometheus text of Traefik's /metrics
    (routers of the file provider, or of the Nomad provider's service tags)."""
    routers = {f"{router_name(api)}@{provider}": api for api in apis}
    traffic = {api: ApiTraffic() for api in apis}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or not match["name"].startswith("traefik_router_"):
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        api = routers.get(labels.get("router", ""))
        if api is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        entry = traffic[api]
        name = match["name"]
        if name == "traefik_router_requests_total":
            status_class = f"{labels.get('code', '0')[:1]}XX"
            entry.requests[status_class] = entry.requests.get(status_class, 0) + value
        elif name == "traefik_router_request_duration_seconds_sum":
            entry.duration_sum += value
        elif name == "traefik_router_request_duration_seconds_count":
            entry.duration_count += value
    return traffic
