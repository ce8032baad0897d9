"""`POST /v1/personas` (new, or a copy) and `POST /v1/personas/import` (a character card).

Both write a whole folder under the user's personas folder, renamed into place when complete,
then serve the new persona at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePath

from litestar import post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody

from data.cards.spec import CardError
from data.home import personas_dir
from data.personas import PersonaEntry
from data.scaffold import ScaffoldError, create_persona
from server.errors import AppError, InvalidRequestError, NotFoundError, error_responses
from server.state import ServerState
from server.wire.personas import PersonaCreate, PersonaCreated, PersonaImport

TAGS = ["personas"]


class PersonaExistsError(AppError):
    """A persona of that name exists already."""

    status = 409
    default_code = "persona_exists"


def _served(state: ServerState, folder: Path) -> PersonaEntry:
    from data.card import load_card

    entry = PersonaEntry(folder.name, folder, load_card(folder))
    state.catalog.add(entry)
    return entry


def _scaffold_error(exc: ScaffoldError) -> AppError:
    message = str(exc)
    if "exists already" in message or "appeared" in message:
        return PersonaExistsError(message, param="name")
    return InvalidRequestError(message, param="name", code="invalid_persona_name")


@post(
    "/v1/personas",
    summary="Create a persona",
    tags=TAGS,
    status_code=201,
    responses=error_responses(400, 404, 409),
)
async def create(data: JSONBody[PersonaCreate], state: ServerState) -> PersonaCreated:
    """A new persona folder from the template (or a copy of `from`), served at once."""
    source = None
    if data.copy_from is not None:
        source = state.catalog.get(data.copy_from)
        if source is None:
            raise NotFoundError(
                f"no persona named '{data.copy_from}' to copy",
                param="from",
                code="persona_not_found",
            )
    if state.catalog.get(data.name) is not None:
        raise PersonaExistsError(f"a persona named '{data.name}' is served already", param="name")
    try:
        made = await asyncio.to_thread(
            create_persona, data.name, personas_dir(), title=data.display_name, source=source
        )
    except ScaffoldError as exc:
        raise _scaffold_error(exc) from None
    _served(state, made.folder)
    return PersonaCreated(made.name, str(made.folder), list(made.files))


@post(
    "/v1/personas/import",
    summary="Import a character card as a persona",
    tags=TAGS,
    status_code=201,
    responses=error_responses(400, 409),
)
async def import_card(data: JSONBody[PersonaImport], state: ServerState) -> PersonaCreated:
    """A persona made from a V2/V3 card (JSON, PNG or CHARX), served at once."""
    from data.cards.folder import write_persona
    from data.cards.persona import to_persona
    from data.cards.read import read_card_bytes

    # Only the file's own name: it labels errors and never becomes a path on this machine.
    label = Path(PurePath(data.filename).name or "card")
    try:
        source = await asyncio.to_thread(read_card_bytes, data.data, label)
        imported = to_persona(source.card, data.name, data.user)
        if state.catalog.get(imported.card.name) is not None:
            raise PersonaExistsError(
                f"a persona named '{imported.card.name}' is served already; give another name",
                param="name",
            )
        folder = await asyncio.to_thread(write_persona, imported, source, personas_dir())
    except CardError as exc:
        if "exists already" in str(exc):
            raise PersonaExistsError(str(exc), param="name") from None
        raise InvalidRequestError(str(exc), param="data", code="invalid_card") from None
    entry = _served(state, folder)
    files = sorted(p.name for p in folder.iterdir())
    return PersonaCreated(entry.name, str(folder), files, list(imported.notes))


def persona_create_routes() -> list[HTTPRouteHandler]:
    """The handlers that create personas."""
    return [create, import_card]
