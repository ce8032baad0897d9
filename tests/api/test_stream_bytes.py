"""The exact bytes of streamed chat and text completions, from scripted deltas.

Each case feeds a plan's `streamed` a script of merged (choice index, Delta) pairs and compares
every SSE byte with a file in tests/fixtures/streams/: the opening chunks, `usage: null` on all
but the last chunk when usage is asked for, echoes first, prompts counted once. The rest check
that the engine's iterator is closed when the client leaves early (Responses too) or the echo
cannot be decoded.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from server.api.chat_plan import ChatPlan
from server.api.completion_plan import CompletionPlan
from server.api.guarded import Guarded
from server.api.params import Extras
from server.api.pipeline import Generation
from server.api.reply import Head
from server.api.response_events import Draft, events, sse
from server.engine.types import Delta, TokenLogprob
from server.metrics import ServerMetrics
from server.wire.openai import ChatCompletionRequest, CompletionRequest
from server.wire.responses import ResponsesRequest

STREAMS = Path(__file__).parent.parent / "fixtures" / "streams"
CREATED = 1_700_000_000
VERSION = "run-1:10"


def lp(token: str) -> tuple[TokenLogprob, ...]:
    raw = tuple(token.encode())
    return (TokenLogprob(token, -0.5, raw, ((token, -0.5, raw), ("?", -2.0, (63,)))),)


@dataclass
class Script:
    """A merged-delta iterator that records whether it ran to its end and was closed."""

    pairs: Sequence[tuple[int, Delta]]
    finished: bool = False
    closed: bool = False
    gen: AsyncGenerator[tuple[int, Delta], None] = field(init=False)

    def __post_init__(self) -> None:
        self.gen = self._run()

    async def _run(self) -> AsyncGenerator[tuple[int, Delta], None]:
        try:
            for pair in self.pairs:
                yield pair
            self.finished = True
        finally:
            self.closed = True


class Tokenizer:
    """Decodes ids as `<ids …>`, or fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def decode(self, ids: list[int]) -> str:
        if self.fail:
            raise RuntimeError("cannot decode")
        return "<ids " + " ".join(map(str, ids)) + ">"


@dataclass
class State:
    metrics: ServerMetrics = field(default_factory=lambda: ServerMetrics(4, lambda: None))


@dataclass
class Engine:
    tokenizer: Tokenizer


def generation(tokenizer: Tokenizer | None = None) -> Generation:
    engine: Any = Engine(tokenizer or Tokenizer())
    return Generation(State(), engine, runner=None, resolved=None)  # type: ignore[arg-type]


def chat_plan(body: dict[str, Any], n: int) -> ChatPlan:
    full = {"model": "pip", "messages": [{"role": "user", "content": "hi"}], **body}
    request = msgspec.convert(full, ChatCompletionRequest)
    return ChatPlan(
        gen=generation(),
        request=request,
        messages=[],
        grammar=None,
        max_tokens=None,
        extras=Extras(logprobs=request.logprobs is True),
        n=n,
        head=Head("chatcmpl-fixed", CREATED, "pip", "base-hash"),
        texts=("",),
        stream=True,
    )


def completion_plan(
    body: dict[str, Any], prompts: list[tuple[int, ...]], n: int, tokenizer: Tokenizer | None = None
) -> CompletionPlan:
    request = msgspec.convert({"model": "pip", **body}, CompletionRequest)
    top = request.logprobs if isinstance(request.logprobs, int) else None
    return CompletionPlan(
        gen=generation(tokenizer),
        request=request,
        prompts=prompts,
        decoded=["" for _ in prompts],
        extras=Extras(logprobs=top is not None, top_logprobs=top or 0),
        max_tokens=None,
        grammar=None,
        n=n,
        head=Head("cmpl-fixed", CREATED, "pip", "base-hash"),
        texts=["" for _ in prompts],
        stream=True,
    )


async def wire(plan: ChatPlan | CompletionPlan, jobs: int, script: Script) -> bytes:
    response = plan.streamed(Guarded([None] * jobs, UNSET), script.gen)  # type: ignore[list-item]
    return b"".join([part async for part in response.iterator])  # type: ignore[union-attr]


def chat_two_choices_usage_logprobs() -> tuple[ChatPlan, int, Script]:
    body = {"stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 1}
    script = Script(
        [
            (0, Delta(" a", 1, 7, lp(" a"), adapter_version=VERSION)),
            (1, Delta(" b", 1, 7, lp(" b"), adapter_version=VERSION)),
            (1, Delta("", 2, 7, finish_reason="length", adapter_version=VERSION)),
            (0, Delta(" c", 2, 7, lp(" c"), finish_reason="stop", adapter_version=VERSION)),
        ]
    )
    return chat_plan(body, 2), 2, script


def chat_one_choice_plain() -> tuple[ChatPlan, int, Script]:
    script = Script(
        [
            (0, Delta("hi", 1, 3)),
            (0, Delta("", 1, 3, lp("\ufffd"))),
            (0, Delta("!", 2, 3, finish_reason="length")),
        ]
    )
    return chat_plan({"stream_options": {"include_usage": False}}, 1), 1, script


def completion_echo_two_prompts_n2_usage() -> tuple[CompletionPlan, int, Script]:
    body = {
        "prompt": ["Once", "The"],
        "echo": True,
        "logprobs": 1,
        "stream_options": {"include_usage": True},
    }
    script = Script(
        [
            (2, Delta(" x", 1, 3, lp(" x"), adapter_version=VERSION)),
            (0, Delta(" y", 1, 2, lp(" y"), adapter_version=VERSION)),
            (1, Delta("", 1, 2, finish_reason="length", adapter_version=VERSION)),
            (3, Delta(" z", 1, 3, lp(" z"), finish_reason="stop", adapter_version=VERSION)),
            (0, Delta("", 2, 2, finish_reason="stop", adapter_version=VERSION)),
            (2, Delta(" w", 2, 3, lp(" w"), finish_reason="length", adapter_version=VERSION)),
        ]
    )
    return completion_plan(body, [(2, 9), (2, 8, 7)], 2), 4, script


def completion_token_prompt_echo() -> tuple[CompletionPlan, int, Script]:
    body = {"prompt": [[2, 818]], "echo": True, "stream_options": {"include_usage": True}}
    script = Script([(0, Delta(" q", 1, 2)), (0, Delta(" r", 2, 2, finish_reason="length"))])
    return completion_plan(body, [(2, 818)], 1), 1, script


def completion_plain() -> tuple[CompletionPlan, int, Script]:
    script = Script([(0, Delta(" q", 1, 2)), (0, Delta("", 1, 2, finish_reason="stop"))])
    return completion_plan({"prompt": "Once"}, [(2, 9)], 1), 1, script


CASES: dict[str, Callable[[], tuple[Any, int, Script]]] = {
    "chat_two_choices_usage_logprobs": chat_two_choices_usage_logprobs,
    "chat_one_choice_plain": chat_one_choice_plain,
    "completion_echo_two_prompts_n2_usage": completion_echo_two_prompts_n2_usage,
    "completion_token_prompt_echo": completion_token_prompt_echo,
    "completion_plain": completion_plain,
}


@pytest.mark.parametrize("name", CASES)
async def test_streamed_bytes_match_the_pinned_stream(name: str) -> None:
    plan, jobs, script = CASES[name]()
    sent = await wire(plan, jobs, script)
    assert sent == (STREAMS / f"{name}.sse").read_bytes()
    assert script.finished
    assert script.closed


def test_pinned_completion_stream_counts_each_prompt_once() -> None:
    # The pinned file is only a proof if it says what it should: echoes first, usage last.
    events = (STREAMS / "completion_echo_two_prompts_n2_usage.sse").read_bytes().split(b"\n\n")
    chunks = [msgspec.json.decode(e[len(b"data: ") :]) for e in events[:-2]]
    assert events[-2:] == [b"data: [DONE]", b""]
    assert [c["choices"][0]["text"] for c in chunks[:4]] == ["Once", "Once", "The", "The"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    assert chunks[-1]["choices"] == []
    assert all(c["usage"] is None for c in chunks[:-1])


@pytest.mark.parametrize("name", ["chat_two_choices_usage_logprobs", "completion_plain"])
async def test_a_client_leaving_early_closes_the_engine_iterator(name: str) -> None:
    plan, jobs, script = CASES[name]()
    response = plan.streamed(Guarded([None] * jobs, UNSET), script.gen)
    frames: AsyncIterator[bytes] = response.iterator
    first = await anext(frames)
    assert first.startswith(b"data: {")
    await frames.aclose()  # type: ignore[attr-defined]
    assert script.closed
    assert not script.finished


async def test_an_echo_that_cannot_be_decoded_closes_the_engine_iterator() -> None:
    body = {"prompt": [[2, 818]], "echo": True}
    plan = completion_plan(body, [(2, 818)], 1, Tokenizer(fail=True))
    script = Script([(0, Delta(" q", 1, 2, finish_reason="length"))])
    sent = await wire(plan, 1, script)
    assert b'"code":"internal_error"' in sent
    assert b"[DONE]" not in sent
    assert script.gen.ag_frame is None
    assert not script.finished


async def test_a_responses_client_leaving_at_the_first_event_closes_the_engine_iterator() -> None:
    request = msgspec.convert({"model": "pip", "input": "hi"}, ResponsesRequest)
    draft = Draft("resp_x", "msg_x", CREATED, request, 1.0, 1.0, {"type": "text"}, [], [])
    script = Script([(0, Delta(" a", 1, 2)), (0, Delta("", 1, 2, finish_reason="stop"))])
    state: Any = State()
    frames: AsyncIterator[bytes] = sse(events(draft, script.gen, state), state).iterator
    first = await anext(frames)
    assert first.startswith(b"event: response.created\ndata: {")
    await frames.aclose()  # type: ignore[attr-defined]
    assert script.closed
    assert not script.finished
