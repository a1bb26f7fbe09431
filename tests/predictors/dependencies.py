from pathlib import Path

import six  # installed from requirements.txt into the dependency image


class PythonPredictor:
    def __init__(self, config):
        self.marker = Path("/opt/cortexlite-test/marker").read_text().strip()  # written by dependencies.sh

    def predict(self, payload):
        return {"six": six.__version__, "marker": self.marker}
