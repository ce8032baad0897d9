"""The server's long-lived state: the engine once it has loaded, the catalog, adapters and metrics.

It holds; `server.api.models` decides (which model a request names, which defaults apply).
Handlers receive it through dependency injection. While the engine loads, generation routes get a
503 with Retry-After (a retry is the right response then), and everything else keeps answering.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from litestar.datastructures import State

from adapters.base import EMBEDDED, EMBEDDED_ID
from data.card import Sampling
from server.catalog import Catalog
from server.errors import ModelLoadingError
from server.guard import Guards
from server.metrics import ServerMetrics
from server.response_store import ResponseStore
from server.runner import Runner
from server.settings import ServerSettings

if TYPE_CHECKING:
    from server.engine.engine import Engine
    from server.hotswap.service import AdapterService
    from server.jobs.evals import EvalService
    from server.jobs.files import FileStore
    from server.jobs.fine_tuning import JobService

RETRY_AFTER_SECONDS = 5


class ServerState(State):
    """Everything handlers share, filled in as the engine finishes loading.

    It is the app's `State`: handlers that declare `state: ServerState` get a live view of it.
    Attributes live in the state mapping, so nothing here may have a class-level default.
    """

    settings: ServerSettings
    catalog: Catalog
    metrics: ServerMetrics
    engine: Engine | None
    """Set once the base model has loaded and the engine thread runs."""
    adapters: AdapterService | None
    """The hot-reload service; None serves personas on the base weights only."""
    runner: Runner | None
    base_layer: Sampling
    """The base model's generation_config defaults."""
    load_error: str | None
    """Why the engine failed to load, if it did."""
    started: float
    """When this server started; the `created` time of its models."""
    responses: ResponseStore
    """Stored Responses API responses, in the home folder."""
    files: FileStore
    """Uploaded files (`/v1/files`)."""
    jobs: JobService | None
    """Fine-tuning jobs; set once the app has started."""
    evals: EvalService | None
    """Evaluation runs; set once the app has started."""
    guards: Guards
    """Persona guards, loaded on demand from the registry and the shipped samples."""

    @classmethod
    def create(
        cls,
        settings: ServerSettings,
        catalog: Catalog,
        metrics: ServerMetrics,
        files: FileStore | None = None,
    ) -> ServerState:
        """A state with no engine yet; uploads go to the home folder's `files` by default."""
        from data.home import home_dir
        from server.jobs.files import FileStore

        return cls(
            {
                "files": files or FileStore(home_dir() / "files"),
                "jobs": None,
                "evals": None,
                "settings": settings,
                "catalog": catalog,
                "metrics": metrics,
                "engine": None,
                "adapters": None,
                "runner": None,
                "base_layer": Sampling(),
                "load_error": None,
                "started": time.time(),
                "guards": Guards(
                    settings.adapters_path(),
                    metrics,
                    enabled=settings.guard,
                    log_text=settings.guard_log_text,
                ),
                "responses": ResponseStore.in_home(
                    settings.responses_max_stored, settings.responses_max_age_days
                ),
            }
        )

    def ready(self, engine: Engine, adapters: AdapterService | None, base_layer: Sampling) -> None:
        """Start serving generation with this engine."""
        self.adapters = adapters
        self.base_layer = base_layer
        self.runner = Runner(engine, self.metrics)
        self.engine = engine

    def require_runner(self) -> tuple[Engine, Runner]:
        """The engine and runner, or a 503 while the model is still loading."""
        if self.engine is None or self.runner is None:
            if self.load_error is not None:
                raise ModelLoadingError(self.load_error, code="model_load_failed")
            raise ModelLoadingError(
                "the model is still loading; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return self.engine, self.runner

    def base_id(self) -> str:
        """The base model's id: the engine's once loaded, else derived from the settings."""
        if self.engine is not None:
            return self.engine.model_id
        model = self.settings.model
        if model in (EMBEDDED, EMBEDDED_ID):
            return EMBEDDED_ID
        path = Path(model).expanduser()
        return path.name if path.is_dir() else model

    def base_ids(self) -> list[str]:
        """Names of the base model: its id and the name it was configured by."""
        return [self.base_id(), self.settings.model]

    def lora_names(self) -> list[str]:
        """Model ids registered through load_lora_adapter (not personas, not pinned forms)."""
        if self.adapters is None:
            return []
        return [i for i in self.adapters.model_ids() if "@" not in i]

    def active_version(self, persona: str) -> str | None:
        """The adapter version a bare persona id runs with now."""
        return self.adapters.active_version(persona) if self.adapters is not None else None
