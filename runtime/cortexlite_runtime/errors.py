"""Errors raised by the runtime.

    CortexliteError                 root of every error cortexlite raises on purpose
    ├── ConfigError                 a bad environment variable (CORTEX_*, CORTEXLITE_*)
    ├── SpecError                   a bad cortexlite.yaml / cortex.yaml or resolved-spec JSON
    ├── PredictorError              the user's predictor could not be loaded or initialised
    │   └── SignatureError          a constructor or predict with arguments we cannot supply
    └── DependencyError             dependencies.sh or requirements.txt failed

Messages say what was expected, what was found, and where; the entry point prints them
without a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CortexliteError",
    "DependencyError",
    "PredictorError",
    "SignatureError",
    "SpecError",
]


class CortexliteError(Exception):
    """Root of every error cortexlite raises on purpose."""


class ConfigError(CortexliteError):
    """An environment variable holds a value the runtime cannot use."""


class SpecError(CortexliteError):
    """A spec file (yaml or resolved JSON) is invalid; the message names file, API and field."""


class PredictorError(CortexliteError):
    """The predictor could not be imported, found or initialised."""


class SignatureError(PredictorError):
    """A predictor method asks for arguments the runtime cannot supply."""


class DependencyError(CortexliteError):
    """Installing the project's dependencies failed."""
