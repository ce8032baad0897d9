"""Eval scores land in a run's run.json without disturbing what the trainer wrote."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.training.record import store_eval


def test_store_eval_merges_per_step(tmp_path: Path) -> None:
    run = tmp_path / "run-1"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "training", "metrics": {"50": {"val": 1}}}))
    store_eval(run, 50, {"score": 0.5})
    store_eval(run, 100, {"score": 0.7})
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "training"
    assert record["metrics"] == {"50": {"val": 1}}
    assert record["eval"]["50"]["score"] == 0.5
    assert record["eval"]["100"]["score"] == 0.7
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # no temp files left
