"""`GET /v1/models` and `GET /v1/models/{id}`: the base model, each persona, each pinned version."""

from __future__ import annotations

from litestar import get
from litestar.params import FromPath

from adapters.registry import RegistryError, parse_model_id
from data.problem import quote
from server.errors import ModelNotFoundError, error_responses
from server.state import ServerState
from server.wire.openai import Model, ModelList

OWNER = "persona-studio"


def list_models(state: ServerState) -> list[Model]:
    """Every model id this server answers to, base model first."""
    base = state.base_id()
    created = int(state.started)
    context = state.engine.context_length if state.engine is not None else None
    models = [Model(base, created, OWNER, root=base, max_model_len=context)]
    for entry in state.catalog.personas():
        version = state.active_version(entry.name)
        models.append(
            Model(entry.name, created, OWNER, root=version, parent=base, max_model_len=context)
        )
    if state.adapters is not None:
        for model_id in state.adapters.model_ids():
            models.append(
                Model(
                    model_id,
                    created,
                    OWNER,
                    root=_version(state, model_id),
                    parent=base,
                    max_model_len=context,
                )
            )
    return models


def _version(state: ServerState, model_id: str) -> str | None:
    if state.adapters is None:
        return None
    try:
        ref = state.adapters.resolve(parse_model_id(model_id))
    except RegistryError:
        return None
    return ref.manifest.version if ref is not None else None


@get("/v1/models", summary="List models", tags=["openai"])
async def models(state: ServerState) -> ModelList:
    """The base model, each persona (its active adapter as `root`) and each pinned version."""
    return ModelList(list_models(state))


@get(
    "/v1/models/{model_id:str}",
    summary="Retrieve a model",
    tags=["openai"],
    responses=error_responses(404),
)
async def model(model_id: FromPath[str], state: ServerState) -> Model:
    """One model by id; ids may contain `@` and `:` (`juni@run-3:200`)."""
    for entry in list_models(state):
        if entry.id == model_id:
            return entry
    raise ModelNotFoundError(f"The model {quote(model_id)} does not exist.", param="model")
