"""Wire types of the Files, fine-tuning and evaluation APIs: pure msgspec, for the TUI too.

Field names are OpenAI's (`fine_tuning.job`, `fine_tuning.job.event`, `file`, ...), checked in the
tests with the official SDK's own types. `object` fields carry their constant with no
`omit_defaults`, because a client reads a missing `object` as null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

JobStatus = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]
"""OpenAI's job statuses, plus `paused` (a job stopped by `POST .../pause`, waiting to resume)."""
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
"""Statuses a job never leaves on its own."""
EvalStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class FileObject(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's `file` object."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    object: Literal["file"] = "file"
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None


class FileList(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/files`: a cursor page, newest first."""

    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None
    object: Literal["list"] = "list"


class FileDeleted(msgspec.Struct, frozen=True):
    """`DELETE /v1/files/{id}`."""

    id: str
    deleted: bool = True
    object: Literal["file"] = "file"


class Hyperparameters(msgspec.Struct, frozen=True):
    """The supervised hyperparameters OpenAI names; `auto` (or absent) takes the card's value."""

    n_epochs: int | Literal["auto"] | None = None
    batch_size: int | Literal["auto"] | None = None
    learning_rate_multiplier: float | Literal["auto"] | None = None


class SupervisedMethod(msgspec.Struct, frozen=True):
    """`method.supervised`."""

    hyperparameters: Hyperparameters | None = None


class PreferenceHyperparameters(msgspec.Struct, frozen=True):
    """OpenAI's DPO hyperparameters (`method.dpo.hyperparameters`), also ORPO's here.

    `beta` is DPO's beta, or ORPO's lambda (the weight of its odds-ratio term); `auto` (or
    absent) takes the card's `[training]` value, as the other three do.
    """

    beta: float | Literal["auto"] | None = None
    n_epochs: int | Literal["auto"] | None = None
    batch_size: int | Literal["auto"] | None = None
    learning_rate_multiplier: float | Literal["auto"] | None = None


class PreferenceMethod(msgspec.Struct, frozen=True):
    """`method.dpo` (OpenAI's) or `method.orpo` (this server's own, the same shape)."""

    hyperparameters: PreferenceHyperparameters | None = None


class GuardMethod(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`method.guard` (this server's own): train the persona's guard from its labelled data.

    It takes no hyperparameters: the trainer chooses the block, pooling and L2 strength by
    cross-validation, and the threshold from the same held-out scores.
    """


class Method(msgspec.Struct, frozen=True, omit_defaults=True):
    """`method`: which training objective, with its settings under the key of the same name
    (only that key is sent back, as OpenAI does).

    A method not served here (`reinforcement`, ...) still decodes, so the job service refuses it
    by name.
    """

    type: str
    supervised: SupervisedMethod | None = None
    dpo: PreferenceMethod | None = None
    orpo: PreferenceMethod | None = None
    """ORPO is not OpenAI's; the server takes it in DPO's shape under its own key."""
    guard: GuardMethod | None = None
    """The persona guard, under its own key; it has no settings."""
    reinforcement: dict[str, Any] | None = None


class JobError(msgspec.Struct, frozen=True):
    """Why a job failed."""

    code: str
    message: str
    param: str | None = None


class FineTuningJob(msgspec.Struct, kw_only=True):
    """OpenAI's `fine_tuning.job`, with the studio's `persona` and `run` alongside."""

    id: str
    created_at: int
    model: str
    """The model fine-tuned: a persona, or the base model (then `persona` is the new one)."""
    training_file: str
    """The training file's id; `persona:<name>` when the persona's own dataset is used."""
    hyperparameters: Hyperparameters
    method: Method
    seed: int
    status: JobStatus = "validating_files"
    validation_file: str | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    error: JobError | None = None
    result_files: list[str] = []
    trained_tokens: int | None = None
    estimated_finish: int | None = None
    metadata: dict[str, str] | None = None
    user_provided_suffix: str | None = None
    integrations: list[Any] | None = None
    organization_id: str = "persona-studio"
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    persona: str = ""
    """The persona whose adapter this job trains."""
    run: str | None = None
    """The registry run (`run-4`) once the trainer has started."""
    step: int = 0
    total_steps: int | None = None


class JobList(msgspec.Struct, frozen=True):
    """A cursor page of jobs, newest first."""

    data: list[FineTuningJob]
    has_more: bool = False
    object: Literal["list"] = "list"


class JobEvent(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's `fine_tuning.job.event`.

    `data` holds the trainer's own event (its `event` key names it: `start`, `step`, `val`,
    `checkpoint`, `best`, `done`, `error`) or, for a change of the job itself, `{"status": ...}`.
    """

    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"


class EventList(msgspec.Struct, frozen=True):
    """`GET .../events`: newest first, as OpenAI lists them."""

    data: list[JobEvent]
    has_more: bool = False
    object: Literal["list"] = "list"


class CheckpointMetrics(msgspec.Struct, frozen=True):
    """Losses at a checkpoint (null when not measured there)."""

    step: float
    train_loss: float | None = None
    valid_loss: float | None = None


class JobCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's `fine_tuning.job.checkpoint`; `fine_tuned_model_checkpoint` is a pinned model id."""

    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: CheckpointMetrics
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"


class CheckpointList(msgspec.Struct, frozen=True):
    """`GET .../checkpoints`: newest first."""

    data: list[JobCheckpoint]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None
    object: Literal["list"] = "list"


class EvalProgress(msgspec.Struct, frozen=True):
    """Replies scored so far, of the total."""

    done: int = 0
    total: int = 0


class EvalRun(msgspec.Struct, kw_only=True):
    """One evaluation run; `result` is the `EvalResult` that `persona eval --json` writes."""

    id: str
    persona: str
    models: list[str]
    created_at: int
    samples: int = 1
    seed: int = 0
    suite_file: str | None = None
    overrides: dict[str, float | int] = {}
    turns: int = 0
    """Turns per drift conversation (`persona eval --turns`); 0 plays none."""
    status: EvalStatus = "queued"
    progress: EvalProgress = EvalProgress()
    finished_at: int | None = None
    error: JobError | None = None
    job: str | None = None
    """The fine-tuning job whose checkpoint this run scores (the server-side `--watch`)."""
    result: dict[str, Any] | None = None
    object: Literal["persona.eval"] = "persona.eval"


class EvalList(msgspec.Struct, frozen=True):
    """`GET /v1/personas/{id}/evals`: newest first."""

    data: list[EvalRun]
    has_more: bool = False
    object: Literal["list"] = "list"


class CreateJobRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`POST /v1/fine_tuning/jobs`: OpenAI's fields, then LoRA settings as extra body fields.

    A LoRA field left out takes the persona card's `[training]` value. Unknown fields are ignored.
    """

    model: str
    training_file: str | None = None
    """Required by OpenAI; here it may be left out to train on the persona's own dataset."""
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    method: Method | None = None
    hyperparameters: Hyperparameters | None = None
    """The legacy top-level form of `method.supervised.hyperparameters`."""
    integrations: list[Any] | None = None
    fine_tune_type: str | None = None
    rank: int | None = None
    scale: float | None = None
    dropout: float | None = None
    layers: int | None = None
    keys: list[str] | None = None
    lr_schedule: str | None = None
    warmup: int | None = None
    max_seq_length: int | None = None
    grad_checkpoint: bool | None = None
    val_fraction: float | None = None
    val_every: int | None = None
    checkpoint_every: int | None = None
    patience: int | None = None
    iters: int | None = None
    """Train exactly this many steps instead of the card's epochs (`persona train --iters`)."""
    eval_checkpoints: bool = False
    """Evaluate each checkpoint on the persona's held-out suite as it lands (server-side watch)."""
    epochs: float | None = None
    batch_size: float | None = None
    learning_rate: float | None = None
    beta: float | None = None
    """`[training]` names of OpenAI's hyperparameters: refused as extra fields, by name, so a
    value sent here is never silently unused (`method.<type>.hyperparameters` takes them)."""


LORA_FIELDS = (
    "fine_tune_type",
    "rank",
    "scale",
    "dropout",
    "layers",
    "keys",
    "lr_schedule",
    "warmup",
    "max_seq_length",
    "grad_checkpoint",
    "val_fraction",
    "val_every",
    "checkpoint_every",
    "patience",
)
"""Request fields passed to the trainer under the card's `[training]` name of the same spelling."""


class CreateEvalRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`POST /v1/personas/{id}/evals`: which models, how many samples, which suite."""

    models: list[str] | None = None
    """Model ids to compare; default: the persona itself."""
    samples: int = 1
    seed: int = 0
    suite_file: str | None = None
    """An uploaded eval suite (file id); default: the persona's held-out `eval.jsonl`."""
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] | None = None
    """Overrides the card's sampling, within the ranges chat completions take."""
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    turns: int = 0
    """Also play the suite's conversation scripts for this many turns and report drift per turn
    (`persona eval --turns N`); 0 plays none."""
