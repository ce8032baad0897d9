"""The adapter admin API: list, pin, follow, an event stream, and vLLM's load/unload endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from litestar import get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage

from adapters.registry import RegistryError
from server.errors import AppError, InvalidRequest, NotFound, error_responses
from server.hotswap.service import AdapterNotFoundError, AdapterRefusedError, AdapterService
from server.hotswap.types import (
    ActivateRequest,
    AdapterList,
    LoadLoraRequest,
    PersonaAdapters,
    UnloadLoraRequest,
)
from server.runner import AdapterUnavailable
from server.state import ServerState

KEEPALIVE_SECONDS = 15.0
"""Idle time after which the event stream sends a `: keepalive` comment."""

ERRORS = error_responses(400, 404, 503)


def service(state: ServerState) -> AdapterService:
    """The adapter service, a 503 while the model loads, or a 404 when adapters are not served."""
    if state.adapters is None:
        state.require_runner()
        raise NotFound("this server does not serve adapters")
    return state.adapters


def app_error(exc: RegistryError, param: str | None = None) -> AppError:
    """The HTTP form of a registry or adapter error."""
    if isinstance(exc, AdapterRefusedError):
        return AdapterUnavailable(str(exc), param=param)
    if isinstance(exc, AdapterNotFoundError):
        return NotFound(str(exc), param=param)
    return InvalidRequest(str(exc), param=param, code="invalid_value")


@get("/v1/adapters", summary="List personas' adapters", tags=["adapters"], responses=ERRORS)
async def list_adapters(state: ServerState) -> AdapterList:
    """Every persona's runs, checkpoints, active version, loaded versions and last error."""
    return AdapterList(service(state).states())


@get(
    "/v1/adapters/{persona:str}",
    summary="One persona's adapters",
    tags=["adapters"],
    responses=ERRORS,
)
async def persona_adapters(state: ServerState, persona: FromPath[str]) -> PersonaAdapters:
    """One persona's runs, checkpoints, active version, loaded versions and last error."""
    try:
        return service(state).state(persona)
    except RegistryError as exc:
        raise app_error(exc) from None


@post(
    "/v1/adapters/{persona:str}/activate",
    status_code=200,
    summary="Pin a persona to a checkpoint",
    tags=["adapters"],
    responses=ERRORS,
)
async def activate(
    state: ServerState, persona: FromPath[str], data: JSONBody[ActivateRequest]
) -> PersonaAdapters:
    """Pin (or roll back) a persona to a run's checkpoint; no step means the run's latest."""
    try:
        return await service(state).activate(persona, data.run, data.step)
    except RegistryError as exc:
        raise app_error(exc) from None


@post(
    "/v1/adapters/{persona:str}/follow",
    status_code=200,
    summary="Follow the newest checkpoint",
    tags=["adapters"],
    responses=ERRORS,
)
async def follow(state: ServerState, persona: FromPath[str]) -> PersonaAdapters:
    """Let a persona serve its newest loadable checkpoint again."""
    try:
        return await service(state).follow(persona)
    except RegistryError as exc:
        raise app_error(exc) from None


@get(
    "/v1/adapters/events",
    summary="Adapter events (server-sent)",
    tags=["adapters"],
    responses=ERRORS,
)
async def adapter_events(state: ServerState) -> ServerSentEvent:
    """`event: adapter` for each load, failure, activation and unload; keep-alive comments."""
    return ServerSentEvent(event_stream(service(state), KEEPALIVE_SECONDS))


@post(
    "/v1/load_lora_adapter",
    status_code=200,
    summary="Serve a checkpoint under a new model name (vLLM-compatible)",
    tags=["adapters"],
    responses=ERRORS,
)
async def load_lora_adapter(state: ServerState, data: JSONBody[LoadLoraRequest]) -> str:
    """Register `lora_name` for a checkpoint folder inside the adapters folder."""
    adapters = service(state)
    try:
        adapters.check_lora_name(data.lora_name)
    except RegistryError as exc:
        raise app_error(exc, "lora_name") from None
    try:
        await adapters.load_lora(data.lora_name, data.lora_path)
    except RegistryError as exc:
        raise app_error(exc, "lora_path") from None
    return f"Success: LoRA adapter '{data.lora_name}' added successfully."


@post(
    "/v1/unload_lora_adapter",
    status_code=200,
    summary="Forget a model name added by load_lora_adapter (vLLM-compatible)",
    tags=["adapters"],
    responses=ERRORS,
)
async def unload_lora_adapter(state: ServerState, data: JSONBody[UnloadLoraRequest]) -> str:
    """Forget `lora_name`; its weights leave memory unless a persona still serves them."""
    try:
        await service(state).unload_lora(data.lora_name)
    except RegistryError as exc:
        raise app_error(exc, "lora_name") from None
    return f"Success: LoRA adapter '{data.lora_name}' removed successfully."


def adapter_routes() -> list[HTTPRouteHandler]:
    """The admin handlers, for `create_app` to register."""
    return [
        list_adapters,
        adapter_events,
        persona_adapters,
        activate,
        follow,
        load_lora_adapter,
        unload_lora_adapter,
    ]


async def event_stream(
    adapters: AdapterService, keepalive_seconds: float
) -> AsyncIterator[ServerSentEventMessage]:
    """Adapter events as SSE messages until the client leaves or the service closes."""
    sub = adapters.subscribe()
    try:
        yield ServerSentEventMessage(comment="connected", data=None)
        while True:
            event = await sub.next(keepalive_seconds)
            if event is not None:
                data = msgspec.json.encode(event).decode()
                yield ServerSentEventMessage(data=data, event="adapter")
            elif sub.closed:
                return
            else:
                yield ServerSentEventMessage(comment="keepalive", data=None)
    finally:
        sub.close()
