"""Live view of a training run: progress bar with ETA, loss curves, and landed checkpoints."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label, ProgressBar
from textual_plotext import PlotextPlot

from ..train_progress import (
    CheckpointEvent,
    DoneEvent,
    ErrorEvent,
    StartEvent,
    TrainEvent,
    TrainProgress,
)


class TrainingMonitor(Vertical):
    """Shows one `TrainProgress`; events are recorded at once and repainted in batches."""

    class Progressed(Message):
        """New data arrived; a flood of these collapses into one repaint."""

        def can_replace(self, message: Message) -> bool:
            """Any pending repaint request covers this one too."""
            return isinstance(message, TrainingMonitor.Progressed)

    class CheckpointLanded(Message):
        """The trainer published a checkpoint."""

        def __init__(self, event: CheckpointEvent) -> None:
            super().__init__()
            self.event = event

    class Ended(Message):
        """Training finished, stopped or failed."""

        def __init__(self, event: DoneEvent | ErrorEvent) -> None:
            super().__init__()
            self.event = event

    def __init__(self) -> None:
        super().__init__()
        self.progress = TrainProgress()
        """The run shown."""

    def compose(self) -> ComposeResult:
        """Summary line, progress bar, loss plot, checkpoint table."""
        yield Label(self.progress.summary(), id="train-stats", markup=False)
        yield ProgressBar(id="train-progress", show_eta=False)
        yield PlotextPlot(id="loss-plot")
        yield Label("Checkpoints (each one is served as soon as it lands)", classes="section-title")
        yield DataTable(id="checkpoints", cursor_type="row", zebra_stripes=True)

    @property
    def stats(self) -> Label:
        """The summary line."""
        return self.query_one("#train-stats", Label)

    @property
    def bar(self) -> ProgressBar:
        """Steps done of the total, with ETA."""
        return self.query_one(ProgressBar)

    @property
    def plot(self) -> PlotextPlot:
        """Train and validation loss by step."""
        return self.query_one(PlotextPlot)

    @property
    def table(self) -> DataTable[str]:
        """Checkpoints as they land."""
        return self.query_one("#checkpoints", DataTable)

    def on_mount(self) -> None:
        """Set up the table columns and an empty plot."""
        self.table.add_columns("step", "version", "val loss", "best", "served")
        self._paint_plot()

    def record(self, event: TrainEvent) -> None:
        """Take one event; the repaint follows once the burst is over."""
        if isinstance(event, StartEvent) and event.resumed_from is None:
            self.progress = TrainProgress()
            self.table.clear()
        self.progress.apply(event)
        if isinstance(event, CheckpointEvent):
            self.post_message(self.CheckpointLanded(event))
        if isinstance(event, DoneEvent | ErrorEvent):
            self.post_message(self.Ended(event))
        self.post_message(self.Progressed())

    def job_created(self, persona: str, job_id: str, status: str) -> None:
        """Show a new job at once (its trainer takes a while to send its first event)."""
        self.progress = TrainProgress()
        self.progress.starting(persona, job_id, status)
        self.table.clear()
        self.bar.update(total=None, progress=0)
        self.post_message(self.Progressed())

    def mark_live(self, version: str) -> bool:
        """Tick a checkpoint the server has loaded; True if it belongs to the run shown."""
        ours = self.progress.mark_live(version)
        if ours:
            self.post_message(self.Progressed())
        return ours

    def on_training_monitor_progressed(self, message: Progressed) -> None:
        """Repaint everything from the recorded progress."""
        message.stop()
        progress = self.progress
        self.stats.update(progress.summary())
        if progress.total_steps:
            self.bar.update(total=progress.total_steps, progress=progress.step)
        self._paint_plot()
        self._paint_table()

    def _paint_plot(self) -> None:
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss")
        plt.xlabel("step")
        if self.progress.train_points:
            steps, losses = zip(*self.progress.train_points, strict=True)
            plt.plot(list(steps), list(losses), label="train", marker="braille")
        if self.progress.val_points:
            steps, losses = zip(*self.progress.val_points, strict=True)
            plt.plot(list(steps), list(losses), label="val", marker="dot")
        self.plot.refresh()

    def _paint_table(self) -> None:
        table = self.table
        table.clear()
        for row in self.progress.checkpoints:
            val = f"{row.val_loss:.3f}" if row.val_loss is not None else "-"
            served = "hot-loaded ✓" if row.live else "waiting"
            table.add_row(str(row.step), row.version, val, "★" if row.best else "", served)
        if self.progress.checkpoints:
            table.move_cursor(row=len(self.progress.checkpoints) - 1)
