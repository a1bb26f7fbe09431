"""A project's dependency image: `cortexlite/deps:<hash12>`, FROM the runtime image.

Made once per (runtime image, dependencies.sh, requirements.txt, install options): replicas of
every version of the project that keeps those files start from it without running pip or the
script. The tag is a content hash, so a changed requirement can never reuse a stale image.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cortexlite.backends.docker import DockerEngine, LogSink
from cortexlite.image import ImageOptions, packaged_file, tar_context
from cortexlite.runtime_wheel import file_digest

__all__ = [
    "DEPENDENCY_FILES",
    "DEPENDENCY_REPOSITORY",
    "DependencyImage",
    "dependency_image",
    "dockerfile_digest",
    "ensure_dependency_image",
]

DEPENDENCY_REPOSITORY = "cortexlite/deps"
DEPENDENCY_FILES = ("dependencies.sh", "requirements.txt")
_RECIPE = "1"


@dataclass(frozen=True)
class DependencyImage:
    tag: str
    runtime_tag: str
    files: dict[str, bytes]  # the project's dependency files, by name
    build_args: dict[str, str]


def dependency_image(
    runtime_tag: str, files: Mapping[str, bytes | None], options: ImageOptions, dockerfile_digest: str
) -> DependencyImage | None:
    """What a project needs on top of the runtime image; None when it has no dependency files (pure)."""
    present = {name: content for name, content in files.items() if name in DEPENDENCY_FILES and content is not None}
    if not present:
        return None
    args = {"RUNTIME_IMAGE": runtime_tag, "CORTEXLITE_WHEELHOUSE": "1" if options.wheelhouse is not None else "0"}
    if options.pip_index_url:
        args["PIP_INDEX_URL"] = options.pip_index_url
    sha = hashlib.sha256(f"recipe {_RECIPE}\ndockerfile {dockerfile_digest}\n".encode())
    for name in sorted(args):
        sha.update(f"arg {name}={args[name]}\n".encode())
    for name in sorted(present):
        sha.update(f"file {name} {hashlib.sha256(present[name]).hexdigest()}\n".encode())
    for wheel in _wheels(options.wheelhouse):
        sha.update(f"wheel {wheel.name} {file_digest(wheel)}\n".encode())
    return DependencyImage(f"{DEPENDENCY_REPOSITORY}:{sha.hexdigest()[:12]}", runtime_tag, present, args)


def dockerfile_digest() -> str:
    with packaged_file("dependencies.Dockerfile") as dockerfile:
        return file_digest(dockerfile)


def ensure_dependency_image(engine: DockerEngine, image: DependencyImage, options: ImageOptions, log: LogSink) -> bool:
    """Build `image` unless the engine has it; True when built now. pip's and the script's output go to `log`."""
    if engine.image_id(image.tag) is not None:
        return False
    log(f"building {image.tag} ({', '.join(sorted(image.files))}) FROM {image.runtime_tag}")
    with (
        tempfile.TemporaryDirectory(prefix="cortexlite-deps-") as scratch,
        packaged_file("dependencies.Dockerfile") as dockerfile,
    ):
        layout: dict[str, Path | bytes] = {"Dockerfile": dockerfile}
        layout |= {f"project/{name}": content for name, content in image.files.items()}
        layout |= {f"project/wheelhouse/{wheel.name}": wheel for wheel in _wheels(options.wheelhouse)}
        context = Path(scratch) / "context.tar"
        tar_context(layout, context)
        labels = {"cortexlite.image": "dependencies", "cortexlite.runtime-image": image.runtime_tag}
        engine.build(context, image.tag, image.build_args, labels=labels, on_log=log, network=options.build_network)
    return True


def _wheels(wheelhouse: Path | None) -> list[Path]:
    if wheelhouse is None:
        return []
    return sorted(path for path in wheelhouse.iterdir() if path.is_file())
