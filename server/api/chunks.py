"""The loop streamed chat and text completions share: merged deltas in, wire chunks out.

`stream_chunks` owns what the two have in common: the adapter version read from the first
delta, the opening chunks sent once, a chunk for each delta with text or logprobs, one for each
choice's finish, `usage: null` on every chunk but the last when usage was asked for, and the
engine's iterator closed however the stream ends. Each endpoint says only how its choices look
(a `ChoiceBuilder`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from msgspec import UNSET

from server.api.reply import Head
from server.engine.types import Delta
from server.wire.openai import SamplingFields, Usage, is_set

T = TypeVar("T")
B = TypeVar("B")


class ChoiceBuilder(Protocol):
    """One endpoint's streamed choices (chat's `ChunkChoice`, completions' `CompletionChoice`)."""

    def opening(self) -> list[Any]:
        """The choices sent once, before any piece: chat's roles, completions' echoes."""
        ...

    def piece(self, index: int, delta: Delta) -> Any:
        """Choice `index`'s new text and logprobs."""
        ...

    def finish(self, index: int, delta: Delta) -> Any:
        """Choice `index`'s end, carrying `delta.finish_reason`."""
        ...

    def prompt_tokens(self, lasts: Mapping[int, Delta]) -> int:
        """The usage chunk's prompt tokens, each prompt counted once, from each choice's last
        delta."""
        ...


def usage_asked(request: SamplingFields) -> bool:
    """Whether `stream_options.include_usage` asks for a usage chunk last."""
    return is_set(request.stream_options) and request.stream_options.include_usage is True


def ready(choices: B) -> Callable[[], Awaitable[B]]:
    """`choices`, for `stream_chunks`, when nothing needs awaiting to make them."""

    async def made() -> B:
        return choices

    return made


async def stream_chunks(
    merged: AsyncGenerator[tuple[int, Delta], None],
    head: Head,
    kind: Callable[..., T],
    choices: Callable[[], Awaitable[ChoiceBuilder]],
    include_usage: bool,
) -> AsyncIterator[T]:
    """Every chunk of one streamed reply, each a `kind` built by `head` around one choice, the
    usage chunk last when `include_usage`; `choices()` is awaited first (completions decode
    their echoes there) and `merged` is closed whatever happens, a failure there included."""
    # OpenAI sends `usage: null` on every chunk but the last when usage was asked for.
    usage: Any = None if include_usage else UNSET
    lasts: dict[int, Delta] = {}
    version: str | None = None
    try:
        build = await choices()
        async for index, delta in merged:
            if not lasts:
                version = delta.adapter_version
                for opening in build.opening():
                    yield head.build(kind, [opening], version, usage)
            lasts[index] = delta
            if delta.text or delta.logprobs:
                yield head.build(kind, [build.piece(index, delta)], version, usage)
            if delta.finish_reason is not None:
                yield head.build(kind, [build.finish(index, delta)], version, usage)
    finally:
        await merged.aclose()
    if include_usage and lasts:
        prompt = build.prompt_tokens(lasts)
        completion = sum(d.token_count for d in lasts.values())
        yield head.build(kind, [], version, Usage(prompt, completion, prompt + completion))
