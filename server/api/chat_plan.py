"""A chat completion request read for the pipeline, and its reply as a completion or chunks.

`ChatPlan.read` merges the persona's system prompt and post-history instructions into the
conversation, takes the grammar from `response_format` (or the card's), and reads the budget,
logit_bias, logprobs and `n`; `whole` and `streamed` encode the outcomes in OpenAI's shapes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, replace

from litestar.response import Stream

from server.api.chunks import ready, stream_chunks, usage_asked
from server.api.guarded import Guarded, steer_messages
from server.api.logprobs import chat_logprobs
from server.api.params import Extras, parse_logit_bias
from server.api.pipeline import Generation
from server.api.prompt import chat_messages, chat_prompt, message_text
from server.api.reply import Head
from server.api.sse import stream_events
from server.api.structured import chat_grammar, refuse_stop
from server.api.unsupported import choices_wanted
from server.engine.types import Delta, JsonGrammar
from server.runner import Job, Outcome
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


@dataclass(frozen=True)
class ChatPlan:
    """One checked chat request, read: the templated conversation, its settings, its reply's
    head; a `RequestPlan` for `Generation.respond`."""

    gen: Generation
    request: ChatCompletionRequest
    messages: list[dict[str, str]]
    """The conversation as the chat template takes it, the persona's instructions folded in."""
    grammar: JsonGrammar | None
    max_tokens: int | None
    """`max_completion_tokens`, else `max_tokens`; None when neither was sent."""
    extras: Extras
    n: int
    head: Head
    texts: tuple[str]
    """The latest user message's text, for the guard."""
    stream: bool

    @classmethod
    def read(cls, data: ChatCompletionRequest, gen: Generation) -> ChatPlan:
        """Read a checked request; 400 for `stop` with a grammar, a bad logit_bias or `n`."""
        card = gen.resolved.persona.card if gen.resolved.persona else None
        grammar = chat_grammar(data.response_format, card.response_format if card else None)
        refuse_stop(grammar, is_set(data.stop))
        messages = chat_messages(
            data.messages,
            card.system_prompt if card else None,
            card.post_history_instructions if card else None,
        )
        limit = (
            data.max_completion_tokens if is_set(data.max_completion_tokens) else data.max_tokens
        )
        extras = Extras(
            logit_bias=parse_logit_bias(
                data.logit_bias if is_set(data.logit_bias) else None, gen.vocab_size
            ),
            logprobs=data.logprobs is True,
            top_logprobs=data.top_logprobs if is_set(data.top_logprobs) else 0,
        )
        return cls(
            gen,
            data,
            messages,
            grammar,
            limit if is_set(limit) else None,
            extras,
            choices_wanted(data),
            Head.new("chatcmpl", data.model, gen.engine.base_hash),
            (latest_user(data.messages),),
            data.stream is True,
        )

    def build(self, _: int, guidance: str | None) -> list[Job]:
        """The conversation's jobs, one per choice, `guidance` added to its last user turn."""
        data = self.request
        prefill = data.continue_final_message is True
        prompt = chat_prompt(
            self.gen.engine.tokenizer,
            steer_messages(self.messages, guidance),
            add_generation_prompt=not prefill and data.add_generation_prompt is not False,
            continue_final_message=prefill,
        )
        return self.gen.jobs(prompt, self)

    async def whole(self, guarded: Guarded, outcomes: list[Outcome]) -> ChatCompletion:
        """The whole chat completion: one choice per outcome."""
        head = replace(self.head, guard=guarded.verdict)
        return _completion(head, outcomes, self.extras.logprobs)

    def streamed(self, guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]) -> Stream:
        """The chunks as server-sent events, usage last when `stream_options` asks for it."""
        head = replace(self.head, guard=guarded.verdict)
        choices = ready(_ChatChoices(len(guarded.jobs)))
        usage = usage_asked(self.request)
        chunks = stream_chunks(merged, head, ChatCompletionChunk, choices, usage)
        return stream_events(chunks, self.gen.state.metrics)


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


@dataclass(frozen=True)
class _ChatChoices:
    """Streamed chat choices: a role for each of `n` first, then content deltas."""

    n: int

    def opening(self) -> list[ChunkChoice]:
        role = ChunkDelta(role="assistant", content="")
        return [ChunkChoice(i, role, None) for i in range(self.n)]

    def piece(self, index: int, delta: Delta) -> ChunkChoice:
        logprobs = ChoiceLogprobs(chat_logprobs(delta.logprobs)) if delta.logprobs else None
        return ChunkChoice(index, ChunkDelta(content=delta.text), None, logprobs)

    def finish(self, index: int, delta: Delta) -> ChunkChoice:
        return ChunkChoice(index, ChunkDelta(), delta.finish_reason)

    def prompt_tokens(self, lasts: Mapping[int, Delta]) -> int:
        # Every choice answers the one prompt.
        return lasts[0].prompt_tokens
