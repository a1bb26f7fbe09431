"""Raises, or returns what JSON cannot hold, when the query asks for it (`?do=...`); else a small JSON answer."""

import math


class Interrupted(BaseException):
    """Not an Exception: what a predictor's own control flow (or a library's) may raise."""


class PythonPredictor:
    def __init__(self, config):
        self.config = config

    def predict(self, payload, query_params):
        action = query_params.get("do", "")
        if action == "raise":
            raise ValueError(f"refused {str(payload)[:100]}")
        if action == "keyerror":
            return {"value": payload["missing"]}
        if action == "base":
            raise Interrupted("a BaseException of the predictor's own")
        if action == "exit":
            raise SystemExit(3)
        if action == "nan":
            return {"score": math.nan}
        if action == "object":
            return {"value": object()}
        if action == "surrogate":
            return {"text": "\ud800"}
        if action == "deep":
            nested = []
            for _ in range(50_000):
                nested = [nested]
            return nested
        if action == "text":
            return str(payload)
        if action == "bytes":
            return str(payload).encode("utf-8", "surrogatepass")
        if isinstance(payload, dict) and payload.get("fail"):
            raise RuntimeError("boom on purpose")
        return {"ok": True, "type": type(payload).__name__}
