import shared_lib  # lives in src/, which predictor.python_path puts on sys.path


class PythonPredictor:
    def predict(self, payload):
        return shared_lib.shout(payload)
