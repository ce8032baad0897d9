"""A text completion request read for the pipeline, and its reply as a completion or pieces.

`CompletionPlan.read` tokenizes every raw prompt (no chat template), and reads the budget,
logit_bias, logprobs, the grammar of `response_format` and `n`; `whole` and `streamed` encode
the outcomes in OpenAI's shapes, each choice after its echoed prompt when `echo` asks for it.
Choice `p * n + k` is the k-th of `n` completions of prompt p, as in OpenAI's API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from litestar.response import Stream

from server.api.chunks import stream_chunks, usage_asked
from server.api.guarded import Guarded, raw_user_text, steer_raw
from server.api.logprobs import TextOffsets, completion_logprobs
from server.api.params import Extras, parse_logit_bias
from server.api.pipeline import Generation
from server.api.prompt import single_bos, text_prompts
from server.api.reply import Head
from server.api.sse import stream_events
from server.api.structured import chat_grammar, refuse_stop
from server.api.unsupported import choices_wanted
from server.engine.types import Delta, JsonGrammar
from server.runner import Job, Outcome
from server.wire.openai import Completion, CompletionChoice, CompletionRequest, Usage, is_set


@dataclass(frozen=True)
class CompletionPlan:
    """One checked completion request, read: its prompts as tokens and as text, its settings,
    its reply's head; a `RequestPlan` for `Generation.respond`."""

    gen: Generation
    request: CompletionRequest
    prompts: list[tuple[int, ...]]
    decoded: list[str]
    """Each prompt's tokens decoded, special tokens included (what steering edits)."""
    extras: Extras
    max_tokens: int | None
    grammar: JsonGrammar | None
    n: int
    head: Head
    texts: list[str]
    """Each prompt's latest user turn (else the whole prompt), for the guard."""
    stream: bool

    @classmethod
    async def read(cls, data: CompletionRequest, gen: Generation) -> CompletionPlan:
        """Read a checked request; 400 for a bad prompt, logit_bias, `n`, or `stop` with a
        grammar."""
        engine, vocab = gen.engine, gen.vocab_size
        # A 2 MB prompt takes seconds to tokenize: off the event loop, as is the echo's decoding.
        prompts = await asyncio.to_thread(text_prompts, engine.tokenizer, data.prompt, vocab)
        top = data.logprobs if is_set(data.logprobs) else None
        bias = parse_logit_bias(data.logit_bias if is_set(data.logit_bias) else None, vocab)
        extras = Extras(logit_bias=bias, logprobs=top is not None, top_logprobs=top or 0)
        max_tokens = data.max_tokens if is_set(data.max_tokens) else None
        grammar = chat_grammar(data.response_format, None)
        refuse_stop(grammar, is_set(data.stop))
        n = choices_wanted(data)
        decoded = [str(engine.tokenizer.decode(list(p))) for p in prompts]
        head = Head.new("cmpl", data.model, engine.base_hash)
        texts = [raw_user_text(t) for t in decoded]
        stream = data.stream is True
        return cls(gen, data, prompts, decoded, extras, max_tokens, grammar, n, head, texts, stream)

    def build(self, index: int, guidance: str | None) -> list[Job]:
        """Prompt `index`'s jobs, one per choice, `guidance` added to its latest user turn."""
        prompt = self.prompts[index]
        if guidance:
            tokenizer = self.gen.engine.tokenizer
            steered = steer_raw(self.decoded[index], guidance)
            prompt = single_bos(tokenizer, list(tokenizer.encode(steered)))
        return self.gen.jobs(prompt, self)

    async def echoes(self) -> list[str]:
        """Each choice's echoed prompt (empty without `echo`), decoded off the loop; called
        only once the guard has passed."""
        data = self.request
        found: list[str] = []
        for index, prompt in enumerate(self.prompts):
            echo = (
                await asyncio.to_thread(
                    _prompt_text, self.gen.engine.tokenizer, data.prompt, index, prompt
                )
                if data.echo
                else ""
            )
            found += [echo] * self.n
        return found

    async def whole(self, guarded: Guarded, outcomes: list[Outcome]) -> Completion:
        """The whole completion: one choice per outcome; each prompt is counted once."""
        choices = [
            CompletionChoice(
                index,
                echo + outcome.text,
                outcome.finish_reason,
                (
                    completion_logprobs(outcome.logprobs, TextOffsets(echo))
                    if self.extras.logprobs
                    else None
                ),
            )
            for index, (outcome, echo) in enumerate(zip(outcomes, await self.echoes(), strict=True))
        ]
        prompt_tokens = sum(o.prompt_tokens for o in outcomes[:: self.n])
        completion_tokens = sum(o.completion_tokens for o in outcomes)
        usage = Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        head = replace(self.head, guard=guarded.verdict)
        return head.build(Completion, choices, outcomes[0].adapter_version, usage)

    def streamed(self, guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]) -> Stream:
        """The pieces as server-sent events, usage last when `stream_options` asks for it."""
        head = replace(self.head, guard=guarded.verdict)
        pieces = stream_chunks(merged, head, Completion, self._choices, usage_asked(self.request))
        return stream_events(pieces, self.gen.state.metrics)

    async def _choices(self) -> _CompletionChoices:
        echoes = await self.echoes()
        return _CompletionChoices(echoes, [TextOffsets(echo) for echo in echoes], self.n)


def _prompt_text(tokenizer: Any, prompt: str | list[Any], index: int, ids: tuple[int, ...]) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt[index], str):
        return str(prompt[index])
    return str(tokenizer.decode(list(ids)))


@dataclass(frozen=True)
class _CompletionChoices:
    """Streamed completion choices: each non-empty echo first, then text pieces whose logprob
    offsets continue after their echo."""

    echoes: list[str]
    offsets: list[TextOffsets]
    n: int

    def opening(self) -> list[CompletionChoice]:
        return [CompletionChoice(i, echo, None) for i, echo in enumerate(self.echoes) if echo]

    def piece(self, index: int, delta: Delta) -> CompletionChoice:
        offsets = self.offsets[index]
        logprobs = completion_logprobs(delta.logprobs, offsets) if delta.logprobs else None
        return CompletionChoice(index, delta.text, None, logprobs)

    def finish(self, index: int, delta: Delta) -> CompletionChoice:
        return CompletionChoice(index, "", delta.finish_reason)

    def prompt_tokens(self, lasts: Mapping[int, Delta]) -> int:
        # Choices p * n to p * n + n - 1 share prompt p: count it once, from its first choice.
        firsts = range(0, len(self.echoes), self.n)
        return sum(lasts[i].prompt_tokens for i in firsts if i in lasts)
