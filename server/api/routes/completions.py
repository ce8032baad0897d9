"""`POST /v1/completions`: legacy text completion of raw prompts, no chat template."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody
from litestar.response import Stream
from msgspec import UNSET

from server.api.guarded import Guarded, raw_user_text, steer_raw
from server.api.logprobs import TextOffsets, completion_logprobs
from server.api.params import Extras, parse_logit_bias
from server.api.pipeline import Generation
from server.api.prompt import single_bos, text_prompts
from server.api.reply import Head
from server.api.sse import stream_events
from server.api.structured import chat_grammar, refuse_stop
from server.api.unsupported import check_completion, choices_wanted
from server.engine.types import Delta
from server.errors import error_responses
from server.runner import Job, Outcome
from server.state import ServerState
from server.wire.openai import Completion, CompletionChoice, CompletionRequest, Usage, is_set


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
    """Continue each prompt with the base model or a persona's adapter (no system prompt).

    Choice `p * n + k` is the k-th of `n` completions of prompt p, as in OpenAI's API.
    """
    check_completion(data)
    gen = Generation.start(state, data.model)
    engine, vocab = gen.engine, gen.vocab_size
    # A 2 MB prompt takes seconds to tokenize: off the event loop, as is the echo's decoding.
    prompts = await asyncio.to_thread(text_prompts, engine.tokenizer, data.prompt, vocab)
    top = data.logprobs if is_set(data.logprobs) else None
    extras = Extras(
        logit_bias=parse_logit_bias(data.logit_bias if is_set(data.logit_bias) else None, vocab),
        logprobs=top is not None,
        top_logprobs=top or 0,
    )
    max_tokens = data.max_tokens if is_set(data.max_tokens) else None
    grammar = chat_grammar(data.response_format, None)
    refuse_stop(grammar, is_set(data.stop))
    n = choices_wanted(data)
    texts = [str(engine.tokenizer.decode(list(p))) for p in prompts]

    def build(index: int, guidance: str | None) -> list[Job]:
        prompt = prompts[index]
        if guidance:
            steered = steer_raw(texts[index], guidance)
            prompt = single_bos(engine.tokenizer, list(engine.tokenizer.encode(steered)))
        return gen.jobs(prompt, data, max_tokens=max_tokens, extras=extras, grammar=grammar, n=n)

    head = Head.new("cmpl", data.model, engine.base_hash)
    include_usage = is_set(data.stream_options) and data.stream_options.include_usage is True

    async def echoes() -> list[str]:
        """Each choice's echoed prompt, decoded off the loop once the guard has passed."""
        found: list[str] = []
        for index, prompt in enumerate(prompts):
            echo = (
                await asyncio.to_thread(_prompt_text, engine.tokenizer, data.prompt, index, prompt)
                if data.echo
                else ""
            )
            found += [echo] * n
        return found

    async def whole(guarded: Guarded, outcomes: list[Outcome]) -> Completion:
        choices = [
            CompletionChoice(
                index,
                echo + outcome.text,
                outcome.finish_reason,
                (
                    completion_logprobs(outcome.logprobs, TextOffsets(echo))
                    if top is not None
                    else None
                ),
            )
            for index, (outcome, echo) in enumerate(zip(outcomes, await echoes(), strict=True))
        ]
        prompt_tokens = sum(o.prompt_tokens for o in outcomes[::n])
        completion_tokens = sum(o.completion_tokens for o in outcomes)
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        head_ = replace(head, guard=guarded.verdict)
        return head_.build(Completion, choices, outcomes[0].adapter_version, usage)

    def streamed(guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]) -> Stream:
        head_ = replace(head, guard=guarded.verdict)
        return stream_events(_pieces(head_, merged, echoes, n, include_usage), state.metrics)

    return await gen.respond(
        build,
        [raw_user_text(t) for t in texts],
        grammar,
        request.receive,
        stream=data.stream is True,
        whole=whole,
        streamed=streamed,
    )


def _prompt_text(tokenizer: Any, prompt: str | list[Any], index: int, ids: tuple[int, ...]) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt[index], str):
        return str(prompt[index])
    return str(tokenizer.decode(list(ids)))


async def _pieces(
    head: Head,
    merged: AsyncGenerator[tuple[int, Delta], None],
    echo_texts: Callable[[], Awaitable[list[str]]],
    n: int,
    include_usage: bool,
) -> AsyncIterator[Completion]:
    # OpenAI sends `usage: null` on every piece but the last when usage was asked for.
    usage: Any = None if include_usage else UNSET
    try:
        echoes = await echo_texts()
    except BaseException:
        await merged.aclose()
        raise
    offsets = [TextOffsets(echo) for echo in echoes]
    lasts: dict[int, Delta] = {}
    version: str | None = None
    try:
        async for index, delta in merged:
            if not lasts:
                version = delta.adapter_version
                for choice, echo in enumerate(echoes):
                    if echo:
                        piece = CompletionChoice(choice, echo, None)
                        yield head.build(Completion, [piece], version, usage)
            lasts[index] = delta
            if delta.text or delta.logprobs:
                logprobs = (
                    completion_logprobs(delta.logprobs, offsets[index]) if delta.logprobs else None
                )
                piece = CompletionChoice(index, delta.text, None, logprobs)
                yield head.build(Completion, [piece], version, usage)
            if delta.finish_reason is not None:
                done = CompletionChoice(index, "", delta.finish_reason)
                yield head.build(Completion, [done], version, usage)
    finally:
        await merged.aclose()
    if include_usage and lasts:
        prompt = sum(lasts[i].prompt_tokens for i in range(0, len(echoes), n) if i in lasts)
        completion = sum(d.token_count for d in lasts.values())
        yield head.build(Completion, [], version, Usage(prompt, completion, prompt + completion))
