"""Iris classifier: a LogisticRegression trained in `__init__` on the iris data bundled with scikit-learn."""

from __future__ import annotations

from typing import Any

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

LABELS = ("setosa", "versicolor", "virginica")


class PythonPredictor:
    def __init__(self, config: dict[str, Any]) -> None:
        data = load_iris()
        self.model = LogisticRegression(max_iter=500)
        self.model.fit(data.data, data.target)

    def predict(self, payload: dict[str, Any]) -> dict[str, str]:
        # A dict, not a bare str: the runtime answers a str as text/plain, and both servers must send JSON.
        return {"label": LABELS[int(self.model.predict([payload["features"]])[0])]}
