import os
from pathlib import Path

import helper  # a module beside the predictor: the project dir is on sys.path


class PythonPredictor:
    def __init__(self, config):
        self.marker = Path(os.environ["MARKER_FILE"]).read_text().strip()

    def predict(self, payload):
        return {
            "marker": self.marker,
            "greeting": os.environ.get("GREETING"),
            "helper": helper.NAME,
            "spec_env": os.environ.get("FROM_SPEC"),
        }
