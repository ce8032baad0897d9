"""A plot of persona metrics per conversation turn, from an eval result's drift section."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ..wire import EvalResult

SERIES = (("marker_rate", "voice"), ("criteria_pass", "criteria"))
"""(field, label) of each line drawn per model."""


class DriftPlot(PlotextPlot):
    """Voice-marker rate and criteria pass by turn, one pair of lines per model; hidden when
    the result has no drift conversations."""

    DEFAULT_CSS = """
    DriftPlot {
        height: 14;
        display: none;
    }
    """

    def show_report(self, report: EvalResult) -> None:
        """Draw the report's drift, or hide the plot when it has none."""
        self.display = bool(report.drift)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"drift over {report.turns} turns")
        plt.xlabel("turn")
        plt.ylim(0, 1)
        for drift in report.drift:
            turns = [t.turn for t in drift.turns]
            for field, label in SERIES:
                values = [float(getattr(t, field)) for t in drift.turns]
                plt.plot(turns, values, label=f"{drift.model} {label}", marker="braille")
        self.refresh()
