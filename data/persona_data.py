"""A persona folder's data as a whole: what `persona data check` and `stats` report for it.

Shared by the server's data routes; problems name files relative to the persona folder, so a
report never shows where the server keeps its files.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from .card import PersonaCard
from .check import CheckReport, check_dataset
from .dataset import read_datasets
from .eval.pair_replies import pair_reply_problems
from .eval.suite import read_suite
from .personas import EVAL, data_files
from .split import contamination
from .stats import DatasetStats, dataset_stats
from .tokens import ChatTokenizer


def check_persona(
    folder: Path, card: PersonaCard, tokenizer: ChatTokenizer | None = None
) -> CheckReport:
    """Every problem of the persona's datasets and eval suite, as `persona data check` finds."""
    report = check_dataset(data_files(folder), card, tokenizer)
    problems = list(report.problems)
    suite = folder / EVAL
    if suite.is_file():
        numbered, found = read_suite(suite)
        problems += found
        problems += pair_reply_problems(str(suite), numbered, card.style.reply_words, tokenizer)
        problems += contamination(str(suite), numbered, report.rows)
    return _relative(
        msgspec.structs.replace(report, problems=tuple(problems)), folder, suite.is_file()
    )


def persona_stats(
    folder: Path, card: PersonaCard, tokenizer: ChatTokenizer | None = None
) -> DatasetStats:
    """`persona data stats` of the persona's datasets."""
    loaded = read_datasets(data_files(folder))
    return dataset_stats([r.record for r in loaded.rows], card, tokenizer)


def _relative(report: CheckReport, folder: Path, with_suite: bool) -> CheckReport:
    def name(path: str) -> str:
        p = Path(path)
        return p.name if p.parent == folder else path

    files = [*report.files, *([str(folder / EVAL)] if with_suite else [])]
    return CheckReport(
        files=tuple(name(f) for f in files),
        rows=tuple(msgspec.structs.replace(r, file=name(r.file)) for r in report.rows),
        problems=tuple(msgspec.structs.replace(p, file=name(p.file)) for p in report.problems),
        notes=report.notes,
    )
