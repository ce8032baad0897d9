"""`POST /v1/chat/completions`: a persona or the base model answers a conversation."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody

from server.api.generation import ClientDisconnectedError, Outcome
from server.api.logprobs import chat_logprobs
from server.api.params import Extras, parse_logit_bias
from server.api.plan import plan
from server.api.prompt import chat_messages, chat_prompt
from server.api.sse import disconnected, stream_events
from server.api.structured import chat_grammar, prepare, refuse_stop
from server.api.unsupported import check_chat
from server.api.wire import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChoiceLogprobs,
    ChunkChoice,
    ChunkDelta,
    Usage,
    is_set,
)
from server.engine.types import Delta
from server.errors import error_responses
from server.state import ServerState, vocab_size


@post(
    "/v1/chat/completions",
    status_code=200,
    summary="Create a chat completion",
    responses=error_responses(400, 404, 503),
    tags=["openai"],
)
async def chat_completions(
    data: JSONBody[ChatCompletionRequest], request: Request[Any, Any, Any], state: ServerState
) -> Response[Any]:
    """Answer a conversation as a persona (or as the base model), whole or streamed."""
    check_chat(data)
    engine, runner = state.require_runner()
    resolved = state.resolve(data.model)
    persona = resolved.persona
    card = persona.card if persona else None
    grammar = chat_grammar(data.response_format, card.response_format if card else None)
    refuse_stop(grammar, is_set(data.stop))
    messages = chat_messages(
        data.messages,
        card.system_prompt if card else None,
        card.post_history_instructions if card else None,
    )
    prompt = chat_prompt(engine.tokenizer, messages)
    max_tokens = (
        data.max_completion_tokens if is_set(data.max_completion_tokens) else data.max_tokens
    )
    want_logprobs = data.logprobs is True
    extras = Extras(
        logit_bias=parse_logit_bias(
            data.logit_bias if is_set(data.logit_bias) else None, vocab_size(engine)
        ),
        logprobs=want_logprobs,
        top_logprobs=data.top_logprobs if is_set(data.top_logprobs) else 0,
    )
    job = plan(
        state,
        engine,
        resolved,
        prompt,
        data,
        max_tokens=max_tokens if is_set(max_tokens) else None,
        extras=extras,
        grammar=grammar,
    )
    await prepare(engine, grammar)
    reply_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if data.stream is True:
        include_usage = is_set(data.stream_options) and data.stream_options.include_usage is True
        first, deltas = await runner.first(job, request.receive)
        if first is None:
            return disconnected()
        chunks = _chunks(
            first, deltas, reply_id, created, data.model, engine.base_hash, include_usage
        )
        return stream_events(chunks, state.metrics)
    try:
        outcome = await runner.collect(job, request.receive)
    except ClientDisconnectedError:
        return disconnected()
    return Response(
        _completion(outcome, reply_id, created, data.model, engine.base_hash, want_logprobs)
    )


def _completion(
    outcome: Outcome, reply_id: str, created: int, model: str, base_hash: str, logprobs: bool
) -> ChatCompletion:
    choice = ChatChoice(
        index=0,
        message=AssistantMessage(role="assistant", content=outcome.text),
        finish_reason=outcome.finish_reason,
        logprobs=ChoiceLogprobs(chat_logprobs(outcome.logprobs)) if logprobs else None,
    )
    usage = Usage(
        outcome.prompt_tokens,
        outcome.completion_tokens,
        outcome.prompt_tokens + outcome.completion_tokens,
    )
    return ChatCompletion(
        id=reply_id,
        created=created,
        model=model,
        choices=[choice],
        usage=usage,
        system_fingerprint=outcome.adapter_version or base_hash,
        persona_adapter=outcome.adapter_version,
    )


async def _chunks(
    first: Delta,
    rest: AsyncGenerator[Delta, None],
    reply_id: str,
    created: int,
    model: str,
    base_hash: str,
    include_usage: bool,
) -> AsyncIterator[ChatCompletionChunk]:
    version = first.adapter_version
    fingerprint = version or base_hash

    def chunk(
        delta: ChunkDelta, finish: str | None = None, logprobs: Any = None
    ) -> ChatCompletionChunk:
        choice = ChunkChoice(index=0, delta=delta, finish_reason=finish, logprobs=logprobs)
        return ChatCompletionChunk(reply_id, created, model, [choice], fingerprint, version)

    yield chunk(ChunkDelta(role="assistant", content=""))
    last = first
    delta: Delta | None = first
    try:
        while delta is not None:
            last = delta
            if delta.text or delta.logprobs:
                logprobs = ChoiceLogprobs(chat_logprobs(delta.logprobs)) if delta.logprobs else None
                yield chunk(ChunkDelta(content=delta.text), logprobs=logprobs)
            delta = await anext(rest, None)
    finally:
        await rest.aclose()
    yield chunk(ChunkDelta(), finish=last.finish_reason or "stop")
    if include_usage:
        usage = Usage(last.prompt_tokens, last.token_count, last.prompt_tokens + last.token_count)
        yield ChatCompletionChunk(reply_id, created, model, [], fingerprint, version, usage=usage)
