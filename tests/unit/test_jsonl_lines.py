"""JSONL records end at `\n` alone: raw U+2028, U+2029 and U+0085 inside a string are text."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from data.check import check_dataset
from data.dataset import read_dataset
from data.eval.suite import read_suite
from data.jsonl import count_records, read_json_lines, split_records
from data.stats import dataset_stats
from server.wire.records import DataCheck, DataRow
from studio.cli import main
from tui.data_report import record_at

FIXTURE = Path(__file__).parents[1] / "fixtures" / "datasets" / "line_separators.jsonl"
SEPARATORS = ("\u2028", "\u2029", "\x85")


def test_the_fixture_holds_raw_separators_that_splitlines_would_break_on() -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    assert all(s in text for s in SEPARATORS)
    assert text.count("\n") == 10
    assert len(text.splitlines()) == 20  # what a naive reader would count


def test_every_reader_and_counter_sees_ten_records() -> None:
    assert len(split_records(FIXTURE.read_bytes())) == 10
    assert count_records(FIXTURE) == 10
    lines, problems = read_json_lines(FIXTURE)
    assert problems == []
    assert [item.line for item in lines] == list(range(1, 11))
    loaded = read_dataset(FIXTURE)
    assert len(loaded.rows) == 10
    reply = loaded.rows[0].record.messages[1].content  # type: ignore[union-attr]
    assert "\u2028" in reply
    stats = dataset_stats([r.record for r in loaded.rows])
    assert (stats.records, stats.replies) == (10, 10)


def test_split_reports_the_records_each_file_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(FIXTURE, tmp_path / "dataset.jsonl")
    assert main(["data", "split", str(tmp_path / "dataset.jsonl"), "--valid", "0.2"]) == 0
    out = capsys.readouterr().out
    written = dict(re.findall(r"wrote \S+/(\w+)\.jsonl \((\d+) records\)", out))
    assert written == {"train": "8", "valid": "2"}
    assert count_records(tmp_path / "train.jsonl") == 8
    assert (tmp_path / "train.jsonl").read_bytes().count(b"\n") == 8


def test_check_and_stats_agree_on_line_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(FIXTURE), "--no-tokenizer"]) == 0
    assert "10 records checked" in capsys.readouterr().out


def test_eval_suite_lines_are_counted_the_same_way(tmp_path: Path) -> None:
    suite = tmp_path / "eval.jsonl"
    case = '{"id": "c%d", "category": "general", "messages": [{"role": "user", "content": "a%sb"}]}'
    suite.write_text("\n".join(case % (i, s) for i, s in enumerate(SEPARATORS)) + "\n", "utf-8")
    numbered, problems = read_suite(suite)
    assert problems == []
    assert [line for line, _ in numbered] == [1, 2, 3]


def test_the_tui_shows_the_record_at_the_checkers_line() -> None:
    report = check_dataset([FIXTURE], None, None)
    rows = [DataRow(r.file, r.line, r.raw) for r in report.rows]
    view = DataCheck(files=[], rows=rows, problems=[], notes=[])
    shown = record_at(view, report.rows[2].file, 3)
    assert shown.startswith("user: Tell me about the moon.")
    assert "could not be read" in record_at(view, report.rows[2].file, 11)
