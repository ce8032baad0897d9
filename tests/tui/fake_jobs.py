"""Scripted server answers for the Train and Eval screens: a job's events and an eval result."""

from __future__ import annotations

from typing import Any

import msgspec

from data.eval.criteria import CriteriaResult
from data.eval.metrics import LengthStats, Markers, Memorisation
from data.eval.run import EvalResult, ModelScores, SampleResult
from server.jobs.types import JobEvent

DATASET = {
    "train_rows": 20,
    "valid_rows": 2,
    "train_tokens": 900,
    "learned_tokens": 500,
    "valid_tokens": 90,
    "batches_per_epoch": 4,
    "train_sha256": "0" * 64,
}


def _event(n: int, message: str, data: dict[str, Any], kind: str = "message") -> JobEvent:
    return JobEvent(
        id=f"ftevent-x-{n}", created_at=0, level="info", message=message, type=kind, data=data
    )  # type: ignore[arg-type]


def training_events(
    run: str = "run-1", steps: int = 4, *, fail: str | None = None, resumed_from: int | None = None
) -> list[JobEvent]:
    """What the server streams for a job: status changes and the trainer's own events."""
    data: list[tuple[str, dict[str, Any], str]] = [
        ("Files validated", {"status": "queued"}, "message"),
        ("Started", {"status": "running"}, "message"),
    ]
    if fail is not None:
        data += [
            (f"Training error: {fail}", {"event": "error", "message": fail}, "message"),
            (f"The job failed: {fail}", {"status": "failed"}, "message"),
        ]
        return [_event(i, m, d, k) for i, (m, d, k) in enumerate(data, 1)]
    start = {
        "event": "start",
        "run": run,
        "persona": "juni",
        "config": {},
        "dataset": DATASET,
        "total_steps": steps,
        "resumed_from": resumed_from,
    }
    data.append(("Training", start, "message"))
    for step in range((resumed_from or 0) + 1, steps + 1):
        data.append(
            (
                f"Step {step}",
                {
                    "event": "step",
                    "step": step,
                    "epoch": step / steps,
                    "train_loss": 3.0 - step * 0.4,
                    "lr": 1e-4,
                    "tokens_per_sec": 40.0,
                    "it_per_sec": 1.0,
                    "eta_sec": float(steps - step),
                    "peak_memory_gb": 1.0,
                },
                "metrics",
            )
        )
        if step % 2 == 0:
            data.append(
                (
                    f"Val {step}",
                    {"event": "val", "step": step, "val_loss": 3.1 - step * 0.3},
                    "metrics",
                )
            )
            data.append(
                (
                    f"Checkpoint {step}",
                    {
                        "event": "checkpoint",
                        "step": step,
                        "path": f"/x/{run}/{step}",
                        "version": f"{run}:{step}",
                    },
                    "message",
                )
            )
    data.append(("Done", {"event": "done", "step": steps, "reason": "finished"}, "message"))
    data.append(("The job has successfully completed", {"status": "succeeded"}, "message"))
    return [_event(i, m, d, k) for i, (m, d, k) in enumerate(data, 1)]


def eval_result(persona: str, models: list[str]) -> dict[str, Any]:
    """An `EvalResult` as the server stores it: scores for each model and one sample of each."""
    scores = [
        ModelScores(
            model=m,
            replies=2,
            errors=0,
            completion_rate=1.0,
            length=LengthStats(42.0, 12.6, 0.3, 1.0, 0.0, 0.0, None),
            looping_rate=0.0,
            distinct_1=0.0,
            distinct_2=0.0,
            memorisation=Memorisation(0.0, 0),
            markers=Markers(0.0, 0.0, 0.0, {}),
            criteria_pass=0.5,
            by_category={"idk": 1.0},
            judge=None,
            judge_status="off",
            score=0.5 + 0.1 * i,
        )
        for i, m in enumerate(models)
    ]
    samples = [
        SampleResult(
            case_id="idk-01",
            category="idk",
            model=m,
            sample=0,
            seed=0,
            text=f"Reply from {m}.",
            finish_reason="stop",
            words=3,
            completion_tokens=5,
            looping=False,
            memorised_span=0,
            criteria=CriteriaResult(i == 0, () if i == 0 else ("too short",)),
        )
        for i, m in enumerate(models)
    ]
    result = EvalResult(persona, scores, samples, seed=0, samples_per_prompt=1, created=0.0)
    return msgspec.to_builtins(result)
