"""Errors raised by the control plane.

    CortexliteError (cortexlite_runtime.errors)   root, shared with the runtime
    ├── SpecError, ConfigError, ...               from the runtime (re-exported here)
    ├── DockerError                               the Docker engine refused or failed
    ├── ImageBuildError                           an image could not be built
    ├── SnapshotError                             a project could not be read or stored
    ├── EnvConfigError                            an environment is unknown, malformed or unusable
    ├── BackendError                              a backend could not start, find or stop replicas
    │   ├── VenvError                             a replica venv could not be made
    │   └── ComputeUnavailable                    the GPUs (or other compute) a replica needs are not free
    ├── GatewayError                              the gateway could not start or did not apply a change
    ├── BusyError                                 another command is updating the API
    ├── NotFoundError                             no such API in the environment
    ├── RolloutError                              new replicas never became ready; the old version serves
    ├── RegistryError                             an image could not be pushed to a registry
    └── NomadError                                the Nomad API refused a request or did not answer
        ├── NomadUnreachable                      no answer (connection, TLS, timeout)
        ├── NomadAuthError                        403: the ACL token is missing, unknown or lacks a capability
        ├── NomadNotFound                         404: no such job, allocation or variable
        └── NomadInvalid                          400/500 on a job, or validation errors: the job is wrong

The CLI turns any `CortexliteError` into a one-paragraph message and exit code 1.
"""

from __future__ import annotations

from cortexlite_runtime.errors import ConfigError, CortexliteError, SpecError

__all__ = [
    "BackendError",
    "BusyError",
    "ComputeUnavailable",
    "ConfigError",
    "CortexliteError",
    "DockerError",
    "EnvConfigError",
    "GatewayError",
    "ImageBuildError",
    "NomadAuthError",
    "NomadConflict",
    "NomadError",
    "NomadInvalid",
    "NomadNotFound",
    "NomadUnreachable",
    "NotFoundError",
    "RegistryError",
    "RolloutError",
    "SnapshotError",
    "SpecError",
    "VenvError",
]


class DockerError(CortexliteError):
    """The Docker engine is unreachable or answered with an error (its explanation is kept)."""


class ImageBuildError(CortexliteError):
    """Building an image failed; the message carries the builder's last lines."""


class SnapshotError(CortexliteError):
    """A project directory could not be read, or its snapshot could not be stored."""


class EnvConfigError(CortexliteError):
    """An environment is unknown, its definition is invalid, or its backend cannot be used."""


class BackendError(CortexliteError):
    """A backend could not start, find or stop replicas."""


class VenvError(BackendError):
    """A replica venv (the runtime plus requirements.txt) could not be made; pip's last lines are kept."""


class ComputeUnavailable(BackendError):
    """A replica cannot start: the GPUs it asks for are absent or held by other replicas (the reason says which)."""


class GatewayError(CortexliteError):
    """The gateway could not be started, or did not apply a routing change in time."""


class BusyError(CortexliteError):
    """Another command holds the API (an update in progress); `--force` takes over."""


class NotFoundError(CortexliteError):
    """The environment has no API of that name."""


class RolloutError(CortexliteError):
    """An update failed: its new replicas were removed and the previous version keeps serving."""


class RegistryError(CortexliteError):
    """Pushing an image to a registry failed; the registry's explanation is kept."""


class NomadError(CortexliteError):
    """The Nomad API answered with an error or did not answer; the message names the agent and keeps its text."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NomadUnreachable(NomadError):
    """Nomad did not answer: connection refused, DNS, TLS or a timeout."""


class NomadAuthError(NomadError):
    """403 from Nomad: the ACL token is missing, unknown, expired or lacks a capability."""


class NomadNotFound(NomadError):
    """404 from Nomad: no such job, allocation, deployment or variable."""


class NomadConflict(NomadError):
    """A check-and-set write lost: someone changed the object since it was read (409)."""


class NomadInvalid(NomadError):
    """Nomad refused a job (400 decode errors, 500 validation errors, or validate's ValidationErrors)."""
