"""`POST /v1/chat/completions`: a persona or the base model answers a conversation."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody
from litestar.response import Stream
from msgspec import UNSET

from server.api.guarded import Guarded, steer_messages
from server.api.logprobs import chat_logprobs
from server.api.params import Extras, parse_logit_bias
from server.api.pipeline import Generation
from server.api.prompt import chat_messages, chat_prompt, message_text
from server.api.reply import Head
from server.api.scoring import score_final_message, wants_score
from server.api.sse import stream_events
from server.api.structured import chat_grammar, refuse_stop
from server.api.unsupported import check_chat, choices_wanted
from server.engine.types import Delta
from server.errors import ModelNotFoundError, error_responses
from server.runner import Job, Outcome
from server.state import ServerState
from server.wire.openai import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ChoiceLogprobs,
    ChunkChoice,
    ChunkDelta,
    Usage,
    is_set,
)


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
    gen = Generation.start(state, data.model)
    if wants_score(data):
        return Response(await score_final_message(data, state, gen.resolved))
    persona = gen.resolved.persona
    if persona is None and state.settings.web == "locked":
        # A locked server's chat pages talk to personas only; the bare base model stays out.
        raise ModelNotFoundError(
            f"The model '{data.model}' is not served here: this server serves personas only.",
            param="model",
        )
    card = persona.card if persona else None
    grammar = chat_grammar(data.response_format, card.response_format if card else None)
    refuse_stop(grammar, is_set(data.stop))
    prefill = data.continue_final_message is True
    messages = chat_messages(
        data.messages,
        card.system_prompt if card else None,
        card.post_history_instructions if card else None,
    )
    max_tokens = (
        data.max_completion_tokens if is_set(data.max_completion_tokens) else data.max_tokens
    )
    want_logprobs = data.logprobs is True
    extras = Extras(
        logit_bias=parse_logit_bias(
            data.logit_bias if is_set(data.logit_bias) else None, gen.vocab_size
        ),
        logprobs=want_logprobs,
        top_logprobs=data.top_logprobs if is_set(data.top_logprobs) else 0,
    )
    n = choices_wanted(data)

    def build(_: int, guidance: str | None) -> list[Job]:
        prompt = chat_prompt(
            gen.engine.tokenizer,
            steer_messages(messages, guidance),
            add_generation_prompt=not prefill and data.add_generation_prompt is not False,
            continue_final_message=prefill,
        )
        limit = max_tokens if is_set(max_tokens) else None
        return gen.jobs(prompt, data, max_tokens=limit, extras=extras, grammar=grammar, n=n)

    head = Head.new("chatcmpl", data.model, gen.engine.base_hash)
    include_usage = is_set(data.stream_options) and data.stream_options.include_usage is True

    async def whole(guarded: Guarded, outcomes: list[Outcome]) -> ChatCompletion:
        return _completion(replace(head, guard=guarded.verdict), outcomes, want_logprobs)

    def streamed(guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]) -> Stream:
        jobs = len(guarded.jobs)
        chunks = _chunks(replace(head, guard=guarded.verdict), merged, jobs, include_usage)
        return stream_events(chunks, state.metrics)

    return await gen.respond(
        build,
        [latest_user(data.messages)],
        grammar,
        request.receive,
        stream=data.stream is True,
        whole=whole,
        streamed=streamed,
    )


def latest_user(messages: Sequence[ChatMessage]) -> str:
    """The text of the request's last user message (empty when it has none)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return message_text(messages[index], index)
    return ""


def _completion(head: Head, outcomes: list[Outcome], logprobs: bool) -> ChatCompletion:
    """The whole completion: one choice per outcome; the prompt is counted once."""
    choices = [
        ChatChoice(
            index=index,
            message=AssistantMessage(role="assistant", content=outcome.text),
            finish_reason=outcome.finish_reason,
            logprobs=ChoiceLogprobs(chat_logprobs(outcome.logprobs)) if logprobs else None,
        )
        for index, outcome in enumerate(outcomes)
    ]
    prompt = outcomes[0].prompt_tokens
    completion = sum(o.completion_tokens for o in outcomes)
    usage = Usage(prompt, completion, prompt + completion)
    return head.build(ChatCompletion, choices, outcomes[0].adapter_version, usage)


async def _chunks(
    head: Head, merged: AsyncGenerator[tuple[int, Delta], None], n: int, include_usage: bool
) -> AsyncIterator[ChatCompletionChunk]:
    """Role chunks for every choice, then content and a finish chunk per choice as they come."""
    # OpenAI sends `usage: null` on every chunk but the last when usage was asked for.
    usage: Any = None if include_usage else UNSET
    lasts: dict[int, Delta] = {}
    version: str | None = None
    try:
        async for index, delta in merged:
            if not lasts:
                version = delta.adapter_version
                for choice in range(n):
                    opening = ChunkChoice(choice, ChunkDelta(role="assistant", content=""), None)
                    yield head.build(ChatCompletionChunk, [opening], version, usage)
            lasts[index] = delta
            if delta.text or delta.logprobs:
                logprobs = ChoiceLogprobs(chat_logprobs(delta.logprobs)) if delta.logprobs else None
                piece = ChunkChoice(index, ChunkDelta(content=delta.text), None, logprobs)
                yield head.build(ChatCompletionChunk, [piece], version, usage)
            if delta.finish_reason is not None:
                done = ChunkChoice(index, ChunkDelta(), delta.finish_reason)
                yield head.build(ChatCompletionChunk, [done], version, usage)
    finally:
        await merged.aclose()
    if include_usage and lasts:
        prompt = lasts[0].prompt_tokens
        completion = sum(d.token_count for d in lasts.values())
        total = Usage(prompt, completion, prompt + completion)
        yield head.build(ChatCompletionChunk, [], version, total)
