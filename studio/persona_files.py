"""What `persona eval` and `persona tune-sampling` load from a persona: its suite, its replies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.card import PersonaCard


@dataclass(frozen=True)
class PersonaFiles:
    """A persona's card, folder, eval suite and training replies."""

    name: str
    folder: Path
    card: PersonaCard
    cases: tuple = ()  # type: ignore[type-arg]
    cases_problems: tuple[str, ...] = ()
    training_replies: tuple[str, ...] = field(default=())
    scripts: tuple = ()  # type: ignore[type-arg]
    """The suite's conversation scripts, for `--turns`."""


def load_persona_files(
    name_or_path: str, extra_dirs: Sequence[Path] = (), suite: Path | None = None
) -> PersonaFiles:
    """Resolve a persona (`data.personas.resolve`) and load its eval suite and training replies;
    `suite` replaces the persona's own `eval.jsonl`. PersonaError (a LookupError) if none."""
    from data.dataset import read_dataset
    from data.eval.suite import load_suite, read_scripts
    from data.personas import resolve
    from data.records import replies

    entry = resolve(name_or_path, extra_dirs)
    folder, card = entry.folder, entry.card
    cases: tuple = ()  # type: ignore[type-arg]
    problems: tuple[str, ...] = ()
    suite = suite or folder / "eval.jsonl"
    scripts: tuple = ()  # type: ignore[type-arg]
    if suite.exists():
        found, issues = load_suite(suite)
        numbered, bad = read_scripts(suite)
        cases, problems = tuple(found), tuple(str(p) for p in [*issues, *bad])
        scripts = tuple(script for _, script in numbered)
    texts: list[str] = []
    if entry.train_file is not None:
        for row in read_dataset(entry.train_file).rows:
            texts.extend(replies(row.record))
    return PersonaFiles(card.name, folder, card, cases, problems, tuple(texts), scripts)
