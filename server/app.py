"""The Litestar app factory: OpenAI routes, persona and adapter admin routes, one error handler.

`create_app(settings)` loads the base model in the background after the server starts
listening, so `/health` answers 503 with Retry-After until it is ready. Tests and embedders pass
an engine (and optionally an adapter service) they own and close themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from adapters.registry import Registry
from server.api.routes.adapters import adapter_routes
from server.api.routes.chat import chat_completions
from server.api.routes.completions import completions
from server.api.routes.drafts import draft_routes
from server.api.routes.evals import checkpoint_evaluator, eval_routes
from server.api.routes.files import file_routes
from server.api.routes.fine_tuning import fine_tuning_routes, jobs_root
from server.api.routes.health import health, metrics, openapi_json
from server.api.routes.models import model, models
from server.api.routes.moderations import moderations
from server.api.routes.persona_create import persona_create_routes
from server.api.routes.personas import persona, personas
from server.api.routes.records import record_routes
from server.api.routes.responses import responses_routes
from server.api.routes.suite import suite_routes
from server.api.routes.web import is_public, web_routes
from server.body_depth import refuse_deep_json
from server.catalog import Catalog, generation_config_layer
from server.errors import AuthError, handle_exception
from server.local_policy import LocalPolicy
from server.metrics import ServerMetrics
from server.settings import ServerSettings
from server.state import ServerState

if TYPE_CHECKING:
    from server.engine.engine import Engine
    from server.hotswap.service import AdapterService

log = logging.getLogger("persona.server")

OPEN_PATHS = frozenset({"/health"})
"""Routes that answer without an API key."""


def create_app(
    settings: ServerSettings,
    engine: Engine | None = None,
    adapters: AdapterService | None = None,
    *,
    catalog: Catalog | None = None,
) -> Litestar:
    """Build the server; with no `engine` it loads `settings.model` itself once listening."""
    found = catalog or Catalog.discover(settings.persona_paths())
    holder: dict[str, Any] = {}
    server_metrics = ServerMetrics(
        settings.max_adapters,
        lambda: holder["engine"].stats() if holder.get("engine") is not None else None,
    )
    state = ServerState.create(settings, found, server_metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned: list[Any] = []
        await _start_jobs(state, app, owned)
        owned.append(_watch_personas(state))
        if engine is not None:
            await _attach(state, engine, adapters, owned)
            holder["engine"] = engine
            task = None
        else:
            task = asyncio.create_task(_load(state, owned, holder), name="engine-load")
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for closeable in reversed(owned):
                with contextlib.suppress(Exception):
                    await closeable.aclose()

    guards = [_api_key_guard(settings.api_key)] if settings.api_key else []
    locked = settings.web == "locked"
    policy = LocalPolicy(bool(settings.api_key), settings.allowed_hosts, settings.cors_origins)
    cors = (
        CORSConfig(allow_origins=list(settings.cors_origins), allow_credentials=False)
        if settings.cors_origins
        else None
    )
    return Litestar(
        route_handlers=[*_api_routes(settings), *web_routes(settings.web)],
        state=state,
        guards=guards,
        middleware=[policy.middleware, server_metrics.middleware],
        cors_config=cors,
        exception_handlers={Exception: handle_exception},
        before_request=refuse_deep_json,
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        # A locked server answers only what its chat pages need: no schema, no docs.
        openapi_config=None
        if locked
        else OpenAPIConfig(
            title="persona studio",
            version="1.0",
            description="OpenAI-compatible API serving a base model and its personas.",
            path="/docs",
            # Only the schema: every docs UI Litestar offers loads its scripts from a CDN, which
            # a local, offline server must not make a browser fetch.
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )


def _api_routes(settings: ServerSettings) -> list[Any]:
    """Every API route; with `web = "locked"` only chat, personas, models and health."""
    if settings.web == "locked":
        return [chat_completions, models, model, health, personas, persona]
    return [
        chat_completions,
        completions,
        moderations,
        models,
        model,
        health,
        metrics,
        openapi_json,
        personas,
        persona,
        *persona_create_routes(),
        *adapter_routes(),
        *responses_routes(),
        *draft_routes(),
        *record_routes(),
        *suite_routes(),
        *file_routes(settings),
        *fine_tuning_routes(),
        *eval_routes(),
    ]


def _watch_personas(state: ServerState) -> Any:
    """Serve personas created, edited or removed while running; announce each change."""
    from server.api.persona_watch import PersonaWatcher
    from server.hotswap.types import AdapterEvent

    def publish(event: AdapterEvent) -> None:
        if state.adapters is not None:
            state.adapters.hub.publish(event)

    return PersonaWatcher(state.catalog, publish)


async def _start_jobs(state: ServerState, app: Litestar, owned: list[Any]) -> None:
    """Start the fine-tuning and evaluation services (their records survive restarts)."""
    from data.home import home_dir
    from server.jobs.evals import EvalService
    from server.jobs.fine_tuning import JobService, TrainerSetup

    settings = state.settings

    def tokenizer() -> Any:
        return state.engine.tokenizer if state.engine is not None else None

    async def refresh(persona: str) -> None:
        if state.adapters is not None:
            await state.adapters.refresh(persona)

    def client() -> Any:
        return asgi_openai(app, settings.api_key or "not-needed")

    setup = TrainerSetup(adapters=str(settings.adapters_path()))
    jobs = JobService(
        jobs_root(),
        setup,
        state.files,
        tokenizer=tokenizer,
        refresh=refresh,
        on_checkpoint=checkpoint_evaluator(state),
    )
    evals = EvalService(home_dir() / "evals", client, Registry(settings.adapters_path()))
    await jobs.start()
    await evals.start()
    state.jobs, state.evals = jobs, evals
    owned += [evals, jobs]


async def _attach(
    state: ServerState, engine: Engine, adapters: AdapterService | None, owned: list[Any]
) -> None:
    """Make `engine` serve: start an adapter service if none was given, read base defaults."""
    if adapters is None:
        from server.hotswap.service import AdapterService

        catalog = state.catalog
        adapters = AdapterService(
            Registry(state.settings.adapters_path()),
            engine,
            lambda: [p.name for p in catalog.personas()],
        )
        await adapters.start()
        owned.append(adapters)
    model_dir = await asyncio.to_thread(_model_dir, engine, state.settings.model)
    state.ready(engine, adapters, generation_config_layer(model_dir))


async def _load(state: ServerState, owned: list[Any], holder: dict[str, Any]) -> None:
    """Load the base model off the event loop, then start serving with it."""
    settings = state.settings
    try:
        from server.engine.engine import Engine

        engine = await asyncio.to_thread(
            Engine.load,
            settings.model,
            max_batch=settings.max_batch,
            max_adapters=settings.max_adapters,
            prefix_cache_bytes=settings.prefix_cache_bytes,
            lookup_draft=settings.lookup_draft,
            gemv_head=settings.gemv_head,
        )
        engine.start()
        owned.append(engine)
        holder["engine"] = engine
        await _attach(state, engine, None, owned)
        log.info("serving %s", engine.model_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("the model %s failed to load", settings.model)
        state.load_error = f"the model {settings.model!r} failed to load: {exc}"


def _model_dir(engine: Engine, model: str) -> Path | None:
    path = getattr(engine, "model_path", None)
    if path is not None:
        return Path(path)
    from adapters.base import resolve_model

    resolved = resolve_model(model)
    return resolved if isinstance(resolved, Path) else None


def _api_key_guard(api_key: str) -> Any:
    expected = api_key.encode()

    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if connection.scope["path"] in OPEN_PATHS or is_public(handler):
            return
        scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        if not hmac.compare_digest(token.strip().encode(), expected):
            raise AuthError("Incorrect API key provided.")

    return guard


def asgi_openai(app: Litestar, api_key: str, timeout: float = 600.0) -> Any:
    """An `openai.AsyncOpenAI` that calls `app` in process (no socket), with no retries.

    The transport comes from httpx2, the HTTP library the `openai` SDK itself is built on; the
    SDK refuses a client of any other library.
    """
    import httpx2
    import openai

    http = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://localhost", timeout=timeout
    )
    return openai.AsyncOpenAI(
        base_url="http://localhost/v1", api_key=api_key, http_client=http, max_retries=0
    )
