import boto3


class PythonPredictor:
    """Cortex's example projects download their models themselves, with plain boto3."""

    def __init__(self, config):
        s3 = boto3.client("s3")
        self.model = s3.get_object(Bucket=config["bucket"], Key=config["key"])["Body"].read().decode()

    def predict(self, payload):
        return {"model": self.model}
