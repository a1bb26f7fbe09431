"""A tiny PyTorch MLP that runs on a GPU when the replica has one, on the CPU otherwise.

The weights come from a fixed seed, so every replica (and every machine) serves the same model; the
answer says which device computed it.
"""

import torch


class PythonPredictor:
    def __init__(self, config):
        self.device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        torch.set_num_threads(int(config.get("cpu_threads", 1)))  # a tiny model gains nothing from more
        torch.manual_seed(int(config.get("seed", 0)))
        # Initialised on the CPU (the same weights everywhere), then moved to the device.
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 3),
        )
        self.model.to(self.device).eval()

    def predict(self, payload):
        x = torch.tensor([payload["x"]], dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            logits = self.model(x)[0]
        answer = {
            "device": self.device.type,
            "logits": [round(v, 4) for v in logits.cpu().tolist()],
            "class": int(logits.argmax()),
        }
        if self.device.type == "cuda":
            answer["gpu"] = torch.cuda.get_device_name(self.device)
        return answer
