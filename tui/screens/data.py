"""Data: a persona's dataset checks on the server (file:line, with the record), its stats,
draft review, and its records to add, edit and delete."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Select, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from ..api import ApiError
from ..data_report import check_summary, location, record_at
from ..widgets.draft_review import DraftReviewPane
from ..widgets.record_table import RecordsPane
from ..wire import DataCheck, DatasetStats, Problem
from .base import StudioScreen

TABS = ("tab-problems", "tab-stats", "tab-review", "tab-records")


def count_ticks(top: int, most: int = 5) -> list[int]:
    """Whole-number axis ticks from 0 to at least `top`, at most `most` + 1 of them."""
    step = max(1, -(-top // most))
    return list(range(0, top + step, step))


class DataScreen(StudioScreen):
    """What `persona data check` and `persona data stats` report, browsable."""

    MODE = "data"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run_checks", "Check"),
        Binding("ctrl+t", "toggle_tab", "Next tab"),
        Binding("ctrl+e", "show_records", "Records"),
        Binding("ctrl+g", "pick_persona", "Persona"),
        Binding("ctrl+n", "app.new_persona", "New"),
        Binding("ctrl+o", "app.import_card", "Import"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[Problem] = []
        """The problems table's rows, in order."""
        self.checked: DataCheck | None = None
        """The server's check report shown (its rows hold each record as written)."""
        self.stats: DatasetStats | None = None
        """The stats shown."""

    def compose_body(self) -> ComposeResult:
        """Persona and summary on the left; problems and stats in tabs on the right."""
        with Horizontal(id="data-main"):
            with Vertical(classes="side-panel"):
                yield Label("Persona", classes="section-title")
                yield Select[str]([], id="data-persona", prompt="choose a persona")
                yield Label("", id="data-summary", markup=False)
                yield Label("", id="data-warning", markup=False)
            with Vertical(id="data-body"), TabbedContent(id="data-tabs"):
                with TabPane("Problems", id="tab-problems"):
                    yield DataTable(id="data-problems", cursor_type="row", zebra_stripes=True)
                    yield Label("", id="data-record", markup=False)
                with TabPane("Stats", id="tab-stats"):
                    yield PlotextPlot(id="length-plot")
                    with Horizontal(id="data-tables"):
                        yield DataTable(id="data-tags", zebra_stripes=True)
                        yield DataTable(id="data-phrases", zebra_stripes=True)
                with TabPane("Review", id="tab-review"):
                    yield DraftReviewPane(self.api)
                with TabPane("Records", id="tab-records"):
                    yield RecordsPane(self.api)

    @property
    def persona_select(self) -> Select[str]:
        """The persona picker."""
        return self.query_one("#data-persona", Select)

    @property
    def problem_table(self) -> DataTable[str]:
        """Every problem, as file:line."""
        return self.query_one("#data-problems", DataTable)

    @property
    def record(self) -> Label:
        """The record the selected problem points at."""
        return self.query_one("#data-record", Label)

    @property
    def summary(self) -> Label:
        """Records, errors, warnings."""
        return self.query_one("#data-summary", Label)

    @property
    def warning(self) -> Label:
        """Stats warnings such as uniform reply lengths."""
        return self.query_one("#data-warning", Label)

    def on_mount(self) -> None:
        """List the server's personas and check the first."""
        super().on_mount()
        self.problem_table.add_columns("where", "severity", "problem")
        self.reload()

    @work(exclusive=True, group="data-personas")
    async def reload(self) -> None:
        """Fetch the personas from the server."""
        found = await self.offer_personas(self.persona_select) or []
        made = self.studio.persona_made
        if made in {p.id for p in found} and self.persona_select.value != made:
            self.persona_select.value = made  # show the persona just created or imported

    @on(Select.Changed, "#data-persona")
    def _persona_chosen(self) -> None:
        self.action_run_checks()

    def action_run_checks(self) -> None:
        """Check the dataset and measure it again."""
        persona = self.persona_select.value
        if isinstance(persona, str):
            self.summary.update(f"Checking {persona}…")
            self.check(persona)
            self.measure(persona)
            self.query_one(DraftReviewPane).load(persona)
            if self.query_one(TabbedContent).active == "tab-records":
                self.records.load(persona)

    @on(TabbedContent.TabActivated, "#data-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-review":
            self.query_one(DraftReviewPane).table.focus()  # so a / e / r work at once
        self.refresh_bindings()
        if event.pane.id == "tab-records":
            persona = self.persona_select.value
            if isinstance(persona, str):
                self.records.load(persona)  # fetched when shown: a sample has 1,000 records
            self.records.table.focus()

    @property
    def records(self) -> RecordsPane:
        """The persona's records, to add, edit and delete."""
        return self.query_one(RecordsPane)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Records leaves the footer while its tab is the one shown (room for a, e, d)."""
        if action == "show_records":
            return self.query_one(TabbedContent).active != "tab-records"
        return True

    def action_show_records(self) -> None:
        """Show the Records tab."""
        self.query_one(TabbedContent).active = "tab-records"

    @on(RecordsPane.Changed)
    def _records_changed(self) -> None:
        persona = self.persona_select.value
        if isinstance(persona, str):
            self.check(persona)
            self.measure(persona)

    @on(DraftReviewPane.Accepted)
    def _draft_accepted(self) -> None:
        persona = self.persona_select.value
        if isinstance(persona, str):
            self.check(persona)
            self.measure(persona)

    @work(exclusive=True, group="data-check")
    async def check(self, persona: str) -> None:
        """Ask the server to check the persona's data and list the problems."""
        try:
            outcome = await self.api.data_check(persona)
        except ApiError as error:
            self.summary.update(f"{error.title}: {error.message}")
            self.report(error)
            return
        self.show_problems(outcome)

    def show_problems(self, outcome: DataCheck) -> None:
        """List what the check found."""
        self.checked = outcome
        self.problems = outcome.problems
        table = self.problem_table
        table.clear()
        for problem in self.problems:
            table.add_row(location(problem), problem.severity, problem.message)
        self.summary.update(check_summary(outcome))
        self.record.update("" if self.problems else "No problems found.")

    @work(exclusive=True, group="data-stats")
    async def measure(self, persona: str) -> None:
        """Ask the server for the persona's data stats and show them."""
        try:
            stats = await self.api.data_stats(persona)
        except ApiError as error:
            self.warning.update(f"{error.title}: {error.message}")
            return
        self.show_stats(stats)

    def show_stats(self, stats: DatasetStats) -> None:
        """Histogram, tag and failure-mode coverage, phrase rates, warnings."""
        self.stats = stats
        warnings = "\n".join(f"⚠ {w}" for w in stats.warnings)
        self.warning.update(warnings or "No warnings: lengths vary and failure modes are covered.")
        plot = self.query_one("#length-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        bands = stats.words.histogram
        counts = [b.count for b in bands]
        plt.bar([f"{b.low}-{b.high}" for b in bands], counts)
        plt.yticks(count_ticks(max(counts, default=0)))  # records come whole: no 2.5 ticks
        plt.title(
            f"reply length ({stats.words.unit}): mean {stats.words.mean:.0f}, "
            f"CV {stats.words.cv:.2f}, {stats.records} records"
        )
        plot.refresh()
        tags = self.query_one("#data-tags", DataTable)
        tags.clear(columns=True)
        tags.add_columns("tag / failure mode", "records", "share")
        names = {s.text for s in stats.failure_modes}
        for share in [*stats.failure_modes, *[t for t in stats.tags if t.text not in names]]:
            tags.add_row(share.text, str(share.count), f"{share.share:.0%}")
        phrases = self.query_one("#data-phrases", DataTable)
        phrases.clear(columns=True)
        phrases.add_columns("phrase / catchphrase", "replies")
        for share in [*stats.catchphrases, *stats.phrases, *stats.openers]:
            phrases.add_row(share.text, f"{share.share:.0%}")

    @on(DataTable.RowHighlighted, "#data-problems")
    def _problem_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.problems):
            problem = self.problems[event.cursor_row]
            record = record_at(self.checked, problem.file, problem.line) if self.checked else ""
            self.record.update(f"{location(problem)}\n\n{record}")

    def action_toggle_tab(self) -> None:
        """Switch between the problems, the stats, the drafts to review and the records."""
        tabs = self.query_one(TabbedContent)
        tabs.active = (
            TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]
        )

    def action_pick_persona(self) -> None:
        """Focus the persona picker."""
        self.persona_select.focus()
