"""Turn request messages or prompts into the token ids the engine runs.

The persona's system prompt goes first unless the request brings its own system message. The chat
template adds the generation prompt and the one `<bos>`; a duplicate `<bos>` is dropped (from
templates, text and token-id prompts alike), because Gemma degrades with two as it does with none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data.tokens import chat_ids
from server.errors import InvalidRequestError, UnsupportedError
from server.wire.openai import ChatMessage, is_set


def message_text(message: ChatMessage, index: int) -> str:
    """The text of one message; refuse content parts other than text."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for n, part in enumerate(content):
        if part.type != "text":
            raise UnsupportedError(
                f"messages[{index}].content[{n}] is of type '{part.type}'; "
                "only text content parts are supported",
                param=f"messages[{index}].content[{n}].type",
            )
        if not isinstance(part.text, str):
            raise InvalidRequestError(
                f"messages[{index}].content[{n}] has no 'text'",
                param=f"messages[{index}].content[{n}].text",
            )
        texts.append(part.text)
    return "".join(texts)


def chat_messages(
    messages: Sequence[ChatMessage], system_prompt: str | None, post_history: str | None = None
) -> list[dict[str, str]]:
    """Plain role/content dicts for the chat template, every system message folded in.

    Refuses tool calls by name; the folding is `fold_turns`'s.
    """
    pairs: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        for name in ("tool_calls", "function_call"):
            value = getattr(message, name)
            if is_set(value) and value != []:
                raise UnsupportedError(
                    f"messages[{index}].{name} is not supported: this server does not call tools",
                    param=f"messages[{index}].{name}",
                )
        pairs.append((message.role, message_text(message, index)))
    return fold_turns(pairs, system_prompt, post_history)


def fold_turns(
    pairs: Sequence[tuple[str, str]],
    system_prompt: str | None,
    post_history: str | None = None,
    instructions: str | None = None,
) -> list[dict[str, str]]:
    """(role, text) pairs as role/content dicts for the chat template, on every route.

    Gemma has no system turn, so system and developer messages are folded in one way wherever
    they stand: `instructions` (the Responses API's) and those before the first user or
    assistant message form the system block (which replaces the persona's system prompt, and
    which the template puts at the start of the first turn); a later one goes at the start of
    the next user message, separated by a blank line, or becomes a user message of its own when
    no user message follows. A conversation of system messages alone is therefore one user turn.

    `post_history` (a card's post-history instructions) goes after the conversation, at the end
    of the last user turn, whenever the persona's own system prompt is used.
    """
    system: list[str] = [instructions] if instructions else []
    turns: list[dict[str, str]] = []
    pending: list[str] = []
    for role, text in pairs:
        if role in ("system", "developer"):
            (pending if turns else system).append(text)
            continue
        if pending and role == "user":
            text = "\n\n".join([*pending, text])
            pending = []
        turns.append({"role": role, "content": text})
    if pending:
        turns.append({"role": "user", "content": "\n\n".join(pending)})
    if not turns:
        return [{"role": "user", "content": "\n\n".join(system)}]
    if not system and system_prompt:
        system.append(system_prompt)
        if post_history and turns[-1]["role"] == "user":
            turns[-1] = {"role": "user", "content": f"{turns[-1]['content']}\n\n{post_history}"}
    if system:
        return [{"role": "system", "content": "\n\n".join(system)}, *turns]
    return turns


def chat_prompt(
    tokenizer: Any,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
) -> tuple[int, ...]:
    """Token ids of the conversation through the model's chat template.

    Message text never becomes a control token (see `data.tokens.chat_ids`). With
    `continue_final_message` the last (assistant) message stays open and the model continues it.
    """
    from jinja2 import TemplateError

    try:
        ids = chat_ids(
            tokenizer,
            messages,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
        )
    except (TemplateError, ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"the chat template refused these messages: {exc}", param="messages"
        ) from None
    return single_bos(tokenizer, ids)


MAX_PROMPTS = 32
"""Most prompts one `/v1/completions` request may hold."""


def text_prompts(tokenizer: Any, prompt: str | list[Any], vocab_size: int) -> list[tuple[int, ...]]:
    """Token ids of each completion prompt: one text, token ids, or a list of either.

    Text is encoded with special tokens parsed (the caller writes the whole prompt); token ids
    are checked and kept. Either way a prompt starts with at most one `<bos>`.
    """
    if isinstance(prompt, str) or (prompt and all(isinstance(t, int) for t in prompt)):
        prompts: list[Any] = [prompt]
    elif prompt and (
        all(isinstance(p, str) for p in prompt) or all(isinstance(p, list) for p in prompt)
    ):
        prompts = list(prompt)
    elif not prompt:
        raise InvalidRequestError("prompt must not be empty", param="prompt")
    else:
        raise InvalidRequestError(
            "prompt must be a string, a list of token ids, or a list of either kind alone",
            param="prompt",
        )
    if len(prompts) > MAX_PROMPTS:
        raise InvalidRequestError(
            f"prompt holds {len(prompts)} prompts; at most {MAX_PROMPTS} per request",
            param="prompt",
        )
    listed = len(prompts) > 1
    return [_one_prompt(tokenizer, p, i, vocab_size, listed) for i, p in enumerate(prompts)]


def _one_prompt(
    tokenizer: Any, prompt: str | list[Any], index: int, vocab_size: int, listed: bool
) -> tuple[int, ...]:
    where = f"prompt[{index}]" if listed else "prompt"
    if isinstance(prompt, str):
        return single_bos(tokenizer, list(tokenizer.encode(prompt)))
    if not prompt:
        raise InvalidRequestError(f"{where} must not be empty", param="prompt")
    for position, token in enumerate(prompt):
        if not isinstance(token, int) or not 0 <= token < vocab_size:
            raise InvalidRequestError(
                f"{where}[{position}] = {token!r} is not a token id (vocabulary size {vocab_size})",
                param="prompt",
            )
    return single_bos(tokenizer, list(prompt))


def single_bos(tokenizer: Any, ids: list[int]) -> tuple[int, ...]:
    """Drop a doubled leading BOS (a template's plus the tokenizer's, or one in the text)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    while bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids.pop(0)
    return tuple(ids)
