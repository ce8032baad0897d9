"""Train: pick a persona, adjust its card's settings, and watch `persona train` run."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select

from ..api import ApiError
from ..cards import CardMissingError, changed, local_personas, training_defaults
from ..training import StartEvent, TrainingRun, TrainOverrides, train_argv
from ..widgets.train_form import TrainForm
from ..widgets.training_monitor import TrainingMonitor
from ..wire import AdapterEvent
from .base import StudioScreen


class TrainScreen(StudioScreen):
    """Start, stop and resume LoRA training; checkpoints appear as the server loads them."""

    MODE = "train"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "start", "Start training"),
        Binding("ctrl+b", "stop", "Stop"),
        Binding("ctrl+r", "resume", "Resume last run"),
        Binding("ctrl+g", "pick_persona", "Persona"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.defaults = TrainOverrides()
        """The chosen persona's card values."""
        self.run: TrainingRun | None = None
        """The trainer child process, while one runs."""
        self.last_run: str | None = None
        """The newest run this screen started (what Resume continues)."""

    def compose_body(self) -> ComposeResult:
        """Persona and settings on the left, the live run on the right."""
        with Horizontal(id="train-main"):
            with Vertical(classes="side-panel"):
                yield Label("Persona", classes="section-title")
                yield Select[str]([], id="train-persona", prompt="choose a persona")
                yield TrainForm()
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
        """List the personas this machine can train and follow hot-reload events."""
        names = local_personas()
        self.persona_select.set_options([(n, n) for n in names])
        if names:
            self.persona_select.value = names[0]
        self.watch(self.studio, "adapter_event", self._adapter_event, init=False)
        self._show_state()

    @on(Select.Changed, "#train-persona")
    def _persona_chosen(self, event: Select.Changed) -> None:
        if not isinstance(event.value, str):
            return
        try:
            self.defaults = training_defaults(event.value)
        except CardMissingError as exc:
            self.notify(str(exc), title="No card", severity="error")
            return
        self.form.fill(self.defaults)
        self.last_run = None

    def _show_state(self) -> None:
        if self.run is not None and self.run.running:
            text = "Training. Ctrl+B stops after the current step (a checkpoint is kept)."
        elif self.last_run:
            text = f"Last run: {self.last_run}. Ctrl+R resumes it; Ctrl+S starts a new one."
        else:
            text = "Ctrl+S starts a new run with these settings."
        self.state_line.update(text)

    def action_start(self) -> None:
        """Start a new training run."""
        self._launch(resume=None)

    def action_resume(self) -> None:
        """Continue the last run from its newest checkpoint."""
        if self.last_run is None:
            self.find_last_run()
            return
        self._launch(resume=self.last_run)

    @work(exclusive=True, group="train-lookup")
    async def find_last_run(self) -> None:
        """Ask the server for the persona's newest run, then resume it."""
        persona = self.persona
        try:
            entries = await self.api.adapters()
        except ApiError as error:
            self.report(error)
            return
        runs = [r.run for e in entries if e.persona == persona for r in e.runs]
        if not runs:
            self.notify(f"{persona} has no run to resume yet: Ctrl+S starts one.")
            return
        self.last_run = runs[-1]
        self._launch(resume=self.last_run)

    def _launch(self, resume: str | None) -> None:
        if self.run is not None and self.run.running:
            self.notify("A run is already going: Ctrl+B stops it first.", severity="warning")
            return
        persona = self.persona
        if persona is None:
            self.notify("Choose a persona first.", severity="warning")
            return
        values, problems = self.form.read()
        if problems:
            self.notify("\n".join(problems), title="Check the settings", severity="error")
            return
        settings = self.studio.settings
        # A server started here serves `settings.model`; adapters must be trained on that base.
        model = settings.model if settings.model != "embedded" else None
        argv = train_argv(
            settings.command(), persona, changed(values, self.defaults), resume, model
        )
        self.run = TrainingRun(argv)
        self.train(self.run)

    @work(exclusive=True, group="training")
    async def train(self, run: TrainingRun) -> None:
        """Read the trainer's events into the monitor until it ends."""
        self._show_state()
        async for event in run.events():
            if isinstance(event, StartEvent):
                self.last_run = event.run
                self.notify(
                    f"{event.persona} {event.run}: {event.total_steps} steps.",
                    title="Training started",
                )
            self.monitor.record(event)
        self._show_state()

    def action_stop(self) -> None:
        """Stop the run after its current step."""
        if self.run is None or not self.run.running:
            self.notify("Nothing is training.")
            return
        self.run.stop()
        self.notify("Stopping after the current step…")

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
