"""The fixed-cost predictor with server-side batching: the same cost per call, whatever the batch size."""

from __future__ import annotations

import time
from typing import Any

CALL_SECONDS = 0.02


class PythonPredictor:
    def __init__(self, config: dict[str, Any]) -> None:
        pass

    def predict(self, payload: list[dict[str, Any]]) -> list[dict[str, int]]:
        time.sleep(CALL_SECONDS)
        return [{"features": len(item["features"])} for item in payload]
