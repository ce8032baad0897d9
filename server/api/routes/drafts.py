"""Review drafted data: list a persona's drafts, and accept, edit or reject each one.

Accepting appends the draft to the persona's training set (the file training reads) atomically and
answers with the dataset's stats warnings afterwards. Drafts of a read-only sample persona
cannot be changed.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from litestar import get, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from data.authoring.drafts.store import Draft, DraftError, accept, edit, keep, read_drafts, reject
from data.dataset import read_datasets
from data.personas import PersonaEntry
from data.records import Message
from data.stats import dataset_stats
from server.errors import InvalidRequestError, NotFoundError, error_responses
from server.state import ServerState
from server.wire.drafts import DraftEdit, DraftInfo, DraftKeep, DraftList, DraftReview

TAGS = ["drafts"]


def _persona(state: ServerState, persona_id: str) -> PersonaEntry:
    entry = state.catalog.get(persona_id)
    if entry is None:
        raise NotFoundError(
            f"no persona named '{persona_id}'", param="persona_id", code="persona_not_found"
        )
    return entry


def _writable(entry: PersonaEntry) -> Path:
    if entry.read_only:
        raise InvalidRequestError(
            f"'{entry.name}' is a read-only sample persona", code="read_only_persona"
        )
    return entry.folder


def _info(draft: Draft) -> DraftInfo:
    return msgspec.convert(msgspec.to_builtins(draft), DraftInfo)


def _changed(error: DraftError, draft_id: str) -> Exception:
    if error.missing:
        return NotFoundError(str(error), param="draft_id", code="draft_not_found")
    return InvalidRequestError(f"draft '{draft_id}': {error}", param="messages")


@get(
    "/v1/personas/{persona_id:str}/drafts",
    summary="List drafts",
    tags=TAGS,
    sync_to_thread=True,
    responses=error_responses(404),
)
def list_drafts(persona_id: FromPath[str], state: ServerState) -> DraftList:
    """Every draft of the persona waiting for review, oldest first."""
    entry = _persona(state, persona_id)
    return DraftList([_info(d) for d in read_drafts(entry.folder)])


@post(
    "/v1/personas/{persona_id:str}/drafts/{draft_id:str}/accept",
    summary="Accept a draft",
    tags=TAGS,
    status_code=200,
    sync_to_thread=True,
    responses=error_responses(400, 404),
)
def accept_draft(
    persona_id: FromPath[str], draft_id: FromPath[str], state: ServerState
) -> DraftReview:
    """Append the draft to the persona's dataset and drop it from the drafts."""
    entry = _persona(state, persona_id)
    folder = _writable(entry)
    dataset = entry.append_file
    try:
        accept(folder, draft_id, dataset)
    except DraftError as exc:
        raise _changed(exc, draft_id) from None
    loaded = read_datasets(entry.data_files)
    stats = dataset_stats([r.record for r in loaded.rows], entry.card)
    records = sum(1 for r in loaded.rows if r.file == str(dataset))
    return DraftReview(draft_id, "accepted", dataset.name, records, list(stats.warnings))


@post(
    "/v1/personas/{persona_id:str}/drafts/{draft_id:str}/reject",
    summary="Reject a draft",
    tags=TAGS,
    status_code=200,
    sync_to_thread=True,
    responses=error_responses(400, 404),
)
def reject_draft(
    persona_id: FromPath[str], draft_id: FromPath[str], state: ServerState
) -> DraftReview:
    """Drop the draft; the dataset is not touched."""
    folder = _writable(_persona(state, persona_id))
    try:
        reject(folder, draft_id)
    except DraftError as exc:
        raise _changed(exc, draft_id) from None
    return DraftReview(draft_id, "rejected")


@put(
    "/v1/personas/{persona_id:str}/drafts/{draft_id:str}",
    summary="Edit a draft",
    tags=TAGS,
    sync_to_thread=True,
    responses=error_responses(400, 404),
)
def edit_draft(
    persona_id: FromPath[str],
    draft_id: FromPath[str],
    data: JSONBody[DraftEdit],
    state: ServerState,
) -> DraftInfo:
    """Replace the draft's conversation; a conversation the checker refuses gets a 400."""
    folder = _writable(_persona(state, persona_id))
    messages = [Message(m.role, m.content) for m in data.messages]
    tags = None if isinstance(data.tags, msgspec.UnsetType) else data.tags
    try:
        return _info(edit(folder, draft_id, messages, tags))
    except DraftError as exc:
        raise _changed(exc, draft_id) from None


@post(
    "/v1/personas/{persona_id:str}/drafts",
    summary="Keep a chat exchange as a draft",
    tags=TAGS,
    status_code=201,
    sync_to_thread=True,
    responses=error_responses(400, 404),
)
def keep_draft(
    persona_id: FromPath[str], data: JSONBody[DraftKeep], state: ServerState
) -> DraftInfo:
    """Add a conversation (from the chat screen) as a draft; the checker's errors are a 400."""
    folder = _writable(_persona(state, persona_id))
    messages = [Message(m.role, m.content) for m in data.messages]
    try:
        return _info(keep(folder, messages, data.tags, data.source))
    except DraftError as exc:
        raise InvalidRequestError(f"not a training record: {exc}", param="messages") from None


def draft_routes() -> list[HTTPRouteHandler]:
    """The draft review routes, for the app factory."""
    return [list_drafts, keep_draft, accept_draft, reject_draft, edit_draft]
