"""`onnx_client` for ONNXPredictor: an onnxruntime session that converts inputs by the model's metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import PredictorError

__all__ = ["ONNXClient", "find_onnx_file"]

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class ONNXClient:
    """What Cortex handed ONNXPredictor as `onnx_client`: `predict(model_input) -> list of outputs`."""

    def __init__(self, model_path: Path) -> None:
        try:
            import numpy
            import onnxruntime
        except ImportError as exc:
            raise PredictorError(
                "onnx predictors need onnxruntime and numpy: pip install 'cortexlite-runtime[onnx]'"
            ) from exc
        self._np = numpy
        self.model_file = find_onnx_file(model_path)
        providers = onnxruntime.get_available_providers()
        try:
            self.session = onnxruntime.InferenceSession(str(self.model_file), providers=providers)
        except Exception as exc:
            raise PredictorError(f"cannot load ONNX model {self.model_file}: {exc}") from exc
        self.inputs = self.session.get_inputs()

    @property
    def input_signature(self) -> dict[str, dict[str, Any]]:
        return {i.name: {"type": i.type, "shape": [_dim(d) for d in i.shape]} for i in self.inputs}

    def predict(self, model_input: Any) -> list[Any]:
        feeds = {i.name: self._convert(i, self._pick(i.name, model_input)) for i in self.inputs}
        return list(self.session.run(None, feeds))

    def _pick(self, name: str, model_input: Any) -> Any:
        if isinstance(model_input, dict) and (len(self.inputs) > 1 or name in model_input):
            if name not in model_input:
                raise ValueError(f"missing model input {name!r} (expected keys: {list(self.input_signature)})")
            return model_input[name]
        if len(self.inputs) > 1:
            raise ValueError(f"this model has several inputs; send an object with keys {list(self.input_signature)}")
        return model_input

    def _convert(self, spec: Any, value: Any) -> Any:
        dtype = _DTYPES.get(spec.type)
        if dtype is None:
            raise ValueError(f"input {spec.name!r} has unsupported type {spec.type}")
        array = self._np.asarray(value, dtype=dtype)
        expected = len(spec.shape)
        while array.ndim < expected:  # a flat list for a [None, n] input is one row
            array = self._np.expand_dims(array, 0)
        if array.ndim != expected:
            raise ValueError(
                f"input {spec.name!r} expects {expected} dimensions {spec.shape}, got shape {list(array.shape)}"
            )
        return array


def find_onnx_file(model_path: Path) -> Path:
    """`model_path` itself, or the .onnx file in it (in the highest integer-named version dir)."""
    if model_path.is_file():
        return model_path
    if not model_path.is_dir():
        raise PredictorError(f"ONNX model not found at {model_path}")
    versions = sorted((int(p.name), p) for p in model_path.iterdir() if p.is_dir() and p.name.isdigit())
    directory = versions[-1][1] if versions else model_path
    files = sorted(directory.glob("*.onnx"))
    if len(files) != 1:
        found = ", ".join(f.name for f in files) or "none"
        raise PredictorError(f"expected exactly one .onnx file in {directory} (found: {found})")
    return files[0]


def _dim(value: Any) -> int | str | None:
    return value if isinstance(value, int) else (value or None)
