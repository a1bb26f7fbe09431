"""Images for a Nomad cluster: built on this machine's Docker engine, pushed to the environment's registry.

Nomad clients pull what their jobs name, so a job names `<registry>/cortexlite/<kind>:<hash>`: the
same content-hash tags as everywhere else, under the registry. Without a registry the job names the
local tag, which works where the clients share this machine's engine (`nomad agent -dev`) or were
loaded by hand. A push is skipped when the registry already holds the tag (tags are content hashes).
Registry credentials are the Docker engine's (`docker login`), never part of a job.
"""

from __future__ import annotations

from collections.abc import Callable

from cortexlite.backends.docker import DockerEngine
from cortexlite.dependency_image import (
    DEPENDENCY_FILES,
    DependencyImage,
    dependency_image,
    dockerfile_digest,
    ensure_dependency_image,
)
from cortexlite.errors import DockerError, RegistryError
from cortexlite.image import ImageOptions, build_runtime_image, load_options, planned_runtime_tag
from cortexlite.project import Project
from cortexlite.settings import IMAGE_OPTIONS_FILE, Settings

__all__ = ["ClusterImages", "registry_reference"]

Log = Callable[[str], None]
_UNBUILT = "cortexlite/runtime:(to be built)"


def registry_reference(registry: str | None, tag: str) -> str:
    """Where clients pull `tag` from (pure)."""
    return f"{registry}/{tag}" if registry else tag


class ClusterImages:
    def __init__(self, settings: Settings, registry: str | None) -> None:
        self.settings = settings
        self.registry = registry
        self.options: ImageOptions = load_options(settings.home / IMAGE_OPTIONS_FILE).with_engine(None)
        self._engine: DockerEngine | None = None
        self._pushed: set[str] = set()

    @property
    def engine(self) -> DockerEngine:
        if self._engine is None:
            self._engine = DockerEngine.from_env()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def planned(self, project: Project) -> str:
        """The reference `prepare` would give, without building or pushing (`--dry-run`)."""
        try:
            runtime = planned_runtime_tag(self.engine, self.options)
        except DockerError:
            runtime = None
        if runtime is None:
            return registry_reference(self.registry, _UNBUILT)
        image = self._dependencies(project, runtime)
        return registry_reference(self.registry, image.tag if image is not None else runtime)

    def prepare(self, project: Project, log: Log) -> tuple[str, bool]:
        """The project's image, built when missing and pushed when the registry lacks it; True when built now."""
        runtime = build_runtime_image(self.options, log, self.engine)
        image = self._dependencies(project, runtime.tag)
        built = runtime.built
        if image is not None:
            built = ensure_dependency_image(self.engine, image, self.options, log) or built
        return self.publish(image.tag if image is not None else runtime.tag, log), built

    def publish(self, tag: str, log: Log) -> str:
        """The reference clients pull `tag` by: pushed to the registry first when it lacks it."""
        reference = registry_reference(self.registry, tag)
        if self.registry is None or reference in self._pushed:
            return reference
        self.engine.tag(tag, reference)
        if not self.engine.registry_has(reference):
            log(f"pushing {reference}")
            try:
                self.engine.push(reference)
            except DockerError as exc:
                raise RegistryError(
                    f"cannot push {reference}: {exc}; check that the registry {self.registry} answers and that "
                    "`docker login` has credentials for it (a plain-HTTP registry must be in the engine's "
                    "insecure-registries, except on 127.0.0.0/8)"
                ) from exc
        self._pushed.add(reference)
        return reference

    def _dependencies(self, project: Project, runtime: str) -> DependencyImage | None:
        files = {name: project.read(name) for name in DEPENDENCY_FILES}
        return dependency_image(runtime, files, self.options, dockerfile_digest())
