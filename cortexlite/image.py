"""Building the runtime image: `cortexlite/runtime:<hash12>`, content-addressed.

The tag hashes everything the image is made of: the runtime's files, the Dockerfile, the base
image's id and the build options. So an image with that tag is reused as is, and a changed input
(a source edit, a re-pulled base, another CA) always gives a new tag: a stale image is never reused.
Only versions that an index resolves at build time are outside the hash.

The image installs only `cortexlite-runtime[onnx,gpu]`: its wheel is made on the host (see
`runtime_wheel`), its dependencies come from the index or the wheelhouse, in a layer of their own
so that a runtime source change rebuilds in seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from cortexlite.backends.docker import DockerEngine, LogSink
from cortexlite.errors import ConfigError, DockerError, ImageBuildError
from cortexlite.files import atomic_write, read_json
from cortexlite.processes import run_streaming
from cortexlite.runtime_wheel import RuntimeSource, build_wheel, file_digest, find_runtime_source, wheel_requirements

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "EXTRAS",
    "LOCAL_BASE_IMAGE",
    "RUNTIME_REPOSITORY",
    "ImageOptions",
    "ImageRef",
    "build_args",
    "build_runtime_image",
    "context_layout",
    "load_options",
    "make_base_image",
    "packaged_file",
    "planned_runtime_tag",
    "resolve_base",
    "runtime_image_tag",
    "save_options",
    "tag_inputs",
    "tar_context",
]

DEFAULT_BASE_IMAGE = "python:3.11-slim"
LOCAL_BASE_IMAGE = "cortexlite/base:bookworm"
RUNTIME_REPOSITORY = "cortexlite/runtime"
EXTRAS = ("onnx", "gpu")  # gpu: nvidia-ml-py, for GPU gauges and `cortexlite gpus` on remote hosts
# Bump when the way an image is made changes outside the hashed files (this module's logic).
_RECIPE = "1"


@dataclass(frozen=True)
class ImageOptions:
    """How to build; `base_image=None` means python:3.11-slim when pullable, else the local base."""

    base_image: str | None = None
    pip_index_url: str | None = None
    ca_cert: Path | None = None
    wheelhouse: Path | None = None
    # The network build steps run on: None is the engine's default bridge; "host" reaches what the
    # Docker host reaches (an index or proxy on its loopback, a host whose engine has no bridge).
    build_network: str | None = None
    docker_host: str | None = None
    pull_timeout: float = 120.0
    # Deploys build what is missing without trying a registry first: whichever base the engine has wins.
    prefer_local: bool = False

    def with_engine(self, docker_host: str | None) -> ImageOptions:
        return replace(self, docker_host=docker_host, prefer_local=True)


def save_options(path: Path, options: ImageOptions) -> None:
    """Record how `image build` was told to build, so that deploys build missing images the same way."""
    data = {
        "base_image": options.base_image,
        "pip_index_url": options.pip_index_url,
        "ca_cert": str(options.ca_cert.resolve()) if options.ca_cert is not None else None,
        "wheelhouse": str(options.wheelhouse.resolve()) if options.wheelhouse is not None else None,
        "build_network": options.build_network,
    }
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def load_options(path: Path) -> ImageOptions:
    """The options `image build` recorded (defaults when it never ran)."""
    data = read_json(path)
    if not isinstance(data, dict):
        return ImageOptions()
    ca_cert, wheelhouse = data.get("ca_cert"), data.get("wheelhouse")
    return ImageOptions(
        base_image=data.get("base_image") or None,
        pip_index_url=data.get("pip_index_url") or None,
        ca_cert=Path(ca_cert) if ca_cert else None,
        wheelhouse=Path(wheelhouse) if wheelhouse else None,
        build_network=data.get("build_network") or None,
    )


@dataclass(frozen=True)
class ImageRef:
    tag: str
    image_id: str
    base_image: str
    base_image_id: str
    built: bool  # False: an image with this content hash existed and was reused


def build_runtime_image(
    options: ImageOptions, on_log: LogSink | None = None, engine: DockerEngine | None = None
) -> ImageRef:
    """Build (or reuse) the runtime image for `options`; return its content-addressed tag."""
    if engine is None:
        with DockerEngine.from_env(options.docker_host) as own:
            own.ping()
            return build_runtime_image(options, on_log, own)
    log = on_log or _ignore
    _check_options(options)
    source = find_runtime_source()
    with packaged_file("Dockerfile") as dockerfile:
        base, base_id = resolve_base(engine, options, log)
        args = build_args(base, options)
        tag = _tag(source, dockerfile, base_id, args, options)
        existing = engine.image_id(tag)
        if existing is not None:
            log(f"{tag} is up to date (base {base})")
            return ImageRef(tag, existing, base, base_id, built=False)
        log(f"building {tag} from {base}")
        with tempfile.TemporaryDirectory(prefix="cortexlite-image-") as scratch:
            context = _write_context(Path(scratch), source, dockerfile, options)
            labels = {"cortexlite.image": "runtime", "cortexlite.base-image": base}
            image_id = engine.build(context, tag, args, labels=labels, on_log=log, network=options.build_network)
    return ImageRef(tag, image_id, base, base_id, built=True)


def planned_runtime_tag(engine: DockerEngine, options: ImageOptions) -> str | None:
    """The tag `build_runtime_image` would give, without building or pulling (None: no base image yet)."""
    _check_options(options)
    candidates = [options.base_image] if options.base_image else [DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE]
    for base in candidates:
        base_id = engine.image_id(base)
        if base_id is not None:
            with packaged_file("Dockerfile") as dockerfile:
                return _tag(find_runtime_source(), dockerfile, base_id, build_args(base, options), options)
    return None


def _tag(source: RuntimeSource, dockerfile: Path, base_id: str, args: dict[str, str], options: ImageOptions) -> str:
    return runtime_image_tag(
        tag_inputs(source.digests(), file_digest(dockerfile), base_id, args, _option_digests(options))
    )


# --- pure decisions -------------------------------------------------------------------------------


def build_args(base_image: str, options: ImageOptions) -> dict[str, str]:
    """The Dockerfile's build arguments (see its header)."""
    args = {
        "BASE_IMAGE": base_image,
        "CORTEXLITE_CA": "ca" if options.ca_cert is not None else "no-ca",
        "CORTEXLITE_WHEELHOUSE": "1" if options.wheelhouse is not None else "0",
    }
    if options.pip_index_url:
        args["PIP_INDEX_URL"] = options.pip_index_url
    return args


def tag_inputs(
    runtime_files: Mapping[str, str],
    dockerfile_digest: str,
    base_image_id: str,
    args: Mapping[str, str],
    option_files: Mapping[str, str],
) -> dict[str, str]:
    """Named digests the tag hashes. The base counts by id: one image under two names is one input."""
    inputs = {f"runtime/{name}": digest for name, digest in runtime_files.items()}
    inputs |= {f"arg/{name}": value for name, value in args.items() if name != "BASE_IMAGE"}
    inputs |= {f"option/{name}": digest for name, digest in option_files.items()}
    return inputs | {"recipe": _RECIPE, "dockerfile": dockerfile_digest, "base-image-id": base_image_id}


def runtime_image_tag(inputs: Mapping[str, str]) -> str:
    """`cortexlite/runtime:<12 hex>` over the sorted (name, digest) pairs."""
    sha = hashlib.sha256()
    for name in sorted(inputs):
        sha.update(f"{name}\0{inputs[name]}\n".encode())
    return f"{RUNTIME_REPOSITORY}:{sha.hexdigest()[:12]}"


def context_layout(
    dockerfile: Path, wheel: Path, requirements: Sequence[str], ca_cert: Path | None, wheelhouse: Sequence[Path]
) -> dict[str, Path | bytes]:
    """Build-context path -> a host file or the bytes to write (see the Dockerfile's header)."""
    layout: dict[str, Path | bytes] = {
        "Dockerfile": dockerfile,
        "cortexlite/deps/requirements.txt": "".join(f"{line}\n" for line in requirements).encode(),
        # Always present, so the Dockerfile needs no conditional COPY: empty means "no CA".
        "cortexlite/deps/ca.crt": ca_cert if ca_cert is not None else b"",
        f"cortexlite/wheels/{wheel.name}": wheel,
    }
    return layout | {f"cortexlite/deps/wheelhouse/{path.name}": path for path in wheelhouse}


# --- base images ----------------------------------------------------------------------------------


def resolve_base(engine: DockerEngine, options: ImageOptions, log: LogSink) -> tuple[str, str]:
    """The base image to build on and its id: the given one, else python:3.11-slim, else the local base."""
    if options.base_image is not None:
        return options.base_image, _ensure_image(engine, options.base_image, options, log)
    if options.prefer_local:
        for candidate in (DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE):
            found = engine.image_id(candidate)
            if found is not None:
                return candidate, found
    if engine.try_pull(DEFAULT_BASE_IMAGE, options.pull_timeout):
        return DEFAULT_BASE_IMAGE, _require_id(engine, DEFAULT_BASE_IMAGE)
    cached = engine.image_id(DEFAULT_BASE_IMAGE)
    if cached is not None:
        log(f"{DEFAULT_BASE_IMAGE} cannot be pulled; using the copy the engine has")
        return DEFAULT_BASE_IMAGE, cached
    log(f"{DEFAULT_BASE_IMAGE} cannot be pulled; using the registry-less base {LOCAL_BASE_IMAGE}")
    return LOCAL_BASE_IMAGE, _ensure_image(engine, LOCAL_BASE_IMAGE, options, log)


def _ensure_image(engine: DockerEngine, ref: str, options: ImageOptions, log: LogSink) -> str:
    """The id of `ref`: present, pulled, or (for the registry-less base) made from the Debian mirror."""
    found = engine.image_id(ref)
    if found is not None:
        return found
    if copy_from_this_machine(engine, ref, log):
        return _require_id(engine, ref)
    if ref == LOCAL_BASE_IMAGE:
        make_base_image(ref, options.docker_host, log)
    else:
        try:
            engine.pull(ref, options.pull_timeout)
        except DockerError as exc:
            raise ImageBuildError(f"base image {ref} is not on the Docker engine and cannot be pulled: {exc}") from exc
    return _require_id(engine, ref)


def copy_from_this_machine(engine: DockerEngine, ref: str, log: LogSink) -> bool:
    """Copy `ref` from this machine's engine to a remote `engine` (save -> load, streamed); whether it did.

    How a GPU server without a registry gets the base image a laptop already has.
    """
    if engine.address.startswith(("unix://", "npipe://")):
        return False
    try:
        with DockerEngine.from_env() as local:
            if local.address == engine.address or local.image_id(ref) is None:
                return False
            log(f"copying {ref} from the engine at {local.address} to {engine.address}")
            engine.load_image(local.export_image(ref))
    except DockerError as exc:
        log(f"could not copy {ref} from this machine's engine: {exc}")
        return False
    return engine.image_id(ref) is not None


def _require_id(engine: DockerEngine, ref: str) -> str:
    found = engine.image_id(ref)
    if found is None:
        raise ImageBuildError(f"image {ref} vanished from the Docker engine during the build")
    return found


def make_base_image(tag: str, docker_host: str | None = None, on_log: LogSink | None = None) -> None:
    """Run the packaged make-base-image.sh (debootstrap -> docker import); needs root and a Debian mirror."""
    arguments = ["--tag", tag] + (["--docker-host", docker_host] if docker_host else [])
    with packaged_file("make-base-image.sh") as script:
        run_streaming(
            ["bash", str(script), *arguments], f"making the base image {tag}", on_log or _ignore, ImageBuildError
        )


# --- the build context ----------------------------------------------------------------------------


def _check_options(options: ImageOptions) -> None:
    if options.ca_cert is not None and not options.ca_cert.is_file():
        raise ConfigError(f"CA bundle {options.ca_cert}: no such file")
    if options.wheelhouse is not None and not options.wheelhouse.is_dir():
        raise ConfigError(f"wheelhouse {options.wheelhouse}: no such directory")
    if options.wheelhouse is not None and options.pip_index_url:
        raise ConfigError("a wheelhouse installs with --no-index: give a wheelhouse or a pip index URL, not both")


def _option_digests(options: ImageOptions) -> dict[str, str]:
    digests = {"ca.crt": file_digest(options.ca_cert)} if options.ca_cert is not None else {}
    return digests | {f"wheelhouse/{path.name}": file_digest(path) for path in _wheelhouse_files(options.wheelhouse)}


def _wheelhouse_files(wheelhouse: Path | None) -> list[Path]:
    if wheelhouse is None:
        return []
    return sorted(path for path in wheelhouse.iterdir() if path.is_file())


def _write_context(work: Path, source: RuntimeSource, dockerfile: Path, options: ImageOptions) -> Path:
    """The build context as an uncompressed tar in `work`."""
    wheel = build_wheel(
        source, work / "wheels", index_url=options.pip_index_url, find_links=options.wheelhouse, cert=options.ca_cert
    )
    requirements = wheel_requirements(wheel, EXTRAS)
    layout = context_layout(dockerfile, wheel, requirements, options.ca_cert, _wheelhouse_files(options.wheelhouse))
    context = work / "context.tar"
    tar_context(layout, context)
    return context


def tar_context(layout: Mapping[str, Path | bytes], target: Path) -> None:
    with tarfile.open(target, "w") as tar:
        for name, content in layout.items():
            if isinstance(content, Path):
                tar.add(content, arcname=name, recursive=False, filter=_fixed_metadata)
            else:
                info = _fixed_metadata(tarfile.TarInfo(name))
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


def _fixed_metadata(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Same content, same tar entry: the classic builder's COPY cache then holds across builds.
    info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = 0, 0o644, 0, 0, "", ""
    return info


def packaged_file(name: str) -> AbstractContextManager[Path]:
    # Package data, so an installed cortexlite-runtime wheel carries the Dockerfile and the base script.
    return resources.as_file(resources.files("cortexlite_runtime") / "docker" / name)


def _ignore(_line: str) -> None:
    return None
