"""The generation pipeline chat, completions and Responses share: start, plan, guard, then run.

Each endpoint keeps what is its own in one module beside this one (chat_plan.py,
completion_plan.py, response_plan.py): reading its request into prompts, and encoding outcomes
as its wire type. The steps between are written once here, in the order every endpoint needs:
the engine (503 while it loads) and the model (404 when unknown) first, then the jobs of every
prompt built off the event loop, the grammar compiled, the guard consulted, and the jobs run
whole or streamed. A handler calls `Generation.start`, reads its request into a `RequestPlan`,
then `respond`; a client that leaves at any step gets no answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from litestar import Response
from litestar.types import Receive

from server.api.engine_job import fan_out, plan_engine_job
from server.api.guarded import Guarded, guard_jobs
from server.api.models import Resolved, resolve
from server.api.params import Extras
from server.api.sse import disconnected
from server.api.structured import prepare
from server.engine.types import Delta, JsonGrammar
from server.runner import ClientDisconnectedError, Job, Outcome, Runner
from server.state import ServerState
from server.wire.openai import SamplingFields

if TYPE_CHECKING:
    from server.engine.engine import Engine


@dataclass(frozen=True)
class Generation:
    """One request's engine, runner and resolved model: what every step below works with."""

    state: ServerState
    engine: Engine
    runner: Runner
    resolved: Resolved

    @classmethod
    def start(cls, state: ServerState, model: str) -> Generation:
        """The engine and the request's model; 503 while loading, 404 for an unknown model."""
        engine, runner = state.require_runner()
        return cls(state, engine, runner, resolve(state, model))

    @property
    def vocab_size(self) -> int:
        """How many token ids the model accepts (for logit_bias and token prompts)."""
        size = getattr(self.engine, "vocab_size", None)
        return int(size) if size else len(self.engine.tokenizer)

    def jobs(self, prompt: tuple[int, ...], plan: JobSettings) -> list[Job]:
        """One prompt's jobs under `plan`'s settings: defaults merged and context fitted,
        `plan.n` choices fanned out."""
        job = plan_engine_job(
            self.state,
            self.engine,
            self.resolved,
            prompt,
            plan.request,
            max_tokens=plan.max_tokens,
            extras=plan.extras,
            grammar=plan.grammar,
        )
        return fan_out(job, plan.n)

    async def guarded(self, plan: RequestPlan, receive: Receive) -> Guarded:
        """Every prompt's jobs (`plan.build(i, None)`, `plan.texts[i]` its latest user text),
        after the grammar compiles and the guard has screened them; a bad request fails before
        the guard.

        Raises ClientDisconnectedError when the client leaves while the guard checks replies.
        """
        build, texts = plan.build, plan.texts
        # 10,000 messages or a 2 MB prompt take seconds to render and tokenize: off the loop.
        plain = await asyncio.to_thread(lambda: [build(i, None) for i in range(len(texts))])
        await prepare(self.engine, plan.grammar)
        return await guard_jobs(
            self.state,
            self.engine,
            self.resolved,
            texts,
            lambda i, guidance: plain[i] if guidance is None else build(i, guidance),
            receive,
        )

    async def respond(self, plan: RequestPlan, receive: Receive) -> Response[Any]:
        """Guard, run and encode: `plan.streamed(guarded, deltas)` when `plan.stream`, else
        the body `await plan.whole(guarded, outcomes)`; an empty 499 once the client has gone."""
        try:
            guarded = await self.guarded(plan, receive)
        except ClientDisconnectedError:
            return disconnected()
        if plan.stream:
            merged = await self.runner.open(guarded.jobs, receive)
            return disconnected() if merged is None else plan.streamed(guarded, merged)
        try:
            outcomes = await self.runner.collect(guarded.jobs, receive)
        except ClientDisconnectedError:
            return disconnected()
        return Response(await plan.whole(guarded, outcomes))


class JobSettings(Protocol):
    """What a plan read that every one of its jobs shares, for `Generation.jobs`."""

    @property
    def request(self) -> SamplingFields:
        """The checked request: its sampling fields over the persona's defaults."""
        ...

    @property
    def max_tokens(self) -> int | None:
        """The request's token budget, or None for the persona's."""
        ...

    @property
    def extras(self) -> Extras:
        """logit_bias and logprobs, which have no persona default."""
        ...

    @property
    def grammar(self) -> JsonGrammar | None:
        """The JSON grammar every job decodes under, or None."""
        ...

    @property
    def n(self) -> int:
        """How many choices each prompt gets."""
        ...


class RequestPlan(Protocol):
    """What an endpoint read from its request, and how it encodes the outcome: every prompt's
    jobs, their latest user texts, the grammar, and the whole and streamed reply."""

    @property
    def texts(self) -> Sequence[str]:
        """Each prompt's latest user text, for the guard."""
        ...

    @property
    def grammar(self) -> JsonGrammar | None:
        """The JSON grammar every job decodes under, or None."""
        ...

    @property
    def stream(self) -> bool:
        """Whether the client asked for a stream."""
        ...

    def build(self, index: int, guidance: str | None) -> list[Job]:
        """Prompt `index`'s jobs, one per choice, steered by `guidance` when given."""
        ...

    async def whole(self, guarded: Guarded, outcomes: list[Outcome]) -> Any:
        """The whole reply's body, from every job's outcome in job order."""
        ...

    def streamed(
        self, guarded: Guarded, merged: AsyncGenerator[tuple[int, Delta], None]
    ) -> Response[Any]:
        """The streamed reply, from the merged deltas (job index, delta)."""
        ...
