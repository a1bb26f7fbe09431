"""Parsing `.env` files."""

from __future__ import annotations

import pytest

from cortexlite_runtime.dependencies import parse_dotenv
from cortexlite_runtime.errors import DependencyError


def test_parse_dotenv() -> None:
    text = "# comment\n\nA=1\nexport B = two words\nC='quoted # not a comment'\nD=\"x\"\nE=\n"
    assert parse_dotenv(text) == {"A": "1", "B": "two words", "C": "quoted # not a comment", "D": "x", "E": ""}


@pytest.mark.parametrize("line", ["no equals sign", "BAD-KEY=1", "=value"])
def test_bad_lines_are_named(line: str) -> None:
    with pytest.raises(DependencyError, match=r"^\.env:2: expected KEY=VALUE"):
        parse_dotenv(f"OK=1\n{line}\n")
