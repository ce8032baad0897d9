"""Token counts and chat-template rendering through any tokenizer with `apply_chat_template`.

Works with a Hugging Face tokenizer or mlx-lm's `TokenizerWrapper`; the tokenizer is passed in,
so nothing here imports transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def chat_ids(
    tokenizer: ChatTokenizer, messages: Sequence[Message], *, add_generation_prompt: bool = False
) -> list[int]:
    """Token ids of a conversation rendered with the tokenizer's chat template."""
    result = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=True,
        add_generation_prompt=add_generation_prompt,
    )
    if isinstance(result, Mapping) or hasattr(result, "keys"):
        result = result["input_ids"]
    return [int(t) for t in result]


def text_tokens(tokenizer: ChatTokenizer, text: str) -> int:
    """How many tokens a piece of text is, without special tokens."""
    return len(tokenizer.encode(text, add_special_tokens=False))
