"""The TUI's calls for a persona's records: list, add, replace and delete one at a time.

A mixin of `ApiClient` (like `JobsApi`), so every failure arrives as one `ApiError`; the server
checks each record and answers a refusal with its problems as `file:line`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from .wire import Message, RecordDeleted, RecordList, RecordSaved

T = TypeVar("T")


def _records(persona: str) -> str:
    return f"/v1/personas/{quote(persona, safe='')}/records"


def _record(persona: str, file: str, line: int) -> str:
    return f"{_records(persona)}/{quote(file, safe='')}/{line}"


def _body(messages: Sequence[Message], tags: Sequence[str], hash_: str | None = None) -> bytes:
    payload: dict[str, object] = {"messages": list(messages), "tags": list(tags)}
    if hash_ is not None:
        payload["hash"] = hash_
    return msgspec.json.encode(payload)


class RecordsApi:
    """A persona's dataset records on the server."""

    if TYPE_CHECKING:  # provided by ApiClient
        _http: httpx.AsyncClient

        def translating(self) -> contextlib.AbstractContextManager[None]: ...

        async def raise_for_status(self, response: httpx.Response) -> None: ...

        async def _get(self, path: str, kind: type[T]) -> T: ...

        async def _post(self, path: str, body: bytes, kind: type[T], method: str = "POST") -> T: ...

    async def records(self, persona: str) -> RecordList:
        """Every record of the persona's dataset, whether it may be changed, and its tags."""
        return await self._get(_records(persona), RecordList)

    async def add_record(
        self, persona: str, messages: Sequence[Message], tags: Sequence[str]
    ) -> RecordSaved:
        """Append a conversation to the persona's training file (the server checks it first)."""
        return await self._post(_records(persona), _body(messages, tags), RecordSaved)

    async def replace_record(
        self,
        persona: str,
        file: str,
        line: int,
        hash_: str,
        messages: Sequence[Message],
        tags: Sequence[str],
    ) -> RecordSaved:
        """Replace the record at `file:line`, listed with `hash_` (a 409 if it changed since)."""
        path = _record(persona, file, line)
        return await self._post(path, _body(messages, tags, hash_), RecordSaved, method="PUT")

    async def delete_record(self, persona: str, file: str, line: int, hash_: str) -> RecordDeleted:
        """Delete the record at `file:line`, listed with `hash_`."""
        with self.translating():
            response = await self._http.delete(_record(persona, file, line), params={"hash": hash_})
            await self.raise_for_status(response)
            return msgspec.json.decode(response.content, type=RecordDeleted)
