"""Iris classifier: a scikit-learn LogisticRegression trained on the iris data set that ships with scikit-learn."""

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

LABELS = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class PythonPredictor:
    def __init__(self, config):
        data = load_iris()
        self.model = LogisticRegression(max_iter=int(config.get("max_iter", 500)))
        self.model.fit(data.data, data.target)

    def predict(self, payload):
        row = [[payload[name] for name in FEATURES]]
        return LABELS[int(self.model.predict(row)[0])]
