class ONNXPredictor:
    def __init__(self, onnx_client, config):
        self.client = onnx_client

    def predict(self, payload):
        outputs = self.client.predict(payload["features"])
        return {"label": int(outputs[0][0])}
