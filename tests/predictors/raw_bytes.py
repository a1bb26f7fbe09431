class PythonPredictor:
    def predict(self, payload):
        assert isinstance(payload, bytes)
        return bytes(reversed(payload))
