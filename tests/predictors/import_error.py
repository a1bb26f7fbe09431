import definitely_not_an_installed_module  # noqa: F401


class PythonPredictor:
    def predict(self, payload):
        return payload
