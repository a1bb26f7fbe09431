class PythonPredictor:
    def predict(self, payload):
        if hasattr(payload, "multi_items"):
            items = {k: v if isinstance(v, str) else v.file.read().decode() for k, v in payload.multi_items()}
            return {"type": "form", "value": items}
        if isinstance(payload, bytes):
            return {"type": "bytes", "value": payload.decode("latin-1")}
        return {"type": type(payload).__name__, "value": payload}
