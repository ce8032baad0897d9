"""`GET /v1/personas` and `GET /v1/personas/{id}`: who each persona is and how it samples."""

from __future__ import annotations

from litestar import get
from litestar.params import FromPath

from data.personas import EVAL, PREFERENCE, TRAIN_FILES, VALID, PersonaEntry
from server.api.models import defaults
from server.errors import NotFoundError, error_responses
from server.state import ServerState
from server.wire.personas import PersonaInfo, PersonaList

DATA_FILES = (*TRAIN_FILES, VALID, PREFERENCE, EVAL)


def describe(state: ServerState, entry: PersonaEntry) -> PersonaInfo:
    """A persona's card, resolved sampling defaults and active adapter version."""
    card = entry.card
    return PersonaInfo(
        id=entry.name,
        display_name=card.title,
        description=card.description,
        system_prompt=card.system_prompt,
        base_model=card.base_model,
        defaults=defaults(state, entry),
        active_adapter=state.active_version(entry.name),
        greetings=list(card.greetings),
        post_history_instructions=card.post_history_instructions,
        training=card.training,
        data_files=[n for n in DATA_FILES if (entry.folder / n).is_file()],
        error=state.catalog.errors.get(entry.name),
    )


@get("/v1/personas", summary="List personas", tags=["personas"])
async def personas(state: ServerState) -> PersonaList:
    """Every persona served here."""
    return PersonaList([describe(state, e) for e in state.catalog.personas()])


@get(
    "/v1/personas/{persona_id:str}",
    summary="Show a persona",
    tags=["personas"],
    responses=error_responses(404),
)
async def persona(persona_id: FromPath[str], state: ServerState) -> PersonaInfo:
    """One persona: system prompt, resolved defaults and active adapter."""
    entry = state.catalog.get(persona_id)
    if entry is None:
        raise NotFoundError(
            f"no persona named '{persona_id}'", param="persona_id", code="persona_not_found"
        )
    return describe(state, entry)
