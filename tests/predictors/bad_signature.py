class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, sample, threshold):
        return sample
