"""`cortexlite init`: a new project that serves and reloads as it is, to edit into the user's model."""

from __future__ import annotations

import re
from pathlib import Path

from cortexlite.errors import EnvConfigError
from cortexlite_runtime.spec import MAX_NAME_LENGTH
from cortexlite_runtime.specfile import SPEC_FILENAMES

__all__ = ["api_name_for", "project_files", "scaffold"]

_PREDICTOR = '''\
"""The {name} API's predictor: cortexlite builds it once per process, then calls predict per request.

Edit and save while `cortexlite dev` runs: the next request runs the new code. The model stays
loaded while __init__ is unchanged.
"""


class PythonPredictor:
    def __init__(self, config):
        # Load the model here (from a file in the project, or from predictor.model_path).
        # `config` is predictor.config from cortexlite.yaml.
        self.weights = config["weights"]
        self.bias = config.get("bias", 0.0)

    def predict(self, payload):
        # `payload` is the parsed request body (JSON here); the return value becomes the response.
        score = sum(self.weights[name] * float(payload[name]) for name in self.weights) + self.bias
        return {{"score": round(score, 4), "label": "positive" if score > 0 else "negative"}}
'''

_SPEC = """\
# The APIs of this project; the reference is in the README's "Spec reference".
- name: {name}
  predictor:
    type: python
    path: predictor.py
    config:
      weights: {{x: 0.8, y: -0.5}}
      bias: 0.1
  compute:
    cpu: 1
  autoscaling:
    min_replicas: 1
    max_replicas: 2
  networking:
    endpoint: /{name}
"""

_REQUIREMENTS = """\
# The predictor's Python packages, one per line as for pip (e.g. scikit-learn>=1.3).
"""

_SAMPLE = '{"x": 1.5, "y": 0.4}\n'


def api_name_for(directory: Path) -> str:
    """An API name (lower-case letters, digits and '-', starting with a letter) from a directory name."""
    name = re.sub(r"[^a-z0-9]+", "-", directory.name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:MAX_NAME_LENGTH].rstrip("-")
    return name or "api"


def project_files(name: str) -> dict[str, str]:
    """The new project's files by name (pure)."""
    return {
        "predictor.py": _PREDICTOR.format(name=name),
        "cortexlite.yaml": _SPEC.format(name=name),
        "requirements.txt": _REQUIREMENTS,
        "sample.json": _SAMPLE,
    }


def scaffold(directory: Path, name: str | None = None) -> tuple[str, list[Path]]:
    """Write a new project into `directory` (made if missing); never overwrites a file. Returns (API name, files)."""
    directory = directory.expanduser().absolute()
    if directory.exists() and not directory.is_dir():
        raise EnvConfigError(f"{directory} exists and is not a directory")
    api = name or api_name_for(directory)
    files = project_files(api)
    taken = sorted(n for n in (*files, *SPEC_FILENAMES) if (directory / n).exists())
    if taken:
        raise EnvConfigError(
            f"{directory} already has {', '.join(taken)}; cortexlite init writes only files that do not exist "
            "(use another directory, or remove them)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in files.items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return api, written
