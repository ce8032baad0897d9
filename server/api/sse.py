"""Server-sent events in OpenAI's framing: `data: <json>` per chunk, then `data: [DONE]`.

The stream is a Litestar `Stream`, which cancels the iterator when the client disconnects; the
cancellation reaches the engine's iterator and frees the sequence's batch row.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Response
from litestar.response import Stream

from server.envelope import ErrorDetail, ErrorEnvelope
from server.errors import AppError
from server.metrics import ServerMetrics

log = logging.getLogger("persona.server")

DONE = b"data: [DONE]\n\n"
CLIENT_CLOSED = 499
"""nginx's "client closed request": logged and counted, never read by anyone."""


def disconnected() -> Response[bytes]:
    """The response to a client that has already gone."""
    return Response(b"", status_code=CLIENT_CLOSED, media_type="text/plain")


def event(payload: msgspec.Struct) -> bytes:
    """One SSE event holding a JSON payload."""
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


async def _events(
    chunks: AsyncIterator[msgspec.Struct], metrics: ServerMetrics
) -> AsyncIterator[bytes]:
    metrics.active_streams.inc()
    try:
        async for chunk in chunks:
            yield event(chunk)
    except AppError as exc:
        yield event(exc.envelope())
        return
    except Exception:
        log.exception("a stream failed")
        detail = ErrorDetail("internal server error", "server_error", None, "internal_error")
        yield event(ErrorEnvelope(detail))
        return
    finally:
        metrics.active_streams.dec()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    yield DONE


def stream_events(chunks: AsyncIterator[Any], metrics: ServerMetrics) -> Stream:
    """An SSE response streaming `chunks`, each a wire Struct."""
    return Stream(
        _events(chunks, metrics),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
