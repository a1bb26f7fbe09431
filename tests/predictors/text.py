class PythonPredictor:
    def predict(self, payload):
        return f"{type(payload).__name__}:{payload.upper()}"
