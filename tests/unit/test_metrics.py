"""Prometheus text rendering of the replica-wide metrics."""

from __future__ import annotations

from cortexlite_runtime.metrics import Metrics


def test_render() -> None:
    metrics = Metrics(in_flight=lambda: 5, queued=lambda: 2)
    metrics.record(200, 0.003)
    metrics.record(404, 0.2)
    metrics.record(503, 0.0001)
    metrics.batch_size.observe(16)
    text = metrics.render().decode()
    assert 'cortexlite_requests_total{status_class="2XX"} 1' in text
    assert 'cortexlite_requests_total{status_class="4XX"} 1' in text
    assert 'cortexlite_requests_total{status_class="5XX"} 1' in text
    assert 'cortexlite_request_duration_seconds_bucket{le="0.001"} 1' in text
    assert 'cortexlite_request_duration_seconds_bucket{le="0.005"} 2' in text
    assert 'cortexlite_request_duration_seconds_bucket{le="+Inf"} 3' in text
    assert "cortexlite_request_duration_seconds_count 3" in text
    assert "cortexlite_in_flight_requests 5" in text and "cortexlite_queued_requests 2" in text
    assert 'cortexlite_batch_size_bucket{le="8"} 0' in text and 'cortexlite_batch_size_bucket{le="16"} 1' in text
