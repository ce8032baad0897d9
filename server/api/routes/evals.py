"""Evaluation runs of a persona as server jobs, and the persona's data checks and stats."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from litestar import get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import ServerSentEvent

from data.eval.drift import turns_problem
from data.eval.suite import read_scripts
from data.persona_data import check_persona, persona_stats
from data.personas import PersonaEntry
from data.problem import clip
from data.stats import DatasetStats
from data.tokens import ChatTokenizer
from server.api.models import resolve
from server.api.routes.files import read_file
from server.api.routes.fine_tuning import sse_events
from server.errors import AppError, InvalidRequest, NotFound, error_responses
from server.jobs.evals import EvalService, EvalStateError, new_eval_id
from server.jobs.fine_tuning import OnCheckpoint
from server.jobs.types import CreateEvalRequest, EvalList, EvalRun, EventList, FineTuningJob
from server.state import ServerState
from server.wire.records import DataCheck, DataRow

ERRORS = error_responses(400, 404)


def persona_of(state: ServerState, persona_id: str) -> PersonaEntry:
    """A persona served here, or a 404."""
    entry = state.catalog.get(persona_id)
    if entry is None:
        raise NotFound(
            f"no persona named '{persona_id}'", param="persona_id", code="persona_not_found"
        )
    return entry


def evals(state: ServerState) -> EvalService:
    """The evaluation service (it starts with the app)."""
    if state.evals is None:
        raise NotFound("evaluations are not available on this server")
    return state.evals


def find_run(state: ServerState, persona_id: str, eval_id: str) -> EvalRun:
    """One of a persona's evaluation runs, or a 404."""
    try:
        run = evals(state).get(eval_id).run
    except KeyError:
        run = None
    if run is None or run.persona != persona_id:
        raise NotFound(
            f"No such evaluation: {clip(eval_id)}", param="eval_id", code="eval_not_found"
        )
    return run


def _check_turns(suite: Path, turns: int) -> None:
    """A 400 unless the suite's conversation scripts can be played for `turns` turns."""
    scripts, problems = read_scripts(suite)
    problem = turns_problem([s for _, s in scripts], turns)
    if problems or problem is not None:
        # Line numbers only: an uploaded suite's path on this server is not the client's business.
        found = [f"eval suite line {p.line}: {p.message}" for p in problems]
        message = "; ".join([*found, *([problem] if problem else [])])
        raise InvalidRequest(message, param="turns", code="invalid_value")


def _tokenizer(state: ServerState) -> ChatTokenizer | None:
    # While the model loads there is no tokenizer yet: the token checks are skipped, with a note.
    return state.engine.tokenizer if state.engine is not None else None


@post(
    "/v1/personas/{persona_id:str}/evals",
    status_code=200,
    tags=["evals"],
    summary="Start an evaluation",
    responses=ERRORS,
)
async def create_eval(
    state: ServerState, persona_id: FromPath[str], data: JSONBody[CreateEvalRequest]
) -> EvalRun:
    """Queue a run of the held-out suite (or an uploaded one) against the model ids."""
    entry = persona_of(state, persona_id)
    models = data.models or [entry.name]
    for model in models:
        try:
            resolve(state, model)
        except AppError as exc:  # a model id not served here: the field is `models`
            exc.param = "models"
            raise
    if data.samples < 1:
        raise InvalidRequest("samples must be >= 1", param="samples", code="invalid_value")
    if data.suite_file is not None:
        suite_entry = read_file(state.files, data.suite_file, "suite_file")
        if suite_entry.purpose != "evals":
            raise InvalidRequest(
                f"{suite_entry.id} has purpose {suite_entry.purpose!r}, not 'evals'",
                param="suite_file",
                code="invalid_file",
            )
        suite: Path = state.files.content_path(suite_entry.id)
    elif entry.eval_file is not None:
        suite = entry.eval_file
    else:
        raise InvalidRequest(
            f"{entry.name} has no eval suite (eval.jsonl); upload one with "
            "purpose 'evals' and pass suite_file",
            param="suite_file",
        )
    if data.turns:
        await asyncio.to_thread(_check_turns, suite, data.turns)
    overrides = {
        k: v for k in ("temperature", "top_p", "max_tokens") if (v := getattr(data, k)) is not None
    }
    run = EvalRun(
        id=new_eval_id(),
        persona=entry.name,
        models=models,
        created_at=int(time.time()),
        samples=data.samples,
        seed=data.seed,
        suite_file=data.suite_file,
        overrides=overrides,
        turns=data.turns,
    )
    return evals(state).create(run, entry.folder, suite)


@get(
    "/v1/personas/{persona_id:str}/evals",
    summary="List evaluations",
    tags=["evals"],
    responses=ERRORS,
)
async def list_evals(state: ServerState, persona_id: FromPath[str]) -> EvalList:
    """The persona's evaluation runs, newest first."""
    persona_of(state, persona_id)
    return EvalList(evals(state).runs(persona_id))


@get(
    "/v1/personas/{persona_id:str}/evals/{eval_id:str}",
    summary="Retrieve an evaluation",
    tags=["evals"],
    responses=ERRORS,
)
async def retrieve_eval(
    state: ServerState, persona_id: FromPath[str], eval_id: FromPath[str]
) -> EvalRun:
    """One run: status, progress and, once done, the `EvalResult`."""
    return find_run(state, persona_id, eval_id)


@post(
    "/v1/personas/{persona_id:str}/evals/{eval_id:str}/cancel",
    status_code=200,
    summary="Cancel an evaluation",
    tags=["evals"],
    responses=ERRORS,
)
async def cancel_eval(
    state: ServerState, persona_id: FromPath[str], eval_id: FromPath[str]
) -> EvalRun:
    """Stop a queued or running evaluation; a finished one gets a 400."""
    find_run(state, persona_id, eval_id)
    try:
        return evals(state).cancel(eval_id)
    except EvalStateError as exc:
        raise InvalidRequest(str(exc), param="eval_id", code="invalid_state") from None


@get(
    "/v1/personas/{persona_id:str}/evals/{eval_id:str}/events",
    tags=["evals"],
    summary="An evaluation's events",
    responses=ERRORS,
)
async def eval_events(
    state: ServerState,
    persona_id: FromPath[str],
    eval_id: FromPath[str],
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 20,
) -> EventList:
    """Progress and status events, newest first."""
    find_run(state, persona_id, eval_id)
    events, more = evals(state).log(eval_id).page(after, max(1, limit))
    return EventList(events, more)


@get(
    "/v1/personas/{persona_id:str}/evals/{eval_id:str}/events/stream",
    tags=["evals"],
    summary="Follow an evaluation's events",
    responses=ERRORS,
)
async def stream_eval_events(
    state: ServerState,
    persona_id: FromPath[str],
    eval_id: FromPath[str],
    after: FromQuery[str | None] = None,
) -> ServerSentEvent:
    """Server-sent events: every event so far (after `after`), then each progress report and
    scored reply (`data.sample`) as it comes, until the run ends."""
    find_run(state, persona_id, eval_id)
    return ServerSentEvent(sse_events(evals(state).log(eval_id), after))


@get(
    "/v1/personas/{persona_id:str}/data/check",
    summary="Check a persona's data",
    tags=["data"],
    responses=ERRORS,
)
async def data_check(state: ServerState, persona_id: FromPath[str]) -> DataCheck:
    """What `persona data check` finds in the persona's datasets and eval suite."""
    entry = persona_of(state, persona_id)
    report = await asyncio.to_thread(check_persona, entry.folder, entry.card, _tokenizer(state))
    return DataCheck(
        files=list(report.files),
        rows=[DataRow(r.file, r.line, r.raw) for r in report.rows],
        problems=list(report.problems),
        notes=list(report.notes),
    )


@get(
    "/v1/personas/{persona_id:str}/data/stats",
    summary="A persona's dataset stats",
    tags=["data"],
    responses=ERRORS,
)
async def data_stats(state: ServerState, persona_id: FromPath[str]) -> DatasetStats:
    """What `persona data stats --json` reports for the persona's datasets."""
    entry = persona_of(state, persona_id)
    return await asyncio.to_thread(persona_stats, entry.folder, entry.card, _tokenizer(state))


def eval_routes() -> list[HTTPRouteHandler]:
    """The evaluation and data handlers, for `create_app` to register."""
    return [
        create_eval,
        list_evals,
        retrieve_eval,
        cancel_eval,
        eval_events,
        stream_eval_events,
        data_check,
        data_stats,
    ]


def checkpoint_evaluator(state: ServerState) -> OnCheckpoint:
    """The server-side `persona eval --watch`: queue a run of each new checkpoint of a job."""

    async def evaluate(job: FineTuningJob, model_id: str) -> None:
        entry = state.catalog.get(job.persona)
        if entry is None or entry.eval_file is None or state.evals is None:
            return
        run = EvalRun(
            id=new_eval_id(),
            persona=entry.name,
            models=[model_id],
            created_at=int(time.time()),
            job=job.id,
        )
        state.evals.create(run, entry.folder, entry.eval_file)
        if state.jobs is not None:
            state.jobs.log(job.id).add(
                f"Evaluation {run.id} queued for {model_id}",
                data={"eval": run.id, "model": model_id},
            )

    return evaluate
