import threading
import time


class PythonPredictor:
    def predict(self, payload):
        time.sleep(float(payload.get("seconds", 0)))
        return {"thread": threading.current_thread().name}
