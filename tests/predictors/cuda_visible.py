import os


class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
