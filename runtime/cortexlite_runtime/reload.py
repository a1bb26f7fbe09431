"""Hot reload (`CORTEXLITE_RELOAD=1`): watch the project, re-import it, swap the predictor in.

A burst of file events (an editor's save is several) is debounced into one `Changes`. Then:

- Python files: every project module is dropped from `sys.modules` and the predictor is imported
  and built again while the old one keeps serving; the new one is swapped in between requests.
  When `__init__`'s code and its inputs (config, model path) are unchanged, the new instance
  takes over the old instance's attributes, so a loaded model stays loaded
  (`CORTEXLITE_RELOAD_INIT=always` runs `__init__` every time).
- Other files (a model, a data file): the same, and `__init__` runs again.
- `requirements.txt`: installed (cached by content) first; when that changes the version of a
  package already imported, the replica restarts (re-executes itself) instead of swapping.
- The spec file: a new `config` or predictor path reloads; serving settings (processes,
  threads, batching, type, env, model path) restart the replica.

Whatever fails (a syntax error, an `__init__` that raises, pip) is logged with its file and line,
and the previous predictor keeps serving.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from loguru import logger

from .dependencies import install_requirements
from .errors import CortexliteError
from .spec import ApiSpec, PredictorSpec
from .specfile import SPEC_FILENAMES, load_api_specs, select_api

__all__ = [
    "Changes",
    "ProjectWatcher",
    "ReloadOutcome",
    "Reloader",
    "classify",
    "ignored",
    "restart_reason",
    "upgraded_packages",
]

# Editors' scratch files: vim's swap files and its write probe "4913", emacs' lock and autosave
# files, backups.
_TEMP_SUFFIXES = (".swp", ".swo", ".swx", ".swpx", ".tmp", ".bak", "~")
_TEMP_NAMES = ("4913",)
_ALWAYS = ("requirements.txt", *SPEC_FILENAMES)
QUIET = 0.05  # seconds without events that end a burst
LONGEST_BURST = 0.5  # a burst never delays a reload longer than this


def ignored(relative: str) -> bool:
    """Whether a change to `relative` (a path inside the project) never triggers a reload."""
    parts = PurePosixPath(relative).parts
    if not parts:
        return True
    if any(part.startswith(".") or part == "__pycache__" for part in parts):
        return True
    name = parts[-1]
    return (
        name in _TEMP_NAMES
        or name.endswith(_TEMP_SUFFIXES)
        or (name.startswith("#") and name.endswith("#"))
        or name.endswith((".pyc", ".pyo"))
    )


@dataclass(frozen=True)
class Changes:
    """What a burst of edits touched, by the kind of reload each needs."""

    code: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    requirements: bool = False
    spec: bool = False

    @property
    def empty(self) -> bool:
        return not (self.code or self.data or self.requirements or self.spec)

    def describe(self) -> str:
        names = [*self.code, *self.data]
        if self.requirements:
            names.append("requirements.txt")
        if self.spec:
            names.append("the spec file")
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return f"{shown} changed"


def classify(paths: Iterable[str]) -> Changes:
    """Sort changed project paths (relative, `/`-separated) into what each needs."""
    code: set[str] = set()
    data: set[str] = set()
    requirements = spec = False
    for path in paths:
        if ignored(path):
            continue
        if path == "requirements.txt":
            requirements = True
        elif path in SPEC_FILENAMES:
            spec = True
        elif path.endswith(".py"):
            code.add(path)
        elif path not in ("dependencies.sh",):
            data.add(path)
    return Changes(tuple(sorted(code)), tuple(sorted(data)), requirements, spec)


def restart_reason(old: PredictorSpec, new: PredictorSpec) -> str | None:
    """Why the predictor section's change needs a new process (None: a reload will do)."""
    for name in ("type", "processes_per_replica", "threads_per_process", "server_side_batching", "env", "model_path"):
        if getattr(old, name) != getattr(new, name):
            return f"predictor.{name} changed"
    if old.python_path != new.python_path:
        return "predictor.python_path changed"
    return None


def upgraded_packages(site_dir: Path, loaded: Callable[[str], bool]) -> list[str]:
    """Packages `site_dir` holds in another version than the one importable now, and `loaded` says imported.

    `loaded(module)` tells whether a top-level module is imported (`sys.modules`); a process that
    cannot know (the front of several predictor processes) passes `lambda _: True`.
    """
    found = []
    for dist in metadata.distributions(path=[str(site_dir)]):
        name = dist.metadata["Name"]
        if not name:
            continue
        try:
            current = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if current.version == dist.version:
            continue
        if any(loaded(module) for module in _top_level(current)):
            found.append(f"{name} {current.version} -> {dist.version}")
    return sorted(found)


def _top_level(dist: metadata.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    names = set()
    for file in dist.files or ():
        parts = PurePosixPath(str(file)).parts
        if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] in ("..", "bin"):
            continue
        names.add(parts[0].removesuffix(".py") if len(parts) == 1 else parts[0])
    return names


class ProjectWatcher:
    """Watches a directory tree; calls `on_burst(relative_paths, first_event_time)` once per burst."""

    def __init__(
        self, root: Path, on_burst: Callable[[set[str], float], None], *, poll: bool = False, extra: Path | None = None
    ) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self.root = root.resolve()
        self._on_burst = on_burst
        self._paths: set[str] = set()
        self._first = 0.0
        self._last = 0.0
        self._wake = threading.Condition()
        self._stopped = False
        watcher = self

        class _Events(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                if event.is_directory and event.event_type == "modified":
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw:
                        watcher._record(os.fsdecode(raw))

        self._observer = PollingObserver(timeout=0.25) if poll else Observer()
        self._observer.schedule(_Events(), str(self.root), recursive=True)
        self._thread = threading.Thread(target=self._debounce, name="reload-debounce", daemon=True)

    def start(self) -> None:
        self._observer.start()
        self._thread.start()

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._observer.stop()

    def _record(self, path: str) -> None:
        try:
            relative = Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return
        if ignored(relative):
            return
        now = time.monotonic()
        with self._wake:
            if not self._paths:
                self._first = now
            self._paths.add(relative)
            self._last = now
            self._wake.notify()

    def _debounce(self) -> None:
        while True:
            with self._wake:
                while not self._paths and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                now = time.monotonic()
                due = min(self._last + QUIET, self._first + LONGEST_BURST)
                if now < due:
                    self._wake.wait(due - now)
                    continue
                paths, first = self._paths, self._first
                self._paths = set()
            # A file gone by now that is not a module was a scratch file (sed's, an editor's save
            # by rename): not a change of the project.
            paths = {p for p in paths if p.endswith(".py") or p in _ALWAYS or (self.root / p).exists()}
            if not paths:
                continue
            # The callback gets the first event's time on the wall clock, for the latency it reports.
            self._on_burst(paths, time.time() - (time.monotonic() - first))


@dataclass
class ReloadOutcome:
    """What one reload did, for the log line (and the dev command, which shows it)."""

    ok: bool
    message: str
    kept_state: bool = False


@dataclass
class _Pending:
    paths: set[str] = field(default_factory=set)
    since: float = 0.0


class Reloader:
    """Runs reloads one at a time on its own thread; bursts arriving meanwhile are merged into the next."""

    def __init__(
        self,
        project_dir: Path,
        api: ApiSpec,
        *,
        swap: Callable[[PredictorSpec, tuple[Path, ...], bool], ReloadOutcome],
        restart: Callable[[str, dict[str, str]], None],
        site_dirs: tuple[Path, ...],
        cache_dir: Path | None,
        sees_imports: bool,
        poll: bool = False,
    ) -> None:
        self.project_dir = project_dir
        self.api = api
        self._swap = swap
        self._restart = restart
        self._site_dirs = site_dirs
        self._cache_dir = cache_dir
        self._sees_imports = sees_imports
        self._pending = _Pending()
        self._wake = threading.Condition()
        self._closed = False
        self._watcher = ProjectWatcher(project_dir, self._burst, poll=poll)
        self._thread = threading.Thread(target=self._run, name="reload", daemon=True)

    def start(self) -> None:
        self._watcher.start()
        self._thread.start()
        logger.info("hot reload on: watching {}", self.project_dir)

    def close(self) -> None:
        self._watcher.close()
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _burst(self, paths: set[str], since: float) -> None:
        with self._wake:
            if not self._pending.paths:
                self._pending.since = since
            self._pending.paths |= paths
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending.paths and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                pending, self._pending = self._pending, _Pending()
            changes = classify(pending.paths)
            if changes.empty:
                continue
            try:
                self._reload(changes, pending.since)
            except Exception as exc:  # a bug of ours must not end hot reload
                logger.opt(exception=exc).error(
                    "reload failed unexpectedly: {!r}; still serving the previous code", exc
                )

    def _reload(self, changes: Changes, since: float) -> None:
        logger.info("reload: {}", changes.describe())
        predictor = self.api.predictor
        site_dirs = self._site_dirs
        rerun_init = bool(changes.data)
        restart_env: dict[str, str] = {}
        if changes.spec:
            new_api = self._read_spec()
            if new_api is None:
                return
            reason = restart_reason(predictor, new_api.predictor)
            if reason is not None:
                self._restart(
                    f"{reason} in the spec file", {"CORTEXLITE_API_NAME": new_api.name, "CORTEX_API_SPEC": ""}
                )
                return
            if new_api.model_dump(exclude={"predictor"}) != self.api.model_dump(exclude={"predictor"}):
                logger.info("spec: only the predictor section applies on reload; `cortexlite deploy` applies the rest")
            restart_env = {"CORTEXLITE_API_NAME": new_api.name, "CORTEX_API_SPEC": ""}
            self.api, predictor = new_api, new_api.predictor
        if changes.requirements:
            installed = self._install()
            if installed is None:
                return
            loaded: Callable[[str], bool] = (lambda m: m in sys.modules) if self._sees_imports else (lambda _m: True)
            upgraded = [found for site in installed for found in upgraded_packages(site, loaded)]
            if upgraded:
                self._restart(
                    f"requirements.txt upgrades {', '.join(upgraded)}, already imported",
                    {**restart_env, "CORTEXLITE_DEPENDENCIES": "install"},
                )
                return
            site_dirs = installed
        outcome = self._swap(predictor, site_dirs, rerun_init)
        seconds = time.time() - since
        if outcome.ok:
            self._site_dirs = site_dirs
            kept = "; kept the predictor's state (__init__ unchanged)" if outcome.kept_state else ""
            logger.info("reloaded in {:.2f}s{}", seconds, kept)
        else:
            logger.error("reload failed: {}; still serving the previous code", outcome.message)

    def _read_spec(self) -> ApiSpec | None:
        for name in SPEC_FILENAMES:
            path = self.project_dir / name
            if path.is_file():
                try:
                    return select_api(load_api_specs(path), self.api.name, path.name)
                except CortexliteError as exc:
                    logger.error("reload failed: {}; still serving the previous code", exc)
                    return None
        logger.error("reload: the spec file is gone; still serving the previous code")
        return None

    def _install(self) -> tuple[Path, ...] | None:
        """The site-packages of the new requirements (none without a requirements.txt); None on failure."""
        try:
            site = install_requirements(self.project_dir, self._cache_dir)
        except CortexliteError as exc:
            logger.error("reload failed: {}; still serving the previous code", exc)
            return None
        return (site,) if site is not None else ()
