"""Build a persona's first eval suite from its own tagged records, held out from training.

The records tagged with an eval category are split with `split_rows` (stratified by tag, seeded,
near-duplicate prompts kept together), and the held-out share becomes `eval.jsonl`: each record's
conversation up to its last user turn is a probe of that category. The held-out lines leave the
training file; a probe still close to a prompt left in training (`contamination`) goes back
instead, so the suite never measures memory. The suite is written first, then the training
file, each by atomic rename, under the persona's drafts lock.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec

from .atomic import write_bytes
from .authoring.drafts.store import locked
from .card import PersonaCard
from .check import check_dataset
from .dataset import Row, read_dataset
from .eval.suite import CATEGORIES, EvalCase
from .jsonl import split_records
from .personas import EVAL, TRAIN_FILES, VALID, training_set
from .records import PreferenceRecord, Record, as_messages
from .split import contamination, split_rows

DEFAULT_SHARE = 0.15
"""The share of the tagged records held out when the caller names none."""


class HoldOutError(Exception):
    """Why no suite was built: `exists`, `no_data` or `invalid` (the message says what to do)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class HeldOutSuite(msgspec.Struct, frozen=True):
    """What was held out: the suite's cases per category and what training keeps."""

    file: str
    cases: int
    by_category: dict[str, int]
    train_file: str
    train_records: int
    returned: int
    """Held-out records put back in training: their prompt is close to one that stays there."""


def category_of(record: Record) -> str | None:
    """The eval category a record's tags give it (its first tag that is one), if any."""
    return next((t for t in record.tags if t in CATEGORIES), None)


def probe_of(row: Row, category: str, number: int) -> EvalCase | None:
    """The record as a probe: its turns up to the last user turn (None without a reply after)."""
    if isinstance(row.record, PreferenceRecord):
        return None
    messages = as_messages(row.record)
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None or last_user == len(messages) - 1:
        return None
    return EvalCase(f"{category}-{number:02d}", category, tuple(messages[: last_user + 1]))


def hold_out_suite(
    folder: Path, card: PersonaCard, share: float = DEFAULT_SHARE, seed: int | None = None
) -> HeldOutSuite:
    """Write `eval.jsonl` from a held-out share of the tagged records; HoldOutError if not."""
    if not 0 < share < 1:
        raise HoldOutError("invalid", "share must be between 0 and 1")
    with locked(folder):
        suite = folder / EVAL
        if suite.exists():
            raise HoldOutError("exists", f"{card.name} has an eval suite already ({EVAL})")
        source = training_set(folder)
        if source is None:
            raise HoldOutError("no_data", f"{card.name} has no {TRAIN_FILES[0]} to hold out from")
        report = check_dataset([source], card)
        if report.errors:
            found = "; ".join(f"{source.name}:{p.line}: {p.message}" for p in report.errors[:5])
            raise HoldOutError("invalid", f"fix the dataset's errors first: {found}")
        tagged = [r for r in report.rows if category_of(r.record) and _probe(r)]
        if len(tagged) < 2:
            raise HoldOutError(
                "no_data",
                f"{card.name} has {len(tagged)} records tagged with an eval category "
                f"({', '.join(CATEGORIES)}); tag a few more, then try again",
            )
        seed = card.training.seed if seed is None else seed
        held = list(split_rows(tagged, 0.0, share, seed).test)
        numbered = {id(r): n for n, r in enumerate(held, start=1)}
        cases = [
            (r, case)
            for r in held
            if (case := probe_of(r, category_of(r.record) or "general", numbered[id(r)]))
        ]
        cases, returned = _without_leaks(cases, report.rows, folder)
        if not cases:
            raise HoldOutError(
                "no_data",
                "every tagged record has a near-duplicate prompt that stays in training; "
                "nothing can be held out cleanly",
            )
        lines = {r.line for r, _ in cases}
        kept = [c for n, c in enumerate(split_records(source.read_bytes()), 1) if n not in lines]
        write_bytes(suite, b"".join(msgspec.json.encode(c) + b"\n" for _, c in cases))
        write_bytes(source, b"".join(c + b"\n" for c in kept))
    return HeldOutSuite(
        EVAL,
        len(cases),
        dict(Counter(c.category for _, c in cases)),
        source.name,
        len(kept),
        returned,
    )


def _probe(row: Row) -> bool:
    return probe_of(row, "general", 0) is not None


def _without_leaks(
    cases: list[tuple[Row, EvalCase]], rows: tuple[Row, ...], folder: Path
) -> tuple[list[tuple[Row, EvalCase]], int]:
    held = {r.line for r, _ in cases}
    training = [r for r in rows if r.line not in held]
    valid = folder / VALID
    if valid.is_file():
        training += list(read_dataset(valid).rows)
    numbered = [(n, c) for n, (_, c) in enumerate(cases)]
    leaked = {p.line for p in contamination("suite", numbered, training)}
    clean = [pair for n, pair in enumerate(cases) if n not in leaked]
    return clean, len(cases) - len(clean)
