import six


class PythonPredictor:
    def predict(self, payload):
        return {"six": six.__version__, "file": six.__file__}
