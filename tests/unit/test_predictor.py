"""Argument matching by name, with Cortex's message for signatures we cannot satisfy."""

from __future__ import annotations

from typing import Any

import pytest

from cortexlite_runtime.errors import SignatureError
from cortexlite_runtime.predictor import PREDICT_ARGUMENTS, matched_arguments


class Examples:
    def none(self) -> None: ...
    def payload(self, payload: Any) -> None: ...
    def reordered(self, headers: Any, payload: Any) -> None: ...
    def kwargs(self, **kwargs: Any) -> None: ...
    def defaulted(self, payload: Any, extra: int = 1) -> None: ...
    def unknown(self, sample: Any) -> None: ...
    def positional_only(self, payload: Any, /) -> None: ...


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("none", ()),
        ("payload", ("payload",)),
        ("reordered", ("payload", "headers")),
        ("kwargs", PREDICT_ARGUMENTS),
        ("defaulted", ("payload",)),
    ],
)
def test_matched(name: str, expected: tuple[str, ...]) -> None:
    assert matched_arguments(getattr(Examples, name), PREDICT_ARGUMENTS, "predict", skip_self=True) == expected


@pytest.mark.parametrize("name", ["unknown", "positional_only"])
def test_unsatisfiable(name: str) -> None:
    with pytest.raises(SignatureError, match=r'invalid signature for function "predict": expected arguments \('):
        matched_arguments(getattr(Examples, name), PREDICT_ARGUMENTS, "predict", skip_self=True)
