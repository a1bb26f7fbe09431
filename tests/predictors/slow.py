import os
import time


class PythonPredictor:
    def predict(self, payload):
        time.sleep(float(payload.get("seconds", 1.0)) if isinstance(payload, dict) else 1.0)
        return {"pid": os.getpid()}
