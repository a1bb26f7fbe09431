import time


class PythonPredictor:
    def __init__(self, config):
        time.sleep(float(config.get("seconds", 1.5)))

    def predict(self, payload):
        return "ok"
