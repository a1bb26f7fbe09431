"""Errors raised by the control plane.

    CortexliteError (cortexlite_runtime.errors)   root, shared with the runtime
    ├── SpecError, ConfigError, ...               from the runtime (re-exported here)
    ├── DockerError                               the Docker engine refused or failed
    ├── ImageBuildError                           an image could not be built
    └── SnapshotError                             a project could not be read or stored

The CLI turns any `CortexliteError` into a one-paragraph message and exit code 1.
"""

from __future__ import annotations

from cortexlite_runtime.errors import ConfigError, CortexliteError, SpecError

__all__ = ["ConfigError", "CortexliteError", "DockerError", "ImageBuildError", "SnapshotError", "SpecError"]


class DockerError(CortexliteError):
    """The Docker engine is unreachable or answered with an error (its explanation is kept)."""


class ImageBuildError(CortexliteError):
    """Building an image failed; the message carries the builder's last lines."""


class SnapshotError(CortexliteError):
    """A project directory could not be read, or its snapshot could not be stored."""
