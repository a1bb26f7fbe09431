import os
from pathlib import Path

# In the replica's cache volume, so the flag outlives the container's restarts.
FLAG = Path(os.environ.get("CORTEX_CACHE_DIR", "/tmp")) / "hog-on-start"


def _hog(megabytes):
    block = bytearray(megabytes * 2**20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return block


class PythonPredictor:
    """Allocates past its memory limit on request, and from then on at every start (a crash loop)."""

    def __init__(self, config):
        self.megabytes = int(config.get("megabytes", 512))
        if FLAG.exists():
            self.held = _hog(self.megabytes)

    def predict(self, payload):
        FLAG.write_text("1")
        self.held = _hog(self.megabytes)
        return {"allocated": self.megabytes}
