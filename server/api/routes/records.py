"""A persona's dataset, one record at a time: list, add, replace and delete.

Every write is checked first (`data.record_edit`): a record with errors gets a 400 naming each
problem as `file:line`, and the file is written by atomic rename. The samples shipped with the
package are read-only; copying one (`persona new NAME --from juni`) gives a persona to edit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
from litestar import delete, get, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from data.dataset import read_dataset
from data.eval.suite import CATEGORIES
from data.personas import PersonaEntry
from data.record_edit import (
    EditError,
    add_record,
    chat_record,
    delete_record,
    line_hash,
    replace_record,
)
from data.records import FAILURE_MODES, ChatRecord, CompletionRecord, as_messages
from data.tokens import ChatTokenizer
from server.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    error_responses,
)
from server.state import ServerState
from server.wire.records import (
    DatasetRecord,
    RecordDeleted,
    RecordList,
    RecordSaved,
    RecordWrite,
)

TAGS = ["data"]
ERRORS = error_responses(400, 404, 409)


def persona_entry(state: ServerState, persona_id: str) -> PersonaEntry:
    """A persona served here, or a 404."""
    entry = state.catalog.get(persona_id)
    if entry is None:
        raise NotFoundError(
            f"no persona named '{persona_id}'", param="persona_id", code="persona_not_found"
        )
    return entry


def writable(entry: PersonaEntry) -> Path:
    """The persona's folder, or a 400 for a read-only sample."""
    if entry.read_only:
        raise InvalidRequestError(
            f"'{entry.name}' is a sample shipped with persona studio and cannot be changed; "
            f"copy it to edit its data: persona new NAME --from {entry.name}",
            code="read_only_persona",
        )
    return entry.folder


def append_target(entry: PersonaEntry) -> Path:
    """The file new records go to: the training set the trainer reads (see `PersonaEntry`)."""
    return entry.append_file


def _file(entry: PersonaEntry, name: str) -> Path:
    files = {p.name: p for p in entry.data_files}
    if name not in files:
        known = ", ".join(files) or "none"
        raise NotFoundError(
            f"'{name}' is not a dataset file of {entry.name} (its files: {known})",
            param="file",
            code="file_not_found",
        )
    return files[name]


@dataclass(frozen=True)
class EditTarget:
    """A record write's target: a persona that may be changed, and the file to change."""

    entry: PersonaEntry
    path: Path
    tokenizer: ChatTokenizer | None
    """The served model's tokenizer, for the checks that count tokens; None while it loads."""

    @classmethod
    def of(cls, state: ServerState, persona_id: str, file: str | None = None) -> EditTarget:
        """The named persona's `file` (its training file when None); 404 for an unknown persona
        or file, 400 for a read-only sample."""
        entry = persona_entry(state, persona_id)
        writable(entry)
        path = append_target(entry) if file is None else _file(entry, file)
        tokenizer = state.engine.tokenizer if state.engine is not None else None
        return cls(entry, path, tokenizer)

    @property
    def others(self) -> list[Path]:
        """The persona's other dataset files, which a record must not repeat."""
        return [p for p in self.entry.data_files if p != self.path]


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a refused edit into HTTP: 404 for a missing line, 409 for a changed one, else 400."""
    try:
        yield
    except EditError as exc:
        if exc.kind == "missing":
            raise NotFoundError(str(exc), param="line", code="record_not_found") from None
        if exc.kind == "changed":
            raise ConflictError(str(exc), param="hash", code="record_changed") from None
        raise InvalidRequestError(str(exc), param="messages", code="invalid_record") from None


def _require_hash(hash: str | None) -> str:
    if not hash:
        raise InvalidRequestError(
            "hash is required: send the hash the record was listed with",
            param="hash",
            code="missing_required_parameter",
        )
    return hash


def _record(data: RecordWrite) -> ChatRecord:
    return chat_record(data.messages, data.tags)


@get(
    "/v1/personas/{persona_id:str}/records",
    summary="List a persona's records",
    tags=TAGS,
    sync_to_thread=True,
    responses=ERRORS,
)
def list_records(persona_id: FromPath[str], state: ServerState) -> RecordList:
    """Every record of the persona's training and validation files, in file order."""
    entry = persona_entry(state, persona_id)
    records: list[DatasetRecord] = []
    problems = []
    for path in entry.data_files:
        loaded = read_dataset(path)
        problems += [p for p in loaded.problems if p.severity == "error"]
        for row in loaded.rows:
            record = row.record
            kind = (
                "chat"
                if isinstance(record, ChatRecord)
                else "completion"
                if isinstance(record, CompletionRecord)
                else "preference"
            )
            records.append(
                DatasetRecord(
                    path.name,
                    row.line,
                    line_hash(row.raw),
                    kind,
                    list(as_messages(record)),
                    list(record.tags),
                )
            )
    in_use = [t for r in records for t in r.tags]
    categories = list(dict.fromkeys([*FAILURE_MODES, *CATEGORIES, *sorted(set(in_use))]))
    return RecordList(
        records,
        append_target(entry).name,
        not entry.read_only,
        categories,
        [msgspec.structs.replace(p, file=Path(p.file).name) for p in problems],
    )


@post(
    "/v1/personas/{persona_id:str}/records",
    summary="Add a record",
    tags=TAGS,
    status_code=201,
    sync_to_thread=True,
    responses=ERRORS,
)
def create_record(
    persona_id: FromPath[str], data: JSONBody[RecordWrite], state: ServerState
) -> RecordSaved:
    """Append a conversation to the persona's training file, if the checker finds no error."""
    edit = EditTarget.of(state, persona_id)
    with refusals():
        saved = add_record(edit.path, _record(data), edit.entry.card, edit.tokenizer, edit.others)
    return RecordSaved(edit.path.name, saved.line, saved.hash, saved.records, saved.problems)


@put(
    "/v1/personas/{persona_id:str}/records/{file:str}/{line:int}",
    summary="Replace a record",
    tags=TAGS,
    sync_to_thread=True,
    responses=ERRORS,
)
def update_record(
    persona_id: FromPath[str],
    file: FromPath[str],
    line: FromPath[int],
    data: JSONBody[RecordWrite],
    state: ServerState,
) -> RecordSaved:
    """Replace the record at `file:line`, if it is unchanged since listed and has no error."""
    edit = EditTarget.of(state, persona_id, file)
    expected = _require_hash(data.hash)
    with refusals():
        saved = replace_record(
            edit.path, line, expected, _record(data), edit.entry.card, edit.tokenizer, edit.others
        )
    return RecordSaved(edit.path.name, saved.line, saved.hash, saved.records, saved.problems)


@delete(
    "/v1/personas/{persona_id:str}/records/{file:str}/{line:int}",
    summary="Delete a record",
    tags=TAGS,
    status_code=200,
    sync_to_thread=True,
    responses=ERRORS,
)
def remove_record(
    persona_id: FromPath[str],
    file: FromPath[str],
    line: FromPath[int],
    state: ServerState,
    hash: FromQuery[str] = "",
) -> RecordDeleted:
    """Delete the record at `file:line`, if it is unchanged since listed (`?hash=`)."""
    edit = EditTarget.of(state, persona_id, file)
    with refusals():
        left = delete_record(edit.path, line, _require_hash(hash))
    return RecordDeleted(edit.path.name, line, left)


def record_routes() -> list[HTTPRouteHandler]:
    """The dataset record routes, for the app factory."""
    return [list_records, create_record, update_record, remove_record]
