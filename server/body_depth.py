"""Every request body is checked for JSON nested too deeply before any route decodes it.

msgspec recurses once per level, and a 2 KB body of `[[[[...` would end in a `RecursionError`
(a 500) on whichever route it reached. Litestar runs `before_request` before it decodes the
body and caches the bytes it read, so one hook covers every route.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request

from data.json_depth import NestingError, check_depth
from server.errors import InvalidRequest

_INLINE_BYTES = 64 * 1024
"""Bodies up to this size are scanned on the event loop; larger ones in a thread."""


async def refuse_deep_json(request: Request[Any, Any, Any]) -> None:
    """Raise a 400 naming the nesting limit if the request body nests JSON too deeply."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        return  # uploads: each JSONL line is checked when the file is read
    body = await request.body()
    try:
        if len(body) <= _INLINE_BYTES:
            check_depth(body)
        else:
            await anyio.to_thread.run_sync(check_depth, body)
    except NestingError as exc:
        raise InvalidRequest(str(exc), code="json_too_deep") from None
