"""A Responses API reply as it evolves: the response object in each state, and its event stream.

Streaming sends OpenAI's full sequence with increasing sequence numbers: `response.created`,
`response.in_progress`, `response.output_item.added`, `response.content_part.added`, one
`response.output_text.delta` per piece of text, `response.output_text.done`,
`response.content_part.done`, `response.output_item.done`, then `response.completed` or
`response.incomplete`. Closing the stream closes the engine's iterator, which frees the row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.response import Stream

from server.engine.types import Delta
from server.errors import AppError
from server.response_store import StoredResponse, Turn
from server.state import ServerState
from server.wire.openai import is_set
from server.wire.responses import (
    ContentPartEvent,
    ErrorEvent,
    IncompleteDetails,
    InputItem,
    OutputItemEvent,
    OutputMessage,
    OutputText,
    ReplyFormat,
    ResponseEvent,
    ResponseObject,
    ResponsesRequest,
    ResponseUsage,
    TextDeltaEvent,
    TextDoneEvent,
)

log = logging.getLogger("persona.server")


@dataclass(frozen=True)
class Draft:
    """Everything a response says about itself before and after the reply is known."""

    id: str
    item_id: str
    created_at: int
    request: ResponsesRequest
    temperature: float
    top_p: float
    format: dict[str, Any]
    input_items: list[InputItem]
    conversation: list[Turn]
    guard: Any = msgspec.UNSET
    """The guard's `PersonaGuard` decision, or UNSET for a model without a guard."""

    def response(
        self,
        status: str,
        output: list[OutputMessage],
        usage: ResponseUsage | None = None,
        version: str | None = None,
    ) -> ResponseObject:
        """The response object in one state: in_progress, completed or incomplete."""
        r = self.request
        done = status != "in_progress"
        return ResponseObject(
            id=self.id,
            created_at=self.created_at,
            status=status,
            model=r.model,
            output=output,
            instructions=r.instructions if is_set(r.instructions) else None,
            max_output_tokens=r.max_output_tokens if is_set(r.max_output_tokens) else None,
            previous_response_id=(
                r.previous_response_id if is_set(r.previous_response_id) else None
            ),
            temperature=self.temperature,
            top_p=self.top_p,
            text=ReplyFormat(self.format),
            metadata=r.metadata if is_set(r.metadata) else {},
            store=r.store is not False,
            usage=usage,
            incomplete_details=(
                IncompleteDetails("max_output_tokens") if status == "incomplete" else None
            ),
            persona_adapter=version,
            persona_guard=self.guard,
            completed_at=int(time.time()) if done else None,
            user=r.user if is_set(r.user) else None,
        )

    def message(self, status: str, text: str | None) -> OutputMessage:
        """The assistant message item (no content part until the reply starts)."""
        return OutputMessage(self.item_id, status, [] if text is None else [OutputText(text)])

    def finish(
        self, text: str, finish_reason: str, prompt: int, completion: int, version: str | None
    ) -> ResponseObject:
        """The finished response."""
        status = "incomplete" if finish_reason == "length" else "completed"
        usage = ResponseUsage(prompt, completion, prompt + completion)
        return self.response(status, [self.message(status, text)], usage, version)


def keep(state: ServerState, draft: Draft, reply: ResponseObject, text: str) -> None:
    """Store a finished response unless the request said `store: false`."""
    if draft.request.store is False:
        return
    conversation = [*draft.conversation, Turn("assistant", text)]
    state.responses.save(StoredResponse(reply, draft.input_items, conversation))


async def events(
    draft: Draft, merged: AsyncGenerator[tuple[int, Delta], None], state: ServerState
) -> AsyncIterator[msgspec.Struct]:
    """The event sequence of one streamed response; the finished response is stored.

    `merged` is `Runner.open` of the one job: its first delta has already arrived.
    """
    # The iterator is closed however the stream ends, a client leaving at the first event too.
    try:
        _, first = await anext(merged)
        version = first.adapter_version
        seq = iter(range(1 << 62))
        pending = draft.response("in_progress", [], version=version)
        yield ResponseEvent("response.created", next(seq), pending)
        yield ResponseEvent("response.in_progress", next(seq), pending)
        yield OutputItemEvent(
            "response.output_item.added", next(seq), 0, draft.message("in_progress", None)
        )
        yield ContentPartEvent(
            "response.content_part.added", next(seq), draft.item_id, 0, 0, OutputText("")
        )
        pieces: list[str] = []
        last = first
        if first.text:
            pieces.append(first.text)
            yield TextDeltaEvent(next(seq), draft.item_id, first.text)
        async for _, delta in merged:
            last = delta
            if delta.text:
                pieces.append(delta.text)
                yield TextDeltaEvent(next(seq), draft.item_id, delta.text)
    finally:
        await merged.aclose()
    text = "".join(pieces)
    yield TextDoneEvent(next(seq), draft.item_id, text)
    yield ContentPartEvent(
        "response.content_part.done", next(seq), draft.item_id, 0, 0, OutputText(text)
    )
    reply = draft.finish(
        text, last.finish_reason or "stop", last.prompt_tokens, last.token_count, version
    )
    yield OutputItemEvent("response.output_item.done", next(seq), 0, reply.output[0])
    keep(state, draft, reply, text)
    yield ResponseEvent(f"response.{reply.status}", next(seq), reply)


def sse(events: AsyncIterator[msgspec.Struct], state: ServerState) -> Stream:
    """Server-sent events named by their type, as OpenAI sends them (no `[DONE]`)."""

    async def frames() -> AsyncIterator[bytes]:
        metrics = state.metrics
        metrics.active_streams.inc()
        sequence = 0
        try:
            async for item in events:
                sequence = getattr(item, "sequence_number", sequence)
                kind = getattr(item, "type", "message")
                yield f"event: {kind}\ndata: ".encode() + msgspec.json.encode(item) + b"\n\n"
        except AppError as exc:
            failure = ErrorEvent(sequence + 1, exc.message, exc.code, exc.param)
            yield b"event: error\ndata: " + msgspec.json.encode(failure) + b"\n\n"
        except Exception:
            log.exception("a response stream failed")
            failure = ErrorEvent(sequence + 1, "internal server error", "internal_error", None)
            yield b"event: error\ndata: " + msgspec.json.encode(failure) + b"\n\n"
        finally:
            metrics.active_streams.dec()
            await events.aclose()  # type: ignore[attr-defined]

    return Stream(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
