"""Tokenize conversations for training, with a loss mask over every assistant turn.

The conversation is rendered with the tokenizer's chat template once as a whole, and once up to
each assistant turn (with and without the generation prompt). Each shorter rendering must be a
token prefix of the whole, which is what makes the mask exact: the tokens between "prompt before
turn k" and "conversation through turn k" are turn k's reply, up to and including its end-of-turn
token, and only those carry loss. Template tokens after the end-of-turn (Gemma's newline) do not.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from data.dataset import Row
from data.problem import Problem, error
from data.records import Message, as_messages, with_system
from data.tokens import ChatTokenizer, chat_ids


@dataclass(frozen=True, eq=False)
class Example:
    """One tokenized training row."""

    tokens: np.ndarray
    """int32 token ids of the whole rendered conversation, `<bos>` included."""
    learn: np.ndarray
    """bool per token: True where the token is part of an assistant reply to learn."""
    where: str
    """`file:line` of the row."""

    @property
    def length(self) -> int:
        """Number of tokens."""
        return int(self.tokens.shape[0])

    @property
    def targets(self) -> int:
        """Number of tokens that carry loss."""
        return int(self.learn[1:].sum())


class TemplateError(ValueError):
    """The chat template does not render a conversation incrementally."""


def encode_messages(
    tokenizer: ChatTokenizer, messages: Sequence[Message], stop_ids: Collection[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of a conversation and the mask of assistant tokens (end-of-turn included)."""
    full = chat_ids(tokenizer, messages)
    learn = np.zeros(len(full), dtype=bool)
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        start = len(_prefix(tokenizer, messages, index, full, generation_prompt=True))
        stop = len(_prefix(tokenizer, messages, index + 1, full, generation_prompt=False))
        ends = [k for k in range(start, stop) if full[k] in stop_ids]
        # The template may add tokens after the end-of-turn (a newline); they are not the reply.
        learn[start : (ends[-1] + 1 if ends else stop)] = True
    return np.asarray(full, dtype=np.int32), learn


def _prefix(
    tokenizer: ChatTokenizer,
    messages: Sequence[Message],
    count: int,
    full: list[int],
    *,
    generation_prompt: bool,
) -> list[int]:
    ids = chat_ids(tokenizer, messages[:count], add_generation_prompt=generation_prompt)
    if full[: len(ids)] != ids:
        raise TemplateError(
            f"the rendering of messages[:{count}] is not a token prefix of the whole "
            "conversation, so its assistant turns cannot be masked exactly"
        )
    return ids


def encode_rows(
    rows: Sequence[Row],
    tokenizer: ChatTokenizer,
    system_prompt: str | None,
    stop_ids: Collection[int],
    max_seq_length: int,
) -> tuple[list[Example], list[Problem]]:
    """Tokenize rows (the card's system prompt first unless a row has its own); list problems."""
    examples: list[Example] = []
    problems: list[Problem] = []
    for row in rows:
        messages = with_system(as_messages(row.record), system_prompt)
        try:
            tokens, learn = encode_messages(tokenizer, messages, stop_ids)
        except TemplateError as exc:
            problems.append(error(row.file, row.line, str(exc)))
            continue
        if len(tokens) > max_seq_length:
            problems.append(
                error(
                    row.file,
                    row.line,
                    f"{len(tokens)} tokens exceeds max_seq_length {max_seq_length}; "
                    "training would cut the reply",
                )
            )
            continue
        if not learn[1:].any():
            problems.append(error(row.file, row.line, "no assistant tokens to learn"))
            continue
        examples.append(Example(tokens, learn, row.where))
    return examples, problems
