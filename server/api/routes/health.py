"""`GET /health`, `GET /metrics` and `GET /openapi.json`: readiness, Prometheus text, the schema."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from server.metrics import CONTENT_TYPE
from server.state import RETRY_AFTER_SECONDS, ServerState
from server.wire.openai import Health


@get("/health", summary="Readiness", tags=["server"])
async def health(state: ServerState) -> Response[Health]:
    """200 once the model serves; 503 with Retry-After while it loads (or if it failed)."""
    model = state.base_id()
    if state.engine is not None:
        return Response(Health("ok", model))
    if state.load_error is not None:
        return Response(Health("failed", model, state.load_error), status_code=503)
    return Response(
        Health("loading", model, "the model is loading"),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@get("/metrics", summary="Prometheus metrics", tags=["server"], media_type=CONTENT_TYPE)
async def metrics(state: ServerState) -> Response[bytes]:
    """Requests, tokens, latency histograms, active streams and adapters in use."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


@get("/openapi.json", include_in_schema=False, media_type="application/json")
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI schema, generated from the msgspec wire Structs."""
    return request.app.openapi_schema.to_schema()
