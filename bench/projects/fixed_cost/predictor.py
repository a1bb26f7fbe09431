"""A predictor whose cost is a fixed overhead per call (as a GPU kernel launch), one request per call."""

from __future__ import annotations

import time
from typing import Any

CALL_SECONDS = 0.02


class PythonPredictor:
    def __init__(self, config: dict[str, Any]) -> None:
        pass

    def predict(self, payload: dict[str, Any]) -> dict[str, int]:
        time.sleep(CALL_SECONDS)
        return {"features": len(payload["features"])}
