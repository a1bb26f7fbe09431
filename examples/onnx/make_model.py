"""Makes model.onnx: a scikit-learn LogisticRegression trained on iris, converted with skl2onnx.

Run it from anywhere (`python examples/onnx/make_model.py`); it needs scikit-learn and skl2onnx,
which deploying the example does not: the .onnx file it writes is part of the project.
"""

from pathlib import Path

from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

OUTPUT = Path(__file__).resolve().parent / "model.onnx"
# Opsets that every onnxruntime >= 1.17 (what cortexlite-runtime[onnx] asks for) can run.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def main() -> None:
    data = load_iris()
    features = data.data.astype("float32")
    model = LogisticRegression(max_iter=500).fit(features, data.target)
    # zipmap=False: the probabilities come out as a plain [N, 3] tensor instead of a list of dicts.
    onnx_model = to_onnx(model, features[:1], options={"zipmap": False}, target_opset=TARGET_OPSET)
    OUTPUT.write_bytes(onnx_model.SerializeToString())
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
