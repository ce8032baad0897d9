"""A scripted stand-in for the server client: canned answers, replies streamed word by word."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import msgspec
from fake_jobs import eval_result, training_events
from textual.app import App
from textual.pilot import Pilot

from data.card import load_card
from data.personas import sample_personas_dir
from server.jobs.types import (
    EvalProgress,
    EvalRun,
    FineTuningJob,
    Hyperparameters,
    JobEvent,
    Method,
)
from tui.api import ApiClient, ApiError, ServerHealth
from tui.wire import (
    AdapterEvent,
    ChatMessage,
    CheckpointInfo,
    DataCheck,
    DatasetStats,
    LoadError,
    Model,
    PersonaAdapters,
    PersonaGuard,
    PersonaInfo,
    ReplyPiece,
    ResolvedSampling,
    RunInfo,
    SamplingOverrides,
)


def record_notes(app: App[None]) -> list[str]:
    """Keep every notification ("title: message") even after its toast times out."""
    log: list[str] = []
    original = app.notify

    def notify(message: str, *, title: str = "", **options: Any) -> None:
        log.append(f"{title}: {message}")
        original(message, title=title, **options)

    app.notify = notify  # type: ignore[method-assign]
    app.notes_log = log  # type: ignore[attr-defined]
    return log


def notes(app: App[None]) -> list[str]:
    """Every notification shown so far, as "title: message"."""
    return list(app.notes_log)  # type: ignore[attr-defined]


async def wait_for(pilot: Pilot[None], ready: Callable[[], bool], seconds: float = 120) -> None:
    """Let the app run until `ready()` holds (subprocesses take as long as the machine makes
    them); a deadline in wall-clock time, checked often but cheaply."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {seconds} s")
        await asyncio.sleep(0.1)
    await pilot.pause()


async def settle(pilot: Pilot[None]) -> None:
    """Let every running worker finish, then let the screen catch up."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


JUNI = PersonaInfo(
    id="juni",
    display_name="Juni Pebblewick",
    description="A curious young otter who keeps the little lighthouse.",
    system_prompt="You are Juni.",
    base_model="embedded",
    # The sample card's [sampling] over the embedded model's generation config (top_k 64).
    defaults=ResolvedSampling(
        temperature=0.8,
        top_p=0.95,
        top_k=64,
        min_p=0.05,
        repetition_penalty=1.1,
        repetition_context_size=20,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        min_tokens=12,
        max_tokens=320,
    ),
    active_adapter="run-1:40",
    training=load_card(sample_personas_dir() / "juni").training,
    data_files=["train.jsonl", "valid.jsonl", "eval.jsonl"],
)

RUN = RunInfo(
    run="run-1",
    status="done",
    best=40,
    latest=40,
    checkpoints=[
        CheckpointInfo(20, "run-1:20", 1700000000.0, {"train_loss": 2.5, "val_loss": 2.61}),
        CheckpointInfo(
            40, "run-1:40", 1700000100.0, {"train_loss": 1.9, "val_loss": 2.12, "score": 0.71}
        ),
    ],
)


class ScriptedClient(ApiClient):
    """Answers like a small server with one persona; records what was asked."""

    def __init__(
        self,
        reply: str = "Splish-splash! I love **tide pools**.",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__("http://127.0.0.1:8000", transport=transport)
        self.reply = reply
        self.delay = 0.0
        """Seconds between streamed words (tests of Esc set it)."""
        self.juni = JUNI
        """What `/v1/personas/juni` answers."""
        self.guard: PersonaGuard | None = None
        """The persona guard's decision to put on every piece (None: no guard)."""
        self.one_piece = False
        """Send the reply as one chunk (so no speed is measured: stable snapshots)."""
        self.requests: list[tuple[str, list[ChatMessage], SamplingOverrides]] = []
        self.activations: list[tuple[str, str, int | None]] = []
        self.fail_chat: ApiError | None = None
        self.job_requests: list[tuple[str, dict[str, Any]]] = []
        """(persona, body) of each job created."""
        self.steered: list[tuple[str, str]] = []
        """(job id, action) of each cancel, pause and resume."""
        self.fail_training: str | None = None
        """Make the next job fail with this trainer error."""
        self.created_jobs: list[FineTuningJob] = []
        self.eval_requests: list[tuple[str, list[str]]] = []
        self.eval_turns: list[int] = []
        self.check_view: DataCheck | None = None
        """What the data check answers; None asks the real route (through `transport`)."""
        self.stats_view: DatasetStats | None = None
        self.adapter_state = PersonaAdapters(
            persona="juni",
            mode="follow",
            active="run-1:40",
            loaded=["run-1:40"],
            last_error=LoadError(
                "run-1:60", "adapter rank 4 does not match config rank 8", 1700000200.0
            ),
            runs=[RUN],
        )

    async def health(self) -> ServerHealth:
        return ServerHealth("ready", "ok", "gemma-3-270m")

    async def models(self) -> list[Model]:
        ids = ("juni", "juni@run-1:20", "gemma-3-270m")
        return [Model(i, 1700000000, "persona-studio") for i in ids]

    async def personas(self) -> list[PersonaInfo]:
        return [JUNI]

    async def persona(self, persona_id: str) -> PersonaInfo:
        if persona_id != "juni":
            raise ApiError("Not found (404)", f"no persona {persona_id!r}", status=404)
        return self.juni

    async def adapters(self) -> list[PersonaAdapters]:
        return [self.adapter_state]

    async def activate(self, persona: str, run: str, step: int | None = None) -> PersonaAdapters:
        self.activations.append((persona, run, step))
        self.adapter_state = msgspec.structs.replace(
            self.adapter_state, mode="pinned", active=f"{run}:{step}"
        )
        return self.adapter_state

    async def follow(self, persona: str) -> PersonaAdapters:
        self.activations.append((persona, "follow", None))
        self.adapter_state = msgspec.structs.replace(self.adapter_state, mode="follow")
        return self.adapter_state

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], overrides: SamplingOverrides
    ) -> AsyncIterator[ReplyPiece]:
        self.requests.append((model, list(messages), overrides))
        if self.fail_chat is not None:
            raise self.fail_chat
        words = self.reply.split(" ")
        adapter = "run-1:40" if model.startswith("juni") else None
        guard = self.guard
        if self.one_piece:
            yield ReplyPiece(self.reply, adapter=adapter, guard=guard)
            words = []
        for i, word in enumerate(words):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield ReplyPiece(word if i == 0 else " " + word, adapter=adapter, guard=guard)
        yield ReplyPiece("", "stop", adapter, len(self.reply.split(" ")), guard)

    async def adapter_events(self) -> AsyncIterator[AdapterEvent]:
        await asyncio.Event().wait()
        yield AdapterEvent("loaded")

    async def create_job(self, persona: str, body: dict[str, Any]) -> FineTuningJob:
        self.job_requests.append((persona, body))
        job = FineTuningJob(
            id=f"ftjob-{len(self.created_jobs) + 1}",
            created_at=0,
            model=persona,
            training_file=f"persona:{persona}",
            hyperparameters=Hyperparameters(),
            method=Method(type="supervised"),
            seed=0,
            persona=persona,
        )
        self.created_jobs.insert(0, job)
        return job

    async def jobs(self) -> list[FineTuningJob]:
        return list(self.created_jobs)

    async def job_events(self, job_id: str, after: str | None = None) -> AsyncIterator[JobEvent]:
        resumed = any(j == job_id and a == "resume" for j, a in self.steered)
        events = training_events(fail=self.fail_training, resumed_from=2 if resumed else None)
        for event in events:
            await asyncio.sleep(0.01)
            yield event

    async def steer_job(self, job_id: str, action: str) -> FineTuningJob:
        self.steered.append((job_id, action))
        job = next(j for j in self.created_jobs if j.id == job_id)
        job.status = {"cancel": "cancelled", "pause": "paused", "resume": "queued"}[action]  # type: ignore[assignment]
        return job

    async def create_eval(
        self, persona: str, models: list[str], samples: int = 1, turns: int = 0
    ) -> EvalRun:
        self.eval_requests.append((persona, models))
        self.eval_turns.append(turns)
        return EvalRun(id="eval-1", persona=persona, models=models, created_at=0)

    async def eval_events(
        self, persona: str, run_id: str, after: str | None = None
    ) -> AsyncIterator[JobEvent]:
        """No event stream here (as on an older server): the Eval screen polls instead."""
        raise ApiError("Not found (404)", "no event stream", status=404)
        yield  # an async generator, like the real one

    async def eval_run(self, persona: str, run_id: str) -> EvalRun:
        models = self.eval_requests[-1][1]
        return EvalRun(
            id=run_id,
            persona=persona,
            models=models,
            created_at=0,
            status="succeeded",
            progress=EvalProgress(2, 2),
            result=eval_result(persona, models),
        )

    async def data_check(self, persona: str) -> DataCheck:
        if self.check_view is None:
            return await super().data_check(persona)
        return self.check_view

    async def data_stats(self, persona: str) -> DatasetStats:
        if self.stats_view is None:
            return await super().data_stats(persona)
        return self.stats_view
