class PythonPredictor:
    def __init__(self, config):
        self.config = config

    def predict(self, payload, query_params, headers):
        return {"payload": payload, "query": query_params, "agent": headers.get("x-test"), "config": self.config}
