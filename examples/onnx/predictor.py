"""Iris classifier served from an ONNX model: cortexlite's `onnx_client` runs model.onnx with onnxruntime."""

LABELS = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class ONNXPredictor:
    def __init__(self, onnx_client, config):
        self.client = onnx_client

    def predict(self, payload):
        # A flat list of 4 numbers is one row of the model's [None, 4] input; onnx_client shapes it.
        row = [float(payload[name]) for name in FEATURES]
        label, probabilities = self.client.predict(row)
        return {
            "label": LABELS[int(label[0])],
            "probabilities": {name: round(float(p), 4) for name, p in zip(LABELS, probabilities[0], strict=True)},
        }
