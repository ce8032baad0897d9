"""`POST /v1/completions`: legacy text completion of a raw prompt, no chat template."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody

from server.api.generation import ClientDisconnectedError
from server.api.logprobs import completion_logprobs
from server.api.params import Extras, parse_logit_bias
from server.api.plan import plan
from server.api.prompt import text_prompt
from server.api.sse import disconnected, stream_events
from server.api.structured import chat_grammar, prepare, refuse_stop
from server.api.unsupported import check_completion
from server.api.wire import Completion, CompletionChoice, CompletionRequest, Usage, is_set
from server.engine.types import Delta
from server.errors import error_responses
from server.state import ServerState, vocab_size


@post(
    "/v1/completions",
    status_code=200,
    summary="Create a text completion",
    responses=error_responses(400, 404, 503),
    tags=["openai"],
)
async def completions(
    data: JSONBody[CompletionRequest], request: Request[Any, Any, Any], state: ServerState
) -> Response[Any]:
    """Continue a prompt with the base model or a persona's adapter (no system prompt)."""
    check_completion(data)
    engine, runner = state.require_runner()
    resolved = state.resolve(data.model)
    vocab = vocab_size(engine)
    prompt = text_prompt(engine.tokenizer, data.prompt, vocab)
    top = data.logprobs if is_set(data.logprobs) else None
    extras = Extras(
        logit_bias=parse_logit_bias(data.logit_bias if is_set(data.logit_bias) else None, vocab),
        logprobs=top is not None,
        top_logprobs=top or 0,
    )
    max_tokens = data.max_tokens if is_set(data.max_tokens) else None
    grammar = chat_grammar(data.response_format, None)
    refuse_stop(grammar, is_set(data.stop))
    job = plan(
        state, engine, resolved, prompt, data, max_tokens=max_tokens, extras=extras, grammar=grammar
    )
    await prepare(engine, grammar)
    echo = _prompt_text(engine.tokenizer, data.prompt, prompt) if data.echo is True else ""
    head = Head(f"cmpl-{uuid.uuid4().hex}", int(time.time()), data.model, engine.base_hash)
    if data.stream is True:
        include_usage = is_set(data.stream_options) and data.stream_options.include_usage is True
        first, deltas = await runner.first(job, request.receive)
        if first is None:
            return disconnected()
        return stream_events(_pieces(head, first, deltas, echo, include_usage), state.metrics)
    try:
        outcome = await runner.collect(job, request.receive)
    except ClientDisconnectedError:
        return disconnected()
    logprobs = completion_logprobs(outcome.logprobs, len(echo)) if top is not None else None
    choice = CompletionChoice(0, echo + outcome.text, outcome.finish_reason, logprobs)
    usage = Usage(
        outcome.prompt_tokens,
        outcome.completion_tokens,
        outcome.prompt_tokens + outcome.completion_tokens,
    )
    return Response(head.completion([choice], outcome.adapter_version, usage))


@dataclass(frozen=True)
class Head:
    """What every piece of one completion shares."""

    reply_id: str
    created: int
    model: str
    base_hash: str

    def completion(
        self, choices: list[CompletionChoice], version: str | None, usage: Usage | None = None
    ) -> Completion:
        """A completion object (whole, or one streamed piece)."""
        return Completion(
            self.reply_id,
            self.created,
            self.model,
            choices,
            version or self.base_hash,
            version,
            usage,
        )


def _prompt_text(tokenizer: Any, prompt: str | list[Any], ids: tuple[int, ...]) -> str:
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and isinstance(prompt[0], str):
        return str(prompt[0])
    return str(tokenizer.decode(list(ids)))


async def _pieces(
    head: Head,
    first: Delta,
    rest: AsyncGenerator[Delta, None],
    echo: str,
    include_usage: bool,
) -> AsyncIterator[Completion]:
    version = first.adapter_version
    offset = len(echo)
    if echo:
        yield head.completion([CompletionChoice(0, echo, None)], version)
    last = first
    delta: Delta | None = first
    try:
        while delta is not None:
            last = delta
            if delta.text or delta.logprobs:
                logprobs = completion_logprobs(delta.logprobs, offset) if delta.logprobs else None
                yield head.completion([CompletionChoice(0, delta.text, None, logprobs)], version)
                offset += len(delta.text)
            delta = await anext(rest, None)
    finally:
        await rest.aclose()
    yield head.completion([CompletionChoice(0, "", last.finish_reason or "stop")], version)
    if include_usage:
        usage = Usage(last.prompt_tokens, last.token_count, last.prompt_tokens + last.token_count)
        yield head.completion([], version, usage)
