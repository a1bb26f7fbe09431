"""One replica's life: find the spec, apply dependencies, start the predictor, report readiness.

The HTTP server is up before any of this runs, so `/healthz` answers at once and `/readyz`
explains what the replica is doing or why it failed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from loguru import logger

from .batching import Batcher
from .config import RuntimeConfig
from .dependencies import apply_dotenv, install_requirements, run_dependencies_sh
from .errors import CortexliteError, PredictorError, SpecError
from .executor import Scheduler, ThreadWorker
from .gpu import GpuMonitor, gpu_gauges, visible_gpus
from .handler import Handler
from .inline import InlinePolicy
from .loader import LoadPlan, build_handler, describe_handler, reload_predictor
from .metrics import Metrics
from .reload import Reloader, ReloadOutcome
from .spec import ApiSpec, PredictorSpec
from .specfile import find_spec_file, load_api_specs, load_resolved_spec, select_api

__all__ = ["Phase", "Replica", "Settings", "resolve_api"]


class Phase(StrEnum):
    STARTING = "starting"
    FETCHING = "fetching the project"
    DOWNLOADING = "downloading the model"
    INSTALLING = "installing dependencies"
    LOADING = "loading predictor"
    READY = "ready"
    FAILED = "failed"
    SHUTTING_DOWN = "shutting down"


@dataclass(frozen=True)
class Settings:
    """The serving settings once environment and spec are combined."""

    processes: int
    threads: int
    max_concurrency: int


@dataclass
class Replica:
    config: RuntimeConfig
    phase: Phase = Phase.STARTING
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    api: ApiSpec | None = None
    settings: Settings | None = None
    info: dict[str, Any] = field(default_factory=dict)
    scheduler: Scheduler | None = None
    batcher: Batcher | None = None
    in_flight: int = 0
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(lambda: self.in_flight, self._queued)
        self._gpus: GpuMonitor | None = None
        self._handler: Handler | None = None  # the in-process predictor (processes_per_replica: 1)
        self._plan: LoadPlan | None = None
        self._reloader: Reloader | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    def _queued(self) -> int:
        return self.in_flight - (self.scheduler.active_requests if self.scheduler else 0)

    async def boot(self) -> None:
        """Run the start-up sequence; failures end in `Phase.FAILED` with a reason, never an exception."""
        try:
            await self._boot()
        except CortexliteError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug of ours: still report it rather than hang "starting"
            logger.opt(exception=exc).error("unexpected error during start-up")
            self._fail(f"internal error during start-up: {exc!r}")

    def begin_shutdown(self) -> None:
        self.phase = Phase.SHUTTING_DOWN

    def abandon_loading(self) -> NoReturn:
        """Exit at once while the predictor loads (a stop during start-up), its processes closed."""
        logger.info("stopped while the predictor was loading")
        self.close()
        logger.complete()
        os._exit(0)

    def close(self) -> None:
        if self._reloader is not None:
            self._reloader.close()
        if self.scheduler is not None:
            self.scheduler.close(timeout=10)
        if self._gpus is not None:
            self._gpus.close()

    async def _boot(self) -> None:
        config = self.config
        if config.project_uri:
            from .bundle import fetch_project

            self.phase = Phase.FETCHING
            await asyncio.to_thread(fetch_project, config.project_uri, config.project_dir, config.cache_dir)
        if not config.project_dir.is_dir():
            raise SpecError(f"project directory {config.project_dir} does not exist (CORTEX_PROJECT_DIR)")
        if config.cortex_version:
            logger.info(
                "CORTEX_VERSION={} (accepted; cortexlite serves any Cortex version's predictors)", config.cortex_version
            )
        api = await asyncio.to_thread(resolve_api, config)
        self.api = api
        self.settings = _settings(config, api)
        logger.info(
            "API {}: {} predictor {}, {} process(es) x {} thread(s), max {} concurrent requests",
            api.name, api.predictor.type.value, api.predictor.path,
            self.settings.processes, self.settings.threads, self.settings.max_concurrency,
        )  # fmt: skip
        self.phase = Phase.INSTALLING
        site_dir = await asyncio.to_thread(self._install, api.predictor)
        model_path = await self._model_path(api.predictor)
        self.phase = Phase.LOADING
        plan = LoadPlan(
            project_dir=config.project_dir.resolve(),
            predictor=api.predictor,
            model_path=model_path,
            site_dirs=(site_dir,) if site_dir else (),
            log_format=config.log_format,
            log_level=config.log_level,
            log_context={"api": api.name, **({"replica": config.replica_id} if config.replica_id else {})},
            reload=config.reload,
            reload_init=config.reload_init,
        )
        self._watch_gpus()
        await self._start_predictor(plan)
        self._plan = plan
        if config.reload and self.phase is Phase.READY:
            self._start_reloader(api, plan)

    async def _model_path(self, predictor: PredictorSpec) -> Path | None:
        """The model's local path: in the project, or fetched from storage through the node's cache."""
        if predictor.model_path is None:
            return None
        if "://" not in predictor.model_path:
            return (self.config.project_dir / predictor.model_path).resolve()
        from .models import fetch_model
        from .storage import is_remote_url

        if not is_remote_url(predictor.model_path):
            raise PredictorError(
                f"predictor.model_path {predictor.model_path}: expected s3://, oss:// or a project path"
            )
        self.phase = Phase.DOWNLOADING
        fetched = await asyncio.to_thread(
            fetch_model, predictor.model_path, self.config.cache_dir, self.config.model_dir
        )
        return fetched.path

    def _watch_gpus(self) -> None:
        """GPU gauges in /metrics for the GPUs this replica sees, when there are any."""
        monitor = GpuMonitor()
        if not monitor.available:
            return
        self._gpus = monitor
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.metrics.extra_gauges = lambda: gpu_gauges(visible_gpus(monitor.sample(), visible))

    def _install(self, predictor: PredictorSpec) -> Path | None:
        project = self.config.project_dir
        applied = apply_dotenv(project)
        if applied:
            logger.info(".env applied: {}", ", ".join(applied))
        for key, value in predictor.env.items():
            os.environ[key] = value
        if self.config.dependencies_preinstalled:
            # The backend installed requirements.txt into this interpreter and handled dependencies.sh.
            logger.info("dependencies are preinstalled (CORTEXLITE_DEPENDENCIES=preinstalled)")
            return None
        note = run_dependencies_sh(project)
        if note:
            self.notes.append(note)
        return install_requirements(project, self.config.cache_dir)

    async def _start_predictor(self, plan: LoadPlan) -> None:
        assert self.settings is not None
        loop = asyncio.get_running_loop()
        scheduler = Scheduler(loop)
        if self.settings.processes == 1:
            handler = await asyncio.to_thread(build_handler, plan)
            self._handler = handler
            self.info = describe_handler(handler)
            inline = None
            if self.settings.threads == 1 and plan.predictor.server_side_batching is None:
                inline = InlinePolicy(self.config.inline_predict_limit)
            scheduler.workers.append(ThreadWorker(scheduler, handler, self.settings.threads, inline))
        else:
            await self._start_processes(scheduler, plan)
        batching = plan.predictor.server_side_batching
        if batching is not None:
            self.batcher = Batcher(scheduler, batching.max_batch_size, batching.batch_interval, self.metrics.batch_size)
        self.scheduler = scheduler
        if self.phase is Phase.LOADING:
            self.phase = Phase.READY
            logger.info("ready")

    async def _start_processes(self, scheduler: Scheduler, plan: LoadPlan) -> None:
        from .workers import ProcessWorker

        assert self.settings is not None
        processes, threads = self.settings.processes, self.settings.threads
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        started: set[int] = set()

        def on_ready(worker: ProcessWorker, info: dict[str, Any]) -> None:
            started.add(worker.index)
            self.info = info
            if len(started) == processes and not ready.done():
                ready.set_result(None)

        def on_failed(worker: ProcessWorker, message: str) -> None:
            if not ready.done():
                ready.set_exception(PredictorError(message))
            else:
                self._fail(f"predictor process {worker.index}: {message}")

        for index in range(processes):
            worker = ProcessWorker(
                scheduler, plan, threads=threads, index=index, on_ready=on_ready, on_failed=on_failed
            )
            scheduler.workers.append(worker)
        self.scheduler = scheduler
        await ready

    def _start_reloader(self, api: ApiSpec, plan: LoadPlan) -> None:
        assert self.settings is not None
        self._reloader = Reloader(
            plan.project_dir,
            api,
            swap=self._swap,
            restart=self._restart,
            site_dirs=plan.site_dirs,
            cache_dir=self.config.cache_dir,
            sees_imports=self.settings.processes == 1,
            poll=self.config.reload_poll,
        )
        self._reloader.start()

    def _swap(self, predictor: PredictorSpec, site_dirs: tuple[Path, ...], rerun_init: bool) -> ReloadOutcome:
        """Build the predictor from the project's current code and serve it (on the reload thread)."""
        assert self._plan is not None and self.scheduler is not None
        plan = replace(self._plan, predictor=predictor, site_dirs=site_dirs)
        if self._handler is not None:
            try:
                loaded = reload_predictor(plan, self._handler.predictor, rerun_init=rerun_init)
            except CortexliteError as exc:
                return ReloadOutcome(False, str(exc))
            self._handler.replace(loaded)
            self._plan = plan
            self.info = describe_handler(self._handler)
            return ReloadOutcome(True, "", loaded.kept_state)
        from .workers import ProcessWorker

        answers: list[Future[tuple[bool, str, bool]]] = []
        for worker in self.scheduler.workers:
            assert isinstance(worker, ProcessWorker)
            answer: Future[tuple[bool, str, bool]] = Future()
            answers.append(answer)
            self.scheduler.loop.call_soon_threadsafe(worker.reload, plan, rerun_init, answer)
        results = [answer.result() for answer in answers]
        failed = [f"predictor process {i}: {error}" for i, (ok, error, _) in enumerate(results) if not ok]
        self._plan = plan
        if failed:
            return ReloadOutcome(False, "; ".join(failed))
        return ReloadOutcome(True, "", all(kept for _, _, kept in results))

    def _restart(self, reason: str, env: dict[str, str]) -> None:
        """Re-execute this process (same arguments, `env` applied; "" removes a variable): a clean start."""
        logger.warning("restarting the replica: {}", reason)
        self.phase = Phase.STARTING
        self.close()
        environ = dict(os.environ)
        for key, value in env.items():
            if value:
                environ[key] = value
            else:
                environ.pop(key, None)
        logger.complete()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)

    def _fail(self, message: str) -> None:
        self.phase = Phase.FAILED
        self.error = message
        logger.error("not ready: {}", message)


def resolve_api(config: RuntimeConfig) -> ApiSpec:
    """`CORTEX_API_SPEC`, else the project's cortexlite.yaml/cortex.yaml, else `predictor.py`."""
    if config.api_spec is not None:
        return load_resolved_spec(config.api_spec).api
    spec_file = find_spec_file(config.project_dir)
    if spec_file is not None:
        return select_api(load_api_specs(spec_file), config.api_name, spec_file.name)
    if (config.project_dir / "predictor.py").is_file():
        return ApiSpec(name=config.api_name or "api")
    raise SpecError(f"nothing to serve in {config.project_dir}: expected cortexlite.yaml, cortex.yaml or predictor.py")


def _settings(config: RuntimeConfig, api: ApiSpec) -> Settings:
    processes = config.processes or api.predictor.processes_per_replica
    threads = config.threads or api.predictor.threads_per_process
    spec_cap = (
        api.autoscaling.max_replica_concurrency
        if "max_replica_concurrency" in api.autoscaling.model_fields_set
        else None
    )
    return Settings(processes, threads, config.resolve_concurrency_cap(processes, spec_cap))
