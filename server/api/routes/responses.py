"""The Responses API: `POST /v1/responses`, and stored responses by id.

Model ids, persona defaults and sampling work exactly as on chat completions (the same planning,
prompt and runner code); only the request and reply shapes differ. A streamed response sends
OpenAI's full event sequence with increasing sequence numbers; a client that disconnects frees
its batch row within one decode step, as on chat. Stored responses (`store`, the default) live
in the home folder, so `previous_response_id` continues a conversation across restarts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from server.api.pipeline import Generation
from server.api.response_plan import ResponsePlan
from server.api.responses_input import check_request
from server.errors import error_responses
from server.state import ServerState
from server.wire.responses import (
    DeletedResponse,
    InputItemList,
    ResponseObject,
    ResponsesRequest,
)


@post(
    "/v1/responses",
    status_code=200,
    summary="Create a response",
    responses=error_responses(400, 404, 503),
    tags=["openai"],
)
async def create_response(
    data: JSONBody[ResponsesRequest], request: Request[Any, Any, Any], state: ServerState
) -> Response[Any]:
    """Answer as a persona (or the base model), whole or as a stream of events."""
    check_request(data)
    gen = Generation.start(state, data.model)
    return await gen.respond(ResponsePlan.read(data, gen), request.receive)


@get("/v1/responses/{response_id:str}", summary="Retrieve a stored response", tags=["openai"])
async def retrieve_response(response_id: FromPath[str], state: ServerState) -> ResponseObject:
    """A stored response; 404 when unknown, expired or stored with `store: false`."""
    return state.responses.load(response_id).response


@delete(
    "/v1/responses/{response_id:str}",
    status_code=200,
    summary="Delete a stored response",
    tags=["openai"],
)
async def delete_response(response_id: FromPath[str], state: ServerState) -> DeletedResponse:
    """Forget a stored response."""
    state.responses.delete(response_id)
    return DeletedResponse(response_id)


@get(
    "/v1/responses/{response_id:str}/input_items",
    summary="List a stored response's input items",
    tags=["openai"],
)
async def list_input_items(
    response_id: FromPath[str],
    state: ServerState,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    after: FromQuery[str | None] = None,
) -> InputItemList:
    """The input items of one stored response, a page at a time."""
    items = list(state.responses.load(response_id).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.id for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return InputItemList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=len(items) > limit,
    )


def responses_routes() -> list[Any]:
    """Every Responses API route handler."""
    return [create_response, retrieve_response, delete_response, list_input_items]
