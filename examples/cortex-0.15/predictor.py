"""A Cortex 0.15 PythonPredictor, as Cortex 0.15 documented it: `__init__(self, config)` and `predict(self, payload)`.

A word-list sentiment classifier: the lists come from `predictor.config` in cortex.yaml.
"""

import re

WORD = re.compile(r"[a-z']+")


class PythonPredictor:
    def __init__(self, config):
        self.positive = set(config["positive"])
        self.negative = set(config["negative"])

    def predict(self, payload):
        words = WORD.findall(payload["text"].lower())
        score = sum(word in self.positive for word in words) - sum(word in self.negative for word in words)
        if score > 0:
            return "positive"
        if score < 0:
            return "negative"
        return "neutral"
