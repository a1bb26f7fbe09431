"""Errors raised by the runtime.

    CortexliteError                 root of every error cortexlite raises on purpose
    ├── ConfigError                 a bad environment variable (CORTEX_*, CORTEXLITE_*)
    ├── SpecError                   a bad cortexlite.yaml / cortex.yaml or resolved-spec JSON
    ├── PredictorError              the user's predictor could not be loaded or initialised
    │   └── SignatureError          a constructor or predict with arguments we cannot supply
    ├── DependencyError             dependencies.sh or requirements.txt failed
    └── StorageError                an S3-compatible store failed or refused (names endpoint and bucket)
        ├── StorageUnreachable      no answer within the time budget
        ├── StorageAuthError        the keys are wrong
        ├── StorageDenied           the keys may not do this (read-only credentials on upload)
        ├── StorageNotFound         no such bucket or object
        └── BundleError             a project bundle is corrupt, tampered with or unsafe to extract

Messages say what was expected, what was found, and where; the entry point prints them
without a traceback.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigError",
    "CortexliteError",
    "DependencyError",
    "PredictorError",
    "SignatureError",
    "SpecError",
    "StorageAuthError",
    "StorageDenied",
    "StorageError",
    "StorageNotFound",
    "StorageUnreachable",
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


class StorageError(CortexliteError):
    """An S3-compatible store failed or refused a request; the message names the endpoint and bucket."""


class StorageUnreachable(StorageError):
    """The endpoint did not answer (or kept failing) within the retry budget."""


class StorageAuthError(StorageError):
    """The access key is unknown or the secret key is wrong."""


class StorageDenied(StorageError):
    """The credentials are valid but may not do this (e.g. read-only keys asked to upload)."""


class StorageNotFound(StorageError):
    """The bucket or the object does not exist."""


class BundleError(StorageError):
    """A project bundle does not match its sha256, is not a zip, or holds unsafe paths."""
