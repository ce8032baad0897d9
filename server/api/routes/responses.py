"""The Responses API: `POST /v1/responses`, and stored responses by id.

Model ids, persona defaults and sampling work exactly as on chat completions (the same planning,
prompt and runner code); only the request and reply shapes differ. A streamed response sends
OpenAI's full event sequence with increasing sequence numbers; a client that disconnects frees
its batch row within one decode step, as on chat. Stored responses (`store`, the default) live
in the home folder, so `previous_response_id` continues a conversation across restarts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from server.api.guarded import Guarded, steer_messages
from server.api.params import Extras, parse_logit_bias
from server.api.pipeline import Generation
from server.api.prompt import chat_prompt
from server.api.response_events import Draft, events, keep, sse
from server.api.responses_input import check_request, read_input, template_messages
from server.api.structured import refuse_stop, text_grammar
from server.engine.types import Delta
from server.errors import error_responses
from server.response_store import Turn
from server.runner import Job, Outcome
from server.state import ServerState
from server.wire.openai import is_set
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
    persona = gen.resolved.persona
    card_format = persona.card.response_format if persona else None
    requested = data.text.format if is_set(data.text) and is_set(data.text.format) else None
    grammar = text_grammar(requested, card_format)
    refuse_stop(grammar, is_set(data.stop))
    history: list[Turn] = []
    if is_set(data.previous_response_id):
        history = list(state.responses.load(data.previous_response_id).conversation)
    given = read_input(data.input)
    turns = history + given.turns
    instructions = data.instructions if is_set(data.instructions) else None
    card = persona.card if persona else None
    messages = template_messages(
        turns,
        instructions,
        card.system_prompt if card else None,
        card.post_history_instructions if card else None,
    )
    bias = data.logit_bias if is_set(data.logit_bias) else None
    extras = Extras(logit_bias=parse_logit_bias(bias, gen.vocab_size))
    max_tokens = data.max_output_tokens if is_set(data.max_output_tokens) else data.max_tokens

    def build(_: int, guidance: str | None) -> list[Job]:
        prompt = chat_prompt(gen.engine.tokenizer, steer_messages(messages, guidance))
        limit = max_tokens if is_set(max_tokens) else None
        return gen.jobs(prompt, data, max_tokens=limit, extras=extras, grammar=grammar)

    latest = next((t.content for t in reversed(turns) if t.role == "user"), "")
    created_at = int(time.time())

    def draft_of(guarded: Guarded) -> Draft:
        (job,) = guarded.jobs
        params = job.request.params
        return Draft(
            id=f"resp_{uuid.uuid4().hex}",
            item_id=f"msg_{uuid.uuid4().hex}",
            created_at=created_at,
            request=data,
            temperature=params.temperature,
            top_p=params.top_p,
            format=_echo_format(requested, card_format if requested is None else None),
            input_items=given.items,
            conversation=turns,
            guard=guarded.verdict,
        )

    async def whole(guarded: Guarded, outcomes: list[Outcome]) -> ResponseObject:
        draft = draft_of(guarded)
        (outcome,) = outcomes
        reply = draft.finish(
            outcome.text,
            outcome.finish_reason,
            outcome.prompt_tokens,
            outcome.completion_tokens,
            outcome.adapter_version,
        )
        keep(state, draft, reply, outcome.text)
        return reply

    def streamed(guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]) -> Stream:
        return sse(events(draft_of(guarded), merged, state), state)

    return await gen.respond(
        build,
        [latest],
        grammar,
        request.receive,
        stream=data.stream is True,
        whole=whole,
        streamed=streamed,
    )


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


def _echo_format(requested: dict[str, Any] | None, card: Any) -> dict[str, Any]:
    """`text.format` as the response reports it, in the Responses API's flat shape."""
    if card is not None:
        spec = msgspec.to_builtins(card.json_schema) if card.json_schema is not None else {}
        requested = {"type": card.type, **spec}
    if requested is None or requested.get("type") != "json_schema":
        kind = "text" if requested is None else requested.get("type", "text")
        return {"type": kind}
    echo = {
        "type": "json_schema",
        "name": requested.get("name") or "response",
        "schema": requested.get("schema") or {"type": "object"},
        "strict": requested.get("strict"),
    }
    if requested.get("description"):
        echo["description"] = requested["description"]
    return echo
