"""The TUI's only door to the server: HTTP calls, with every failure turned into one `ApiError`.

Screens never see httpx or msgspec exceptions: a refused request, a dropped connection, a
timeout or a garbled body all arrive as `ApiError(title, message)`, ready for a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from .api_jobs import JobsApi
from .api_records import RecordsApi
from .sse import SseDecoder, SseEvent, sse_lines
from .wire import (
    AdapterEvent,
    AdapterList,
    ChatCompletionChunk,
    ChatMessage,
    DraftInfo,
    DraftList,
    DraftReview,
    DraftTurn,
    ErrorEnvelope,
    Health,
    Model,
    ModelList,
    PersonaAdapters,
    PersonaCreated,
    PersonaGuard,
    PersonaInfo,
    PersonaList,
    ReplyPiece,
    SamplingOverrides,
    Usage,
)

T = TypeVar("T")


class ApiError(Exception):
    """A request that did not give the TUI what it asked for, explained for people."""

    def __init__(
        self, title: str, message: str, *, status: int | None = None, unreachable: bool = False
    ) -> None:
        super().__init__(f"{title}: {message}")
        self.title = title
        """A short heading, such as "Request refused (404)"."""
        self.message = message
        """What went wrong, in the server's words where it gave any."""
        self.status = status
        """The HTTP status, when the server answered."""
        self.unreachable = unreachable
        """True when no server answered or the connection dropped."""


@dataclass(frozen=True)
class ServerHealth:
    """What `/health` says right now."""

    state: Literal["ready", "loading", "failed", "down"]
    detail: str = ""
    model: str | None = None


def normalize_url(url: str) -> str:
    """The server root: no trailing slash and no `/v1` suffix."""
    url = url.strip().rstrip("/")
    return url.removesuffix("/v1") if url.endswith("/v1") else url


def error_from_response(status: int, body: bytes, reason: str = "") -> ApiError:
    """Read OpenAI's error envelope (or whatever came instead) into an ApiError."""
    try:
        envelope = msgspec.json.decode(body, type=ErrorEnvelope)
        message = envelope.error.message or envelope.error.type
        if envelope.error.param:
            message = f"{message} (param: {envelope.error.param})"
    except (msgspec.DecodeError, msgspec.ValidationError):
        message = body.decode("utf-8", errors="replace").strip()[:300] or reason or "no details"
    if status >= 500:
        title = f"Server error ({status})"
    elif status == 404:
        title = "Not found (404)"
    else:
        title = f"Request refused ({status})"
    return ApiError(title, message, status=status)


@contextmanager
def translated(base_url: str) -> Iterator[None]:
    """Turn transport and decoding exceptions raised inside the block into ApiError."""
    try:
        yield
    except ApiError:
        raise
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ApiError(
            "Server unreachable", f"nothing answers at {base_url} ({exc})", unreachable=True
        ) from None
    except httpx.TimeoutException:
        raise ApiError("Server timed out", f"{base_url} did not answer in time") from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise ApiError(
            "Connection lost", f"the connection to {base_url} dropped ({exc})", unreachable=True
        ) from None
    except httpx.HTTPError as exc:
        raise ApiError("Network error", str(exc) or type(exc).__name__) from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ApiError("Unexpected reply", f"the server sent something unreadable: {exc}") from None


def _drafts(persona: str) -> str:
    return f"/v1/personas/{quote(persona, safe='')}/drafts"


def chat_body(model: str, messages: Sequence[ChatMessage], overrides: SamplingOverrides) -> bytes:
    """The JSON body of a streamed chat completion request."""
    body: dict[str, object] = {
        "model": model,
        "messages": [msgspec.to_builtins(m) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(msgspec.to_builtins(overrides))
    return msgspec.json.encode(body)


def decode_chunk(data: str | bytes) -> ChatCompletionChunk:
    """One stream event's chunk; the error envelope a failing stream ends with is an ApiError."""
    try:
        return msgspec.json.decode(data, type=ChatCompletionChunk)
    except msgspec.ValidationError:
        try:
            failure = msgspec.json.decode(data, type=ErrorEnvelope).error
        except msgspec.ValidationError:
            failure = None
        if failure is None:
            raise
        raise ApiError("Generation failed", failure.message or failure.type) from None


def piece_from_chunk(chunk: ChatCompletionChunk) -> ReplyPiece:
    """The text, finish reason, adapter version and token count one chunk carries."""
    text = "".join(c.delta.content or "" for c in chunk.choices)
    finish = next((c.finish_reason for c in chunk.choices if c.finish_reason), None)
    tokens = chunk.usage.completion_tokens if isinstance(chunk.usage, Usage) else None
    guard = chunk.persona_guard if isinstance(chunk.persona_guard, PersonaGuard) else None
    return ReplyPiece(text, finish, chunk.persona_adapter, tokens, guard)


class ApiClient(JobsApi, RecordsApi):
    """Async client for one persona studio server."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_url(base_url)
        """The server root, e.g. `http://127.0.0.1:8000`."""
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=3.0),
            transport=transport,
            headers={"content-type": "application/json"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def translating(self) -> contextlib.AbstractContextManager[None]:
        """A block whose transport and decoding errors become ApiError."""
        return translated(self.base_url)

    @staticmethod
    async def raise_for_status(response: httpx.Response) -> None:
        """ApiError from the server's envelope when the status is 4xx or 5xx."""
        if response.status_code >= 400:
            await response.aread()
            raise error_from_response(
                response.status_code, response.content, response.reason_phrase
            )

    async def sse_events(
        self,
        method: str,
        path: str,
        timeouts: httpx.Timeout,
        *,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[SseEvent]:
        """Open an event stream and yield its events until the server ends it; a refusal
        (4xx, 5xx) is an ApiError. Callers translate transport errors and close it with
        `contextlib.aclosing`, so that leaving early closes the request at once."""
        async with self._http.stream(
            method, path, content=content, params=params, timeout=timeouts
        ) as response:
            await self.raise_for_status(response)
            decoder = SseDecoder()
            async for line in sse_lines(response.aiter_bytes()):
                event = decoder.feed(line)
                if event is not None:
                    yield event

    async def _get(self, path: str, kind: type[T]) -> T:
        with translated(self.base_url):
            response = await self._http.get(path)
            await self.raise_for_status(response)
            return msgspec.json.decode(response.content, type=kind)

    async def _post(self, path: str, body: bytes, kind: type[T], method: str = "POST") -> T:
        with translated(self.base_url):
            response = await self._http.request(method, path, content=body)
            await self.raise_for_status(response)
            return msgspec.json.decode(response.content, type=kind)

    async def health(self) -> ServerHealth:
        """Whether the server is ready, still loading its model, or not there at all."""
        try:
            with translated(self.base_url):
                response = await self._http.get("/health", timeout=5.0)
        except ApiError as exc:
            # A timeout means something listens but is busy (a model loading on a slow machine).
            return ServerHealth("down" if exc.unreachable else "loading", exc.message)
        try:
            body: Health | None = msgspec.json.decode(response.content, type=Health)
        except (msgspec.DecodeError, msgspec.ValidationError):
            body = None  # something else answers on this port, or a proxy's error page
        status, model = (body.status, body.model) if body else ("", None)
        message = body.message if body else None
        if response.status_code == 200:
            return ServerHealth("ready", status, model)
        if response.status_code == 503 and status == "failed":
            return ServerHealth("failed", message or "the model did not load", model)
        if response.status_code == 503:
            return ServerHealth("loading", message or "loading the model", model)
        return ServerHealth("down", f"/health answered {response.status_code}")

    async def models(self) -> list[Model]:
        """Every model id the server serves: base, personas and pinned versions."""
        return (await self._get("/v1/models", ModelList)).data

    async def personas(self) -> list[PersonaInfo]:
        """Every configured persona."""
        return (await self._get("/v1/personas", PersonaList)).data

    async def persona(self, persona_id: str) -> PersonaInfo:
        """One persona, with its resolved sampling defaults and active adapter."""
        return await self._get(f"/v1/personas/{quote(persona_id, safe='')}", PersonaInfo)

    async def create_persona(
        self, name: str, display_name: str | None = None, copy_from: str | None = None
    ) -> PersonaCreated:
        """Start a persona on the server from its template, or as a copy of `copy_from`."""
        payload: dict[str, str] = {"name": name}
        if display_name:
            payload["display_name"] = display_name
        if copy_from:
            payload["from"] = copy_from
        return await self._post("/v1/personas", msgspec.json.encode(payload), PersonaCreated)

    async def import_card(self, path: Path, name: str | None = None) -> PersonaCreated:
        """Send a character card file (JSON, PNG or CHARX) to the server as a new persona."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise ApiError("Cannot read the card", f"{path}: {exc.strerror}") from None
        payload: dict[str, object] = {"filename": path.name, "data": data}
        if name:
            payload["name"] = name
        body = msgspec.json.encode(payload)  # bytes travel as base64
        return await self._post("/v1/personas/import", body, PersonaCreated)

    async def adapters(self) -> list[PersonaAdapters]:
        """Runs, checkpoints and serving state of every persona."""
        return (await self._get("/v1/adapters", AdapterList)).data

    async def activate(self, persona: str, run: str, step: int | None = None) -> PersonaAdapters:
        """Pin a persona to one checkpoint (a run's latest when `step` is None)."""
        payload: dict[str, object] = {"run": run}
        if step is not None:
            payload["step"] = step
        return await self._post(
            f"/v1/adapters/{quote(persona, safe='')}/activate",
            msgspec.json.encode(payload),
            PersonaAdapters,
        )

    async def follow(self, persona: str) -> PersonaAdapters:
        """Let a persona serve its newest checkpoint again."""
        return await self._post(
            f"/v1/adapters/{quote(persona, safe='')}/follow", b"{}", PersonaAdapters
        )

    async def drafts(self, persona: str) -> list[DraftInfo]:
        """The persona's drafts waiting for review."""
        return (await self._get(_drafts(persona), DraftList)).data

    async def review_draft(self, persona: str, draft_id: str, verdict: str) -> DraftReview:
        """`accept` (append to the dataset) or `reject` one draft."""
        path = f"{_drafts(persona)}/{quote(draft_id, safe='')}/{verdict}"
        return await self._post(path, b"{}", DraftReview)

    async def edit_draft(
        self, persona: str, draft_id: str, messages: Sequence[DraftTurn]
    ) -> DraftInfo:
        """Replace a draft's conversation; the server refuses one its checker would."""
        body = msgspec.json.encode({"messages": list(messages)})
        path = f"{_drafts(persona)}/{quote(draft_id, safe='')}"
        return await self._post(path, body, DraftInfo, method="PUT")

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], overrides: SamplingOverrides
    ) -> AsyncIterator[ReplyPiece]:
        """Stream a chat reply; closing the iterator closes the request, which stops it."""
        body = chat_body(model, messages, overrides)
        timeout = httpx.Timeout(300.0, connect=3.0)
        with translated(self.base_url):
            stream = self.sse_events("POST", "/v1/chat/completions", timeout, content=body)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if event.data.strip() == "[DONE]":
                        return
                    yield piece_from_chunk(decode_chunk(event.data))
        raise ApiError("Connection lost", "the reply stream ended early", unreachable=True)

    async def adapter_events(self) -> AsyncIterator[AdapterEvent]:
        """Follow `/v1/adapters/events` until the connection drops (then raise ApiError)."""
        timeout = httpx.Timeout(None, connect=3.0)
        with translated(self.base_url):
            stream = self.sse_events("GET", "/v1/adapters/events", timeout)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if event.event in ("adapter", "message"):
                        yield msgspec.json.decode(event.data, type=AdapterEvent)
        raise ApiError("Connection lost", "the adapter event stream closed", unreachable=True)
