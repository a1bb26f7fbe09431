class PythonPredictor:
    def predict(self, payload):
        return payload[:-1]
