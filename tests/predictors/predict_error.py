class PythonPredictor:
    def predict(self, payload):
        if payload.get("fail"):
            raise RuntimeError("boom on purpose")
        return {"ok": True}
