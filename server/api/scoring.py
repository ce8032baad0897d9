"""Scoring a known reply through chat completions: vLLM's echo of the final message, teacher-forced.

A request whose messages end with the assistant reply to score, with `continue_final_message:
true`, `add_generation_prompt: false`, `echo: true`, `max_tokens: 0` and `logprobs: true`,
returns a standard chat completion whose message is that reply (echoed, as vLLM echoes the
final message) and whose `logprobs.content` holds one entry per token of it: the log probability
the served model (the persona's adapter, with its system prompt and post-history instructions, as
for a generated reply) gives that token after everything before it. `finish_reason` is `length`
(no token was generated) and `usage.prompt_tokens` counts the whole conversation.
"""

from __future__ import annotations

from server.api.logprobs import chat_logprobs
from server.api.models import Resolved
from server.api.prompt import chat_messages, chat_prompt, message_text
from server.api.reply import Head
from server.engine.types import ScoreRequest
from server.errors import InvalidRequestError, UnsupportedError
from server.runner import score
from server.state import ServerState
from server.wire.openai import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChoiceLogprobs,
    Usage,
    is_set,
)


def wants_score(request: ChatCompletionRequest) -> bool:
    """Whether the request asks to score its final message rather than to generate."""
    return request.echo is True


def check_score(request: ChatCompletionRequest) -> None:
    """Refuse what a scoring request cannot honour, by name."""
    if request.continue_final_message is not True:
        raise UnsupportedError(
            "'echo' is not supported without continue_final_message: true; echo scores the "
            "final (assistant) message",
            param="echo",
        )
    budget = (
        request.max_completion_tokens
        if is_set(request.max_completion_tokens)
        else request.max_tokens
    )
    if budget != 0:
        raise UnsupportedError(
            "'echo' is not supported with max_tokens above 0: it scores the final message "
            "and generates nothing after it; send max_tokens: 0",
            param="echo",
        )
    if request.stream is True:
        raise UnsupportedError("'stream' is not supported with echo", param="stream")
    if is_set(request.n) and request.n not in (None, 1):
        raise UnsupportedError("'n' must be 1 with echo: a score has one choice", param="n")
    if len(request.messages) < 2:
        raise InvalidRequestError(
            "scoring needs the conversation before the final assistant message", param="messages"
        )


async def score_final_message(
    request: ChatCompletionRequest, state: ServerState, resolved: Resolved
) -> ChatCompletion:
    """The final message echoed with its teacher-forced token logprobs."""
    check_score(request)
    engine, _ = state.require_runner()
    card = resolved.persona.card if resolved.persona else None
    system = card.system_prompt if card else None
    post = card.post_history_instructions if card else None
    # The prompt is rendered exactly as for a reply to the conversation before the final message.
    before = chat_messages(request.messages[:-1], system, post)
    if before[-1]["role"] != "user":
        raise InvalidRequestError(
            "the message before the scored reply must be a user message", param="messages"
        )
    reply = message_text(request.messages[-1], len(request.messages) - 1)
    if not reply.strip():
        raise InvalidRequestError("the final message is empty: nothing to score", param="messages")
    prompt = chat_prompt(engine.tokenizer, before, add_generation_prompt=True)
    full = chat_prompt(
        engine.tokenizer,
        [*before, {"role": "assistant", "content": reply}],
        add_generation_prompt=False,
        continue_final_message=True,
    )
    if len(full) <= len(prompt) or full[: len(prompt)] != prompt:
        raise InvalidRequestError(
            "the chat template does not render the final message after the reply prompt, so "
            "it cannot be scored",
            param="messages",
        )
    top = request.top_logprobs if is_set(request.top_logprobs) and request.top_logprobs else 0
    items = await score(engine, ScoreRequest(full, len(prompt), resolved.adapter, top))
    choice = ChatChoice(
        index=0,
        message=AssistantMessage(role="assistant", content=reply),
        finish_reason="length",
        logprobs=ChoiceLogprobs(chat_logprobs(items)) if request.logprobs is True else None,
    )
    version = resolved.adapter.manifest.version if resolved.adapter is not None else None
    head = Head.new("chatcmpl", request.model, engine.base_hash)
    return head.build(ChatCompletion, [choice], version, Usage(len(full), 0, len(full)))
