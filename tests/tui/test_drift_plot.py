"""The Eval screen's drift plot reads the drift section of a real `persona eval --json` result."""

from __future__ import annotations

import msgspec
from textual.app import App, ComposeResult

from data.eval.metrics import TurnScores, drift
from data.eval.report import to_json
from data.eval.run import EvalResult
from tui.widgets.drift_plot import DriftPlot


def _result(with_drift: bool) -> bytes:
    turns = [
        TurnScores(
            turn=t,
            replies=2,
            completion_rate=1.0,
            marker_rate=1.0 - 0.1 * t,
            catchphrase_rate=0.5,
            banned_rate=0.0,
            criteria_pass=0.8,
            length_in_range=1.0,
            echo_rate=0.0,
        )
        for t in range(1, 5)
    ]
    result = EvalResult(
        persona="juni",
        models=[],
        samples=[],
        seed=0,
        samples_per_prompt=1,
        created=0.0,
        turns=4 if with_drift else 0,
        drift=[drift("juni", turns)] if with_drift else [],
    )
    return to_json(result)


class PlotApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DriftPlot()


async def test_the_plot_shows_drift_and_hides_without_it() -> None:
    report = msgspec.json.decode(_result(True), type=EvalResult)
    assert report.turns == 4
    assert [round(t.marker_rate, 2) for t in report.drift[0].turns] == [0.9, 0.8, 0.7, 0.6]
    assert round(report.drift[0].change["marker_rate"], 2) == -0.3
    app = PlotApp()
    async with app.run_test(size=(80, 30)) as pilot:
        plot = app.query_one(DriftPlot)
        assert not plot.display
        plot.show_report(report)
        await pilot.pause()
        assert plot.display
        assert plot.size.height == 14
        plot.show_report(msgspec.json.decode(_result(False), type=EvalResult))
        await pilot.pause()
        assert not plot.display
