"""Train: pick a persona, adjust its card's settings, and run a fine-tuning job on the server."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from server.jobs.types import FINISHED, FineTuningJob, JobEvent

from ..api import ApiError
from ..train_plan_view import plan_text
from ..train_progress import ErrorEvent, StartEvent, trainer_event
from ..widgets.train_form import (
    TrainForm,
    TrainOverrides,
    card_values,
    job_body,
    start_options,
)
from ..widgets.training_monitor import TrainingMonitor
from ..wire import AdapterEvent, DatasetStats, PersonaInfo
from .base import StudioScreen

STEERABLE = ("queued", "running", "paused", "validating_files")


class TrainScreen(StudioScreen):
    """Start, cancel, pause and resume fine-tuning jobs; checkpoints show as the server loads."""

    MODE = "train"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "Start training"),
        Binding("ctrl+b", "cancel", "Cancel"),
        Binding("ctrl+e", "pause", "Pause"),
        Binding("ctrl+r", "resume", "Resume"),
        Binding("ctrl+g", "pick_persona", "Persona"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.personas: dict[str, PersonaInfo] = {}
        """The server's personas, by id."""
        self.defaults = TrainOverrides()
        self.rows: DatasetStats | None = None
        """The chosen persona's dataset stats on the server, for the run's planned length."""
        """The chosen persona's card values."""
        self.job: FineTuningJob | None = None
        """The job this screen follows."""

    def compose_body(self) -> ComposeResult:
        """Persona and settings on the left, the live run on the right."""
        with Horizontal(id="train-main"):
            with Vertical(classes="side-panel"):
                yield Label("Persona", classes="section-title")
                yield Select[str]([], id="train-persona", prompt="choose a persona")
                yield TrainForm()
                yield Label("", id="train-plan", classes="hint", markup=False)
                yield Label("", id="train-state", classes="hint", markup=False)
            with Vertical(id="train-body"):
                yield TrainingMonitor()

    @property
    def persona_select(self) -> Select[str]:
        """The persona picker."""
        return self.query_one("#train-persona", Select)

    @property
    def form(self) -> TrainForm:
        """The hyperparameters."""
        return self.query_one(TrainForm)

    @property
    def monitor(self) -> TrainingMonitor:
        """Progress, plot and checkpoints."""
        return self.query_one(TrainingMonitor)

    @property
    def state_line(self) -> Label:
        """Idle, running or finished, and how to go on."""
        return self.query_one("#train-state", Label)

    @property
    def persona(self) -> str | None:
        """The chosen persona."""
        value = self.persona_select.value
        return value if isinstance(value, str) else None

    def on_mount(self) -> None:
        """List the server's personas and follow hot-reload events."""
        super().on_mount()
        self.watch(self.studio, "adapter_event", self._adapter_event, init=False)
        self._show_state()
        self.reload()

    @work(exclusive=True, group="train-personas")
    async def reload(self) -> None:
        """Fetch the personas (with their card's training settings) from the server."""
        found = await self.offer_personas(self.persona_select)
        if found is not None:
            self.personas = {p.id: p for p in found}

    @on(Select.Changed, "#train-persona")
    def _persona_chosen(self, event: Select.Changed) -> None:
        info = self.personas.get(event.value) if isinstance(event.value, str) else None
        if info is None:
            return
        self.defaults = card_values(info.training)
        self.form.fill(self.defaults)
        self.form.set_starts([])  # another persona's checkpoints never start this one
        self.load_starts(info.id)
        self.rows = None
        self.load_plan(info.id)

    @property
    def plan_label(self) -> Label:
        """`N steps ≈ T minutes` for the settings in the form."""
        return self.query_one("#train-plan", Label)

    @work(exclusive=True, group="train-plan")
    async def load_plan(self, persona: str) -> None:
        """Count the persona's training rows on the server, then show the run's length."""
        try:
            stats = await self.api.data_stats(persona)
        except ApiError:
            self.plan_label.update("")
            return
        if persona == self.persona:
            self.rows = stats
            self._show_plan()

    @on(Input.Changed, "TrainForm Input")
    def _form_changed(self) -> None:
        self._show_plan()

    def _show_plan(self) -> None:
        info = self.personas.get(self.persona or "")
        if info is None or self.rows is None:
            return
        values, problems = self.form.read()
        if problems:
            return
        self.plan_label.update(plan_text(info, self.rows, values))

    @work(exclusive=True, group="train-starts")
    async def load_starts(self, persona: str) -> None:
        """Offer the persona's checkpoints on the server as starting points."""
        try:
            adapters = await self.api.adapters()
        except ApiError as error:
            self.report(error)
            return
        if persona == self.persona:
            self.form.set_starts(start_options(persona, adapters))

    def _show_state(self) -> None:
        job = self.job
        if job is None:
            text = "Ctrl+S starts a fine-tuning job on the server with these settings."
        elif job.status in ("running", "queued", "validating_files"):
            text = (
                f"Job {job.id}: {job.status}. Ctrl+B cancels (a checkpoint is kept), Ctrl+E pauses."
            )
        elif job.status == "paused" or (job.status == "failed" and job.run):
            text = f"Job {job.id}: {job.status}. Ctrl+R resumes it from its newest checkpoint."
        else:
            text = f"Job {job.id}: {job.status}. Ctrl+S starts a new one."
        self.state_line.update(text)

    def action_start(self) -> None:
        """Create a fine-tuning job for the chosen persona."""
        persona = self.persona
        if persona is None:
            self.notify("Choose a persona first.", severity="warning")
            return
        if self.job is not None and self.job.status in ("running", "queued", "validating_files"):
            self.notify("A job is already going: Ctrl+B cancels it first.", severity="warning")
            return
        values, problems = self.form.read()
        if problems:
            self.notify("\n".join(problems), title="Check the settings", severity="error")
            return
        start = self.form.start
        problem = self._start_problem(persona, values.method or "sft", start)
        if problem:
            self.notify(problem, severity="error")
            return
        self.start_job(start or persona, job_body(values, self.defaults))

    def _start_problem(self, persona: str, method: str, start: str | None) -> str | None:
        """Why the server would refuse this job, said before asking it."""
        info = self.personas.get(persona)
        files = set(info.data_files) if info is not None else None
        if method == "sft" and files is not None and not {"train.jsonl", "dataset.jsonl"} & files:
            return f"{persona} has no dataset on the server."
        if method != "sft" and files is not None and "preference.jsonl" not in files:
            return (
                f"{persona} has no preference.jsonl on the server: review the pairs of "
                f"`persona data pairs {persona}` into it."
            )
        if method == "dpo" and start is None:
            return (
                "DPO starts from a trained checkpoint (its reference model): pick it in Start from."
            )
        return None

    @work(exclusive=True, group="train-steer")
    async def start_job(self, model: str, body: dict[str, object]) -> None:
        """Create the job for a persona (or one of its checkpoints), then follow it."""
        try:
            self.job = await self.api.create_job(model, body)
        except ApiError as error:
            self.report(error)
            return
        self.notify(f"Job {self.job.id} created for {model}.", title="Fine-tuning")
        self.monitor.job_created(self.job.persona or model, self.job.id, self.job.status)
        self._show_state()
        self.follow(self.job.id)

    @work(exclusive=True, group="training")
    async def follow(self, job_id: str) -> None:
        """Read the job's event stream into the monitor until the job ends."""
        try:
            async for event in self.api.job_events(job_id):
                self._take(event)
        except ApiError as error:
            self.report(error)

    def _take(self, event: JobEvent) -> None:
        trained = trainer_event(event)
        if trained is not None:
            if isinstance(trained, StartEvent) and trained.resumed_from is None:
                self.notify(
                    f"{trained.persona} {trained.run}: {trained.total_steps} steps.",
                    title="Training started",
                )
            self.monitor.record(trained)
            return
        status = (event.data or {}).get("status")
        if self.job is None or not isinstance(status, str):
            return
        self.job.status = status  # type: ignore[assignment]
        if status == "failed" and self.monitor.progress.state != "failed":
            self.monitor.record(ErrorEvent(message=event.message))
        elif status in FINISHED or status == "paused":
            self.notify(event.message, title=f"Job {status}")
        self._show_state()

    def action_cancel(self) -> None:
        """Cancel the job (the trainer stops after its step and keeps a checkpoint)."""
        self._steer("cancel")

    def action_pause(self) -> None:
        """Pause the job after its current step."""
        self._steer("pause")

    def action_resume(self) -> None:
        """Resume the paused (or failed) job from its newest checkpoint."""
        self._steer("resume")

    def _steer(self, action: str) -> None:
        if self.job is None:
            self.find_job(action)
            return
        self.steer(self.job.id, action)

    @work(exclusive=True, group="train-lookup")
    async def find_job(self, action: str) -> None:
        """Ask the server for the persona's newest job, then steer it."""
        try:
            jobs = [j for j in await self.api.jobs() if j.persona == self.persona]
        except ApiError as error:
            self.report(error)
            return
        if not jobs:
            self.notify(f"{self.persona} has no job yet: Ctrl+S starts one.")
            return
        self.job = jobs[0]
        if self.job.status in STEERABLE or self.job.run:
            self.follow(self.job.id)
        self.steer(self.job.id, action)

    @work(exclusive=True, group="train-steer")
    async def steer(self, job_id: str, action: str) -> None:
        """Cancel, pause or resume on the server."""
        try:
            self.job = await self.api.steer_job(job_id, action)
        except ApiError as error:
            self.report(error)
            return
        self.notify(
            {
                "cancel": "Cancelling after the current step…",
                "pause": "Pausing after the current step…",
                "resume": "Resumed: queued to continue.",
            }[action]
        )
        self._show_state()

    def action_pick_persona(self) -> None:
        """Focus the persona picker."""
        self.persona_select.focus()

    @on(TrainingMonitor.CheckpointLanded)
    def _checkpoint(self, message: TrainingMonitor.CheckpointLanded) -> None:
        version = message.event.version or f"step {message.event.step}"
        self.notify(f"Checkpoint {version} saved; waiting for the server to load it.")

    @on(TrainingMonitor.Ended)
    def _ended(self, message: TrainingMonitor.Ended) -> None:
        progress = self.monitor.progress
        if progress.state == "failed":
            self.notify(progress.message, title="Training failed", severity="error", timeout=15)
        else:
            self.notify(f"{progress.run}: {progress.message}.", title="Training ended")
        self._show_state()

    def _adapter_event(self, event: AdapterEvent | None) -> None:
        if event is not None and event.type == "loaded" and event.persona == self.persona:
            self.load_starts(event.persona)  # a new checkpoint to start from
        if event is None or event.persona != self.monitor.progress.persona:
            return
        if event.type == "loaded" and event.version:
            if self.monitor.mark_live(event.version):
                self.notify(
                    f"{event.persona}@{event.version} is live: your next chat message uses it.",
                    title="Hot-loaded",
                )
        elif event.type == "failed":
            self.notify(
                event.message,
                title=f"The server refused {event.version}",
                severity="error",
                timeout=12,
            )
