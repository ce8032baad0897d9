"""Token counts and chat-template rendering through any tokenizer with `apply_chat_template`.

Works with a Hugging Face tokenizer or mlx-lm's `TokenizerWrapper`; the tokenizer is passed in,
so nothing here imports transformers.

Message text is text: a message that spells `<end_of_turn>` or `<bos>` must not become that
control token, or a user could close their own turn and forge another. Rendering a template to
one string and encoding it parses special tokens everywhere, so a conversation whose messages
spell a control token is encoded with transformers' `sanitize_control_tokens=True`: those
spellings are encoded as plain text, and only the tokens the template writes itself are control
tokens. That path rebuilds the tokenizer's table of added tokens on every call (35-80 ms on
Gemma's 6,384 added tokens), so a conversation whose messages spell none (almost every one) is
encoded without it: both paths give the same ids there, which a property test checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from .records import Message


class ChatTokenizer(Protocol):
    """What the data checks need from a tokenizer."""

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any:
        """Render (and by default tokenize) a conversation."""
        ...

    def encode(self, text: str, **kwargs: Any) -> Any:
        """Token ids of a text."""
        ...


Turn = Message | Mapping[str, str]
"""A message as a record holds it, or a plain `{"role", "content"}` dict."""


def hf_tokenizer(tokenizer: Any) -> Any:
    """The Hugging Face tokenizer behind mlx-lm's `TokenizerWrapper` (or the tokenizer itself).

    The wrapper's own `apply_chat_template` encodes the rendered string with special parsing
    for models whose template is Python code, so conversations go to the Hugging Face one.
    """
    inner = getattr(tokenizer, "_tokenizer", None)
    if inner is not None and hasattr(inner, "apply_chat_template"):
        return inner
    return tokenizer


def chat_ids(
    tokenizer: ChatTokenizer,
    messages: Sequence[Turn],
    *,
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
) -> list[int]:
    """Token ids of a conversation rendered with the tokenizer's chat template.

    Message content is encoded as plain text: no spelling in it becomes a special token.
    `continue_final_message` leaves the last message open, so the model continues it.
    Raises whatever the template raises (jinja2's TemplateError, ValueError).
    """
    hf = hf_tokenizer(tokenizer)
    turns = [_plain(m) for m in messages]
    result = hf.apply_chat_template(
        turns,
        tokenize=True,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        sanitize_control_tokens=_spells_control_tokens(hf, turns),
        return_dict=False,
    )
    if isinstance(result, Mapping) or hasattr(result, "keys"):
        result = result["input_ids"]
    return [int(t) for t in result]


def _spells_control_tokens(tokenizer: Any, turns: Sequence[Mapping[str, str]]) -> bool:
    """Whether any message's role or content holds a control token's spelling.

    Encoding a string with the tokenizer's added-token matching finds every such spelling; when
    the control tokens are unknown, assume the worst.
    """
    control = _control_ids(tokenizer)
    if not control:
        return True
    return any(
        not control.isdisjoint(tokenizer.encode(text, add_special_tokens=False))
        for turn in turns
        for text in (turn["role"], turn["content"])
    )


@lru_cache(maxsize=4)
def _control_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokens `sanitize_control_tokens` treats as control tokens (a superset).

    Those are the special added tokens, any the tokenizer names as chat control tokens, and the
    added tokens the chat template spells, except whitespace ones (Gemma's `"\n"`).
    """
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if not decoder:
        return frozenset()
    template = str(getattr(tokenizer, "chat_template", None) or "")
    named = set(getattr(tokenizer, "chat_control_tokens", None) or ())
    return frozenset(
        int(i)
        for i, t in decoder.items()
        if t.special or t.content in named or (t.content in template and not t.content.isspace())
    )


def _plain(message: Turn) -> dict[str, str]:
    if isinstance(message, Message):
        return {"role": message.role, "content": message.content}
    return {"role": message["role"], "content": message["content"]}


def text_tokens(tokenizer: ChatTokenizer, text: str) -> int:
    """How many tokens a piece of text is, without special tokens."""
    return len(tokenizer.encode(text, add_special_tokens=False))


def control_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The spellings of the tokenizer's special tokens, longest first (empty if unknown)."""
    return _spellings(hf_tokenizer(tokenizer))


@lru_cache(maxsize=4)
def _spellings(tokenizer: Any) -> tuple[str, ...]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if not decoder:
        return ()
    found = {t.content for t in decoder.values() if getattr(t, "special", False) and t.content}
    return tuple(sorted(found, key=lambda s: (-len(s), s)))


@lru_cache(maxsize=8)
def _pattern(spellings: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(s) for s in spellings))


def control_token_text(tokenizer: Any, text: str) -> list[str]:
    """The control-token spellings found in `text`, in order of first appearance."""
    spellings = control_tokens(tokenizer)
    if not spellings:
        return []
    return list(dict.fromkeys(m.group(0) for m in _pattern(spellings).finditer(text)))
