"""Find a persona by name or folder and load what the CLI commands need from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.card import PersonaCard, load_card


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


def find_persona(
    name_or_path: str, extra_dirs: Sequence[Path] = (), suite: Path | None = None
) -> PersonaFiles:
    """Resolve a persona (user dir, extra dirs, samples; or a folder path) and load its files;
    `suite` replaces the persona's own `eval.jsonl`."""
    from data.dataset import read_dataset
    from data.personas import default_dirs, discover
    from data.records import replies
    from data.suite import load_suite, read_scripts

    path = Path(name_or_path)
    if (path / "persona.toml").exists():
        folder, card = path, load_card(path)
    else:
        entries, _ = discover(default_dirs(list(extra_dirs)))
        match = next((e for e in entries if e.name == name_or_path), None)
        if match is None:
            known = ", ".join(e.name for e in entries) or "none"
            raise LookupError(f"no persona named {name_or_path!r} (known: {known})")
        folder, card = match.folder, match.card
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
    for name in ("train.jsonl", "dataset.jsonl"):
        if (folder / name).exists():
            for row in read_dataset(folder / name).rows:
                texts.extend(replies(row.record))
            break
    return PersonaFiles(card.name, folder, card, cases, problems, tuple(texts), scripts)
