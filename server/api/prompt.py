"""Turn request messages or prompts into the token ids the engine runs.

The persona's system prompt goes first unless the request brings its own system message. The chat
template adds the generation prompt and the one `<bos>`; a duplicate `<bos>` is dropped, because
Gemma degrades with two as it does with none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.api.wire import ChatMessage, is_set
from server.errors import InvalidRequestError, UnsupportedError


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
    """Plain role/content dicts for the chat template, leading system messages folded into one.

    `post_history` (a card's post-history instructions) goes after the conversation, at the end
    of the last user turn, whenever the persona's own system prompt is used: Gemma's template
    has no system turn after the start.
    """
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        for name in ("tool_calls", "function_call"):
            if is_set(getattr(message, name)):
                raise UnsupportedError(
                    f"messages[{index}].{name} is not supported: this server does not call tools",
                    param=f"messages[{index}].{name}",
                )
        text = message_text(message, index)
        if message.role in ("system", "developer"):
            if turns:
                raise InvalidRequestError(
                    f"messages[{index}] is a {message.role} message after the conversation "
                    "started; system messages must come first",
                    param=f"messages[{index}].role",
                )
            system.append(text)
            continue
        turns.append({"role": message.role, "content": text})
    if not turns:
        raise InvalidRequestError(
            "messages must include at least one user or assistant message", param="messages"
        )
    if not system and system_prompt:
        system.append(system_prompt)
        if post_history and turns[-1]["role"] == "user":
            turns[-1] = {"role": "user", "content": f"{turns[-1]['content']}\n\n{post_history}"}
    if system:
        return [{"role": "system", "content": "\n\n".join(system)}, *turns]
    return turns


def chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[int, ...]:
    """Apply the model's chat template with the generation prompt; return token ids."""
    from jinja2 import TemplateError

    try:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    except (TemplateError, ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"the chat template refused these messages: {exc}", param="messages"
        ) from None
    return single_bos(tokenizer, [int(i) for i in ids])


def text_prompt(tokenizer: Any, prompt: str | list[Any], vocab_size: int) -> tuple[int, ...]:
    """Token ids of a completion prompt: text is encoded, token ids are checked and kept."""
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return single_bos(tokenizer, list(tokenizer.encode(prompt)))
    if not prompt:
        raise InvalidRequestError("prompt must not be empty", param="prompt")
    if not all(isinstance(token, int) for token in prompt):
        raise UnsupportedError(
            "send one prompt per request; batched prompts are not supported", param="prompt"
        )
    for position, token in enumerate(prompt):
        if not 0 <= token < vocab_size:
            raise InvalidRequestError(
                f"prompt[{position}] = {token} is not a token id (vocabulary size {vocab_size})",
                param="prompt",
            )
    return tuple(prompt)


def single_bos(tokenizer: Any, ids: list[int]) -> tuple[int, ...]:
    """Drop a doubled leading BOS (a template's plus the tokenizer's, or one in the text)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    while bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
        ids.pop(0)
    return tuple(ids)
