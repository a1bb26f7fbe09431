class PythonPredictor:
    """Allocates `config.megabytes` in `__init__`: past a small memory limit, the kernel kills it while starting."""

    def __init__(self, config):
        self.block = bytearray(int(config.get("megabytes", 400)) * 2**20)
        for offset in range(0, len(self.block), 4096):
            self.block[offset] = 1

    def predict(self, payload):
        return len(self.block)
