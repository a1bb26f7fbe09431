import time

ANSWER = "v1"


class PythonPredictor:
    def __init__(self, config):
        time.sleep(float(config.get("init_seconds", 0)))
        self.answer = config.get("answer", ANSWER)

    def predict(self, payload):
        return {"answer": self.answer}
