"""A Responses API request read for the pipeline, and its reply as a response or its events.

`ResponsePlan.read` continues a stored conversation (`previous_response_id`), adds the input
turns, folds in `instructions` and the persona's system prompt and post-history instructions,
and reads the grammar of `text.format` (or the card's), the budget and logit_bias; `whole` and
`streamed` build the response object or its event stream, and store it unless `store: false`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.response import Stream

from server.api.guarded import Guarded, steer_messages
from server.api.params import Extras, parse_logit_bias
from server.api.pipeline import Generation
from server.api.prompt import chat_prompt
from server.api.response_events import Draft, events, keep, sse
from server.api.responses_input import read_input, template_messages
from server.api.structured import refuse_stop, text_grammar
from server.engine.types import Delta, JsonGrammar
from server.response_store import Turn
from server.runner import Job, Outcome
from server.wire.openai import is_set
from server.wire.responses import InputItem, ResponseObject, ResponsesRequest


@dataclass(frozen=True)
class ResponsePlan:
    """One checked Responses request, read: the whole conversation, templated, and its
    settings; a `RequestPlan` for `Generation.respond`."""

    gen: Generation
    request: ResponsesRequest
    requested: dict[str, Any] | None
    """`text.format` as sent, or None."""
    card_format: Any
    """The card's `response_format`, or None."""
    grammar: JsonGrammar | None
    input_items: list[InputItem]
    conversation: list[Turn]
    """The stored turns this response continues, then the input's."""
    messages: list[dict[str, str]]
    extras: Extras
    max_tokens: int | None
    """`max_output_tokens`, else `max_tokens`; None when neither was sent."""
    texts: tuple[str]
    """The latest user turn, for the guard."""
    created_at: int
    """Unix seconds."""
    stream: bool

    @classmethod
    def read(cls, data: ResponsesRequest, gen: Generation) -> ResponsePlan:
        """Read a checked request; 404 for an unknown `previous_response_id`, 400 for bad
        input, a bad logit_bias, or `stop` with a grammar."""
        card = gen.resolved.persona.card if gen.resolved.persona else None
        card_format = card.response_format if card else None
        requested = data.text.format if is_set(data.text) and is_set(data.text.format) else None
        grammar = text_grammar(requested, card_format)
        refuse_stop(grammar, is_set(data.stop))
        history: list[Turn] = []
        if is_set(data.previous_response_id):
            history = list(gen.state.responses.load(data.previous_response_id).conversation)
        given = read_input(data.input)
        turns = history + given.turns
        messages = template_messages(
            turns,
            data.instructions if is_set(data.instructions) else None,
            card.system_prompt if card else None,
            card.post_history_instructions if card else None,
        )
        bias = data.logit_bias if is_set(data.logit_bias) else None
        extras = Extras(logit_bias=parse_logit_bias(bias, gen.vocab_size))
        limit = data.max_output_tokens if is_set(data.max_output_tokens) else data.max_tokens
        latest = next((t.content for t in reversed(turns) if t.role == "user"), "")
        return cls(
            gen,
            data,
            requested,
            card_format,
            grammar,
            given.items,
            turns,
            messages,
            extras,
            limit if is_set(limit) else None,
            (latest,),
            int(time.time()),
            data.stream is True,
        )

    def build(self, _: int, guidance: str | None) -> list[Job]:
        """The conversation's one job, `guidance` added to its last user turn."""
        prompt = chat_prompt(self.gen.engine.tokenizer, steer_messages(self.messages, guidance))
        return self.gen.jobs(prompt, self)

    @property
    def n(self) -> int:
        """One choice: the Responses API has no `n`."""
        return 1

    def draft(self, guarded: Guarded) -> Draft:
        """The response as known before its reply: a new id, the job's sampling, the guard's
        decision."""
        (job,) = guarded.jobs
        params = job.request.params
        # A format the request names is the one followed; the card's applies only without one.
        card = self.card_format if self.requested is None else None
        return Draft(
            id=f"resp_{uuid.uuid4().hex}",
            item_id=f"msg_{uuid.uuid4().hex}",
            created_at=self.created_at,
            request=self.request,
            temperature=params.temperature,
            top_p=params.top_p,
            format=echo_format(self.requested, card),
            input_items=self.input_items,
            conversation=self.conversation,
            guard=guarded.verdict,
        )

    async def whole(self, guarded: Guarded, outcomes: list[Outcome]) -> ResponseObject:
        """The finished response, stored unless `store: false`."""
        draft = self.draft(guarded)
        (outcome,) = outcomes
        reply = draft.finish(
            outcome.text,
            outcome.finish_reason,
            outcome.prompt_tokens,
            outcome.completion_tokens,
            outcome.adapter_version,
        )
        keep(self.gen.state, draft, reply, outcome.text)
        return reply

    def streamed(self, guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]) -> Stream:
        """The response's events as server-sent events; the finished response is stored."""
        state = self.gen.state
        return sse(events(self.draft(guarded), merged, state), state)


def echo_format(requested: dict[str, Any] | None, card: Any) -> dict[str, Any]:
    """`text.format` as the response reports it, in the Responses API's flat shape: the card's
    format when `card` is given, else the requested one."""
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
