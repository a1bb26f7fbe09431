class PythonPredictor:
    """A Cortex 0.15 predictor: `__init__(self, config)` and `predict(self, payload)`."""

    def __init__(self, config):
        self.labels = config["labels"]

    def predict(self, payload):
        return self.labels[int(payload["index"])]
