"""Evaluation runs as server jobs: queued, run one at a time, stored with their events and result.

A run sends a persona's held-out suite (or an uploaded one) to each model id through this very
server's OpenAI API, scores the replies with `data.eval.run.run_eval` (what `persona eval`
runs), plays the suite's conversation scripts for `turns` turns with `data.eval.drift.run_drift`
(`persona eval --turns`) when asked, and keeps the `EvalResult`. Each reply is logged as an
event (`data.sample`) the moment it is scored, so a client following the run sees it land.
A run tied to a fine-tuning job (the server-side `--watch`) also writes its scores into that
run's `run.json` under `eval.<step>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from adapters.registry import Registry, RegistryError, parse_model_id
from adapters.training.record import store_eval
from data.card import load_card
from data.dataset import read_datasets
from data.eval.drift import run_drift, turns_problem
from data.eval.report import summary
from data.eval.run import EvalResult, SampleResult, run_eval
from data.eval.suite import ConversationScript, load_suite, read_scripts
from data.personas import training_set
from data.problem import listed
from data.records import replies

from .files import new_id
from .log import EventLog
from .store import EvalRecord, Store
from .types import FINISHED, EvalProgress, EvalRun, JobError

log = logging.getLogger("persona.server")

ClientFactory = Callable[[], Any]
"""Makes an `openai.AsyncOpenAI` bound to this server (closed by the service after each run)."""


class EvalStateError(ValueError):
    """The run cannot do this in its state (a 400 for the client)."""


class EvalService:
    """Creates, runs and remembers evaluation runs."""

    def __init__(self, root: Path, client: ClientFactory, registry: Registry) -> None:
        self.store: Store[EvalRecord] = Store(root, "eval.json", EvalRecord)
        self.client = client
        self.registry = registry
        self.records: dict[str, EvalRecord] = {}
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._current: tuple[str, asyncio.Task[EvalResult]] | None = None

    async def start(self) -> None:
        """Load every run; one cut short by the last shutdown is failed; start the worker."""
        self.records = self.store.load()
        for record in self.records.values():
            if record.run.status == "running":
                self._finish(
                    record,
                    "failed",
                    JobError("server_stopped", "the server stopped during the evaluation"),
                )
            elif record.run.status in FINISHED:
                self.log(record.run.id).close()
        self._worker = asyncio.create_task(self._work(), name="evaluations")

    async def aclose(self) -> None:
        """Stop the worker (a running evaluation is failed as the server stops)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def log(self, run_id: str) -> EventLog:
        """A run's events."""
        return self.store.log(run_id)

    def runs(self, persona: str) -> list[EvalRun]:
        """A persona's runs, newest first."""
        found = [r for r in self.records.values() if r.run.persona == persona]
        return [r.run for r in sorted(found, key=lambda r: r.created, reverse=True)]

    def get(self, run_id: str) -> EvalRecord:
        """One run; KeyError when unknown."""
        return self.records[run_id]

    def create(self, run: EvalRun, folder: Path, suite: Path) -> EvalRun:
        """Queue a run."""
        record = EvalRecord(run=run, folder=str(folder), suite=str(suite))
        self.records[run.id] = record
        self._save(record)
        models = ", ".join(run.models)
        self.log(run.id).add(f"Evaluation queued: {models}", data={"status": "queued"})
        self._wake.set()
        return run

    def cancel(self, run_id: str) -> EvalRun:
        """Stop a queued or running evaluation."""
        record = self.get(run_id)
        if record.run.status in FINISHED:
            raise EvalStateError(
                f"evaluation {run_id} is {record.run.status}; it cannot be cancelled"
            )
        if self._current is not None and self._current[0] == run_id:
            self._current[1].cancel()
        else:
            self._finish(record, "cancelled")
        return record.run

    def _save(self, record: EvalRecord) -> None:
        self.store.save(record.run.id, record)

    def _finish(self, record: EvalRecord, status: str, error: JobError | None = None) -> None:
        run = record.run
        run.status = status  # type: ignore[assignment]
        run.error = error
        run.finished_at = int(time.time())
        self._save(record)
        text = error.message if error else status
        self.log(run.id).add(
            f"Evaluation {status}" + (f": {text}" if error else ""),
            level="error" if error else "info",
            data={"status": status},
        )
        self.log(run.id).close()

    async def _work(self) -> None:
        while True:
            queued = [r for r in self.records.values() if r.run.status == "queued"]
            if not queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            record = min(queued, key=lambda r: r.created)
            await self._run(record)

    async def _run(self, record: EvalRecord) -> None:
        run = record.run
        run.status = "running"
        self._save(record)
        self.log(run.id).add("Evaluation started", data={"status": "running"})
        task = asyncio.create_task(self._evaluate(record))
        self._current = (run.id, task)
        try:
            result = await task
        except asyncio.CancelledError:
            if task.cancelled() and not _being_cancelled():
                self._finish(record, "cancelled")
                return
            self._finish(record, "failed", JobError("server_stopped", "the server stopped"))
            raise
        except Exception as exc:
            log.exception("evaluation %s failed", run.id)
            self._finish(record, "failed", JobError("eval_failed", str(exc) or type(exc).__name__))
            return
        finally:
            self._current = None
        run.result = msgspec.to_builtins(result)
        if run.job is not None:
            self._store_scores(run, result)
        self._finish(record, "succeeded")

    async def _evaluate(self, record: EvalRecord) -> EvalResult:
        run = record.run
        folder = Path(record.folder)
        card = await asyncio.to_thread(load_card, folder)
        cases, problems = await asyncio.to_thread(load_suite, Path(record.suite))
        if problems:
            raise ValueError("the eval suite has problems:\n" + "\n".join(listed(problems)))
        if not cases:
            raise ValueError("the eval suite has no cases")
        scripts = await asyncio.to_thread(_scripts, Path(record.suite), run.turns)
        texts = await asyncio.to_thread(_training_replies, folder)
        logbook = self.log(run.id)
        probes = len(run.models) * len(cases) * run.samples
        total = probes + len(run.models) * len(scripts) * run.samples * run.turns
        step = max(1, total // 20)

        def progress(done: int, _: int) -> None:
            run.progress = EvalProgress(done, total)
            if done % step == 0 or done == total:
                logbook.add(
                    f"{done}/{total} replies scored",
                    kind="metrics",
                    data={"done": done, "total": total},
                )

        def landed(sample: SampleResult) -> None:
            # Each reply as it is scored, so a client can show it before the run ends.
            verdict = "error" if sample.error else "pass" if sample.criteria.passed else "fail"
            logbook.add(
                f"{sample.label} · {sample.model}: {verdict}",
                data={
                    "sample": msgspec.to_builtins(sample),
                    "done": run.progress.done,
                    "total": total,
                },
            )

        client = self.client()
        try:
            result = await run_eval(
                card,
                cases,
                texts,
                run.models,
                samples=run.samples,
                seed=run.seed,
                overrides=dict(run.overrides),
                progress=progress,
                client=client,
                on_sample=landed,
            )
            if not run.turns:
                return result
            drift, replies = await run_drift(
                card,
                scripts,
                texts,
                run.models,
                run.turns,
                samples=run.samples,
                seed=run.seed,
                overrides=dict(run.overrides),
                progress=lambda done, _: progress(probes + done, total),
                client=client,
                on_sample=landed,
            )
            return msgspec.structs.replace(
                result, turns=run.turns, drift=drift, drift_samples=replies
            )
        finally:
            await client.close()

    def _store_scores(self, run: EvalRun, result: EvalResult) -> None:
        pairs = {c.model: c for c in result.contrast}
        for scores in result.models:
            try:
                ref = parse_model_id(scores.model)
            except RegistryError:
                continue
            if ref.run is None or not isinstance(ref.step, int) or not scores.replies:
                continue
            contrast = pairs.get(scores.model)
            store_eval(
                self.registry.run_dir(ref.persona, ref.run), ref.step, summary(scores, contrast)
            )
            lead = (
                f"contrast {contrast.overall.accuracy:.2f}, "
                if contrast is not None and contrast.overall.pairs
                else ""
            )
            self.log(run.id).add(
                f"{scores.model}: {lead}rules pass {scores.criteria_pass:.2f}, "
                f"completion {scores.completion_rate:.2f} (score {scores.score:.3f})",
                data={"model": scores.model, "score": scores.score},
            )


def new_eval_id() -> str:
    """A fresh `eval-...` id."""
    return new_id("eval-")


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _scripts(suite: Path, turns: int) -> list[ConversationScript]:
    """The suite's conversation scripts when `turns` asks for drift (none otherwise)."""
    if not turns:
        return []
    numbered, problems = read_scripts(suite)
    scripts = [script for _, script in numbered]
    problem = turns_problem(scripts, turns)
    if problems or problem is not None:
        raise ValueError("\n".join(listed([*problems, *([problem] if problem else [])])))
    return scripts


def _training_replies(folder: Path) -> list[str]:
    path = training_set(folder)
    if path is None:
        return []
    return [text for row in read_datasets([path]).rows for text in replies(row.record)]
