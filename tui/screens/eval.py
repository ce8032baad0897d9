"""Eval: run a persona's held-out suite on the server against chosen model ids, side by side;
each reply shows as it lands. A persona without a suite is offered one held out from its own
tagged records."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

import msgspec
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, ProgressBar, Select

from server.jobs.types import EvalRun

from ..api import ApiError
from ..eval_progress import EvalClock
from ..eval_view import metric_rows
from ..widgets.drift_plot import DriftPlot
from ..wire import EvalResult, SampleResult
from .base import StudioScreen
from .confirm import ConfirmDialog

POLL_SECONDS = 0.5


class EvalScreen(StudioScreen):
    """Metrics per model, then every reply with the rules it broke."""

    MODE = "eval"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "run_eval", "Run eval"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+g", "pick_persona", "Persona"),
        Binding("ctrl+b", "build_suite", "Build suite"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report_shown: EvalResult | None = None
        """The result on screen."""
        self.samples: list[SampleResult] = []
        """The replies table's rows, in order."""
        self.run: EvalRun | None = None
        """The evaluation running on the server, if any."""
        self.without_suite: set[str] = set()
        """Personas the server has no `eval.jsonl` for."""
        self.landed: list[SampleResult] = []
        """Replies of the running evaluation, in the order they were scored."""

    def compose_body(self) -> ComposeResult:
        """Persona and model ids on the left, results on the right."""
        with Horizontal(id="eval-main"):
            with Vertical(classes="side-panel"):
                yield Label("Persona", classes="section-title")
                yield Select[str]([], id="eval-persona", prompt="choose a persona")
                yield Label("Model ids (space-separated)", classes="section-title")
                yield Input(id="eval-models", placeholder="e.g. juni gemma-3-270m juni@run-1:best")
                yield Label("Drift turns (0 = none)", classes="section-title")
                yield Input("0", id="eval-turns", type="integer", placeholder="e.g. 8")
                yield Label(
                    "Ctrl+S has the server send every prompt of the persona's eval.jsonl to "
                    "each model id and score the replies; with drift turns it also plays the "
                    "suite's conversation scripts and plots voice and criteria per turn.",
                    classes="hint",
                )
                yield Label("", id="eval-suite", markup=False)
                yield ProgressBar(id="eval-progress", show_eta=False)
            with Vertical(id="eval-body"):
                yield Label("Metrics", classes="section-title")
                yield DataTable(id="eval-metrics", zebra_stripes=True, cursor_type="row")
                yield DriftPlot()
                yield Label("Replies (select one to read it)", classes="section-title")
                yield DataTable(id="eval-samples", zebra_stripes=True, cursor_type="row")
                yield Label("", id="eval-output", markup=False)

    @property
    def persona_select(self) -> Select[str]:
        """The persona picker."""
        return self.query_one("#eval-persona", Select)

    @property
    def models_input(self) -> Input:
        """Which model ids to compare."""
        return self.query_one("#eval-models", Input)

    @property
    def turns_input(self) -> Input:
        """Turns per drift conversation (`persona eval --turns`)."""
        return self.query_one("#eval-turns", Input)

    @property
    def metrics(self) -> DataTable[str]:
        """Metrics side by side."""
        return self.query_one("#eval-metrics", DataTable)

    @property
    def sample_table(self) -> DataTable[str]:
        """Every reply."""
        return self.query_one("#eval-samples", DataTable)

    @property
    def output(self) -> Label:
        """The selected reply in full."""
        return self.query_one("#eval-output", Label)

    @property
    def progress(self) -> ProgressBar:
        """Replies done of the total."""
        return self.query_one("#eval-progress", ProgressBar)

    def on_mount(self) -> None:
        """List the server's personas."""
        super().on_mount()
        self.reload()

    @property
    def suite_note(self) -> Label:
        """Says when the chosen persona has no eval suite."""
        return self.query_one("#eval-suite", Label)

    @work(exclusive=True, group="eval-personas")
    async def reload(self) -> None:
        """Fetch every persona; those without an eval suite are listed too, and say so."""
        found = await self.offer_personas(self.persona_select)
        if found is not None:
            self.without_suite = {p.id for p in found if "eval.jsonl" not in p.data_files}
            self._show_suite(self.persona_select.value)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer Build suite (in the footer and the palette) only for a persona without one."""
        if action == "build_suite":
            return self.persona_select.value in self.without_suite
        return True

    def _show_suite(self, persona: object) -> None:
        self.refresh_bindings()
        missing = isinstance(persona, str) and persona in self.without_suite
        self.suite_note.update(
            f"{persona} has no eval.jsonl on the server. Ctrl+B builds one from its tagged "
            "records, held out from training; or add one next to its persona.toml."
            if missing
            else ""
        )

    @on(Select.Changed, "#eval-persona")
    def _persona_chosen(self, event: Select.Changed) -> None:
        self._show_suite(event.value)
        if isinstance(event.value, str):
            base = self.studio.status.model or "gemma-3-270m"
            self.models_input.value = f"{event.value} {base}"

    def action_run_eval(self) -> None:
        """Run the suite."""
        persona = self.persona_select.value
        if not isinstance(persona, str):
            self.notify("Choose a persona first.", severity="warning")
            return
        if persona in self.without_suite:
            self.notify(
                f"{persona} has no eval.jsonl to run: Ctrl+B builds one.", severity="warning"
            )
            return
        text = self.turns_input.value.strip() or "0"
        try:
            turns = int(text)
        except ValueError:
            self.notify(f"Drift turns: {text!r} is not a whole number.", severity="warning")
            return
        self.evaluate(persona, self.models_input.value.split(), turns)

    @work(exclusive=True, group="eval")
    async def evaluate(self, persona: str, models: list[str], turns: int = 0) -> None:
        """Queue an evaluation on the server, follow its progress, then show the result."""
        self.progress.update(total=None, progress=0)
        drift = f", {turns}-turn drift" if turns else ""
        self.notify(f"Evaluating {', '.join(models) or persona}{drift}…", title="Eval")
        self.landed = []
        self._sample_columns()
        try:
            run = await self.api.create_eval(persona, models, turns=turns)
            self.run = run
            clock = EvalClock(time.monotonic())
            if await self._follow(persona, run.id, clock):
                run = await self.api.eval_run(persona, run.id)  # the stream ended with the run
            while run.status in ("queued", "running"):
                await asyncio.sleep(POLL_SECONDS)
                run = await self.api.eval_run(persona, run.id)
                done, total = run.progress.done, run.progress.total
                self.suite_note.update(clock.text(done, total, time.monotonic()))
                if total:
                    self.progress.update(total=total, progress=done)
        except ApiError as error:
            self.report(error)
            self.progress.update(total=100, progress=0)
            return
        finally:
            self.run = None
        if run.progress.total:
            self.suite_note.update(f"{run.progress.done}/{run.progress.total} replies scored")
        if run.status != "succeeded" or run.result is None:
            reason = run.error.message if run.error else run.status
            self.notify(reason, title=f"Eval {run.status}", severity="error")
            return
        self.show_report(msgspec.convert(run.result, EvalResult))

    async def _follow(self, persona: str, run_id: str, clock: EvalClock) -> bool:
        """Show each reply as the server scores it, with `7/18 · ETA`, until the run ends (True);
        False when the stream dropped or is not offered, and polling takes over."""
        try:
            async for event in self.api.eval_events(persona, run_id):
                data = event.data or {}
                done, total = data.get("done"), data.get("total")
                if isinstance(done, int) and isinstance(total, int):
                    self.suite_note.update(clock.text(done, total, time.monotonic()))
                    if total:
                        self.progress.update(total=total, progress=done)
                if "sample" in data:
                    try:
                        sample = msgspec.convert(data["sample"], SampleResult)
                    except msgspec.ValidationError:
                        continue  # a reply this TUI cannot read: the final result still has it
                    self._landed(sample)
        except ApiError:
            return False
        return True

    def _sample_columns(self) -> None:
        self.samples = []
        self.sample_table.clear(columns=True)
        self.sample_table.add_columns("case", "category", "model", "result", "why")

    def _landed(self, sample: SampleResult) -> None:
        self.landed.append(sample)
        self.samples.append(sample)
        self.sample_table.add_row(*self._sample_row(sample))

    @staticmethod
    def _sample_row(sample: SampleResult) -> tuple[str, str, str, str, str]:
        if sample.error:
            result, why = "error", sample.error
        else:
            result = "pass" if sample.criteria.passed else "fail"
            why = "; ".join(sample.criteria.failures)
        return sample.label, sample.category, sample.model, result, why

    def show_report(self, report: EvalResult) -> None:
        """Fill both tables from a result."""
        self.report_shown = report
        columns, rows = metric_rows(report)
        self.metrics.clear(columns=True)
        self.metrics.add_columns(*columns)
        self.metrics.add_rows(rows)
        self.query_one(DriftPlot).show_report(report)
        self._sample_columns()
        self.samples = [*report.samples, *report.drift_samples]
        for sample in self.samples:
            self.sample_table.add_row(*self._sample_row(sample))
        self.output.update("")

    @on(DataTable.RowHighlighted, "#eval-samples")
    def _sample_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.samples):
            sample = self.samples[event.cursor_row]
            adapter = f" (adapter {sample.adapter})" if sample.adapter else ""
            self.output.update(f"{sample.label} · {sample.model}{adapter}\n\n{sample.text}")

    def action_stop(self) -> None:
        """Cancel the running evaluation on the server."""
        if self.run is not None:
            self.cancel_run(self.run.persona, self.run.id)

    @work(group="eval-cancel")
    async def cancel_run(self, persona: str, run_id: str) -> None:
        """Ask the server to stop the evaluation (the follow loop then sees it cancelled)."""
        try:
            await self.api.cancel_eval(persona, run_id)
        except ApiError as error:
            self.report(error)

    def action_build_suite(self) -> None:
        """Offer to hold out some of the persona's tagged records as its eval suite."""
        persona = self.persona_select.value
        if not isinstance(persona, str):
            self.notify("Choose a persona first.", severity="warning")
            return
        if persona not in self.without_suite:
            self.notify(f"{persona} has an eval suite already.", severity="warning")
            return
        question = f"Build {persona}'s eval suite from its own tagged records?"
        detail = (
            "15% of the records tagged with a category (boundary, idk, clarify, …) become "
            "eval.jsonl and leave the training file, so training never sees them."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.build_suite(persona)

        self.app.push_screen(ConfirmDialog(question, detail, yes="Build"), answered)

    @work(exclusive=True, group="eval-suite")
    async def build_suite(self, persona: str) -> None:
        """Have the server hold out the suite, then offer the persona as one to run."""
        try:
            built = await self.api.build_suite(persona)
        except ApiError as error:
            self.report(error)
            return
        shares = ", ".join(f"{k} {v}" for k, v in sorted(built.by_category.items()))
        back = f"; {built.returned} stayed in training (too close to a training prompt)"
        self.notify(
            f"{built.file}: {built.cases} cases ({shares}); {built.train_file} keeps "
            f"{built.train_records} records"
            + (back if built.returned else "")
            + ". Ctrl+S runs it.",
            title=f"Eval suite for {persona}",
            timeout=15,
        )
        self.without_suite.discard(persona)
        self._show_suite(persona)
        self.studio.personas_version += 1

    def action_pick_persona(self) -> None:
        """Focus the persona picker."""
        self.persona_select.focus()
