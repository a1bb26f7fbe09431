"""A linear model with a fixed cost per call: what server-side batching is for.

Many models cost about the same to run on 1 input as on 16 (a GPU kernel launch, a framework's
per-call overhead, a remote call). `call_cost_s` stands for that cost: one sleep per `predict`
call, whatever the batch size. The per-item work (a dot product) is cheap.
"""

import time


class PythonPredictor:
    def __init__(self, config):
        self.weights = [float(w) for w in config["weights"]]
        self.bias = float(config.get("bias", 0.0))
        self.call_cost_s = float(config.get("call_cost_s", 0.05))

    def predict(self, payload):
        # With server_side_batching, `payload` is a list of request bodies and the answer is a list
        # of the same length, in the same order: answer i goes to request i.
        time.sleep(self.call_cost_s)
        return [{"score": self.score(item["x"]), "batch_size": len(payload)} for item in payload]

    def score(self, x):
        if len(x) != len(self.weights):
            raise ValueError(f"x must have {len(self.weights)} numbers (got {len(x)})")
        return round(sum(w * float(v) for w, v in zip(self.weights, x, strict=True)) + self.bias, 6)
