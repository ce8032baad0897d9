"""Find personas: folders holding `persona.toml`, searched in order, first name wins.

The default search order is the user's personas folder, then any extra folders, then the samples
that ship with the package, so a user can override a sample by copying it under the same name.
A bad card is reported as a problem and skipped; discovery itself never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .card import CardError, PersonaCard, load_card
from .home import personas_dir
from .problem import Problem, error, warning

CARD = "persona.toml"
TRAIN_FILES = ("train.jsonl", "dataset.jsonl")
VALID = "valid.jsonl"
EVAL = "eval.jsonl"
PREFERENCE = "preference.jsonl"
"""Reviewed preference pairs that `persona train --method dpo|orpo` trains on."""
PAIRS = "pairs.jsonl"
"""Pairs drafted by `persona data pairs`, waiting for review; never trained on directly."""


@dataclass(frozen=True)
class PersonaEntry:
    """A discovered persona: its name, its folder and its decoded card."""

    name: str
    folder: Path
    card: PersonaCard

    @property
    def train_file(self) -> Path | None:
        """`train.jsonl`, else `dataset.jsonl` (to be split), else None."""
        return next((p for n in TRAIN_FILES if (p := self.folder / n).is_file()), None)

    @property
    def valid_file(self) -> Path | None:
        """`valid.jsonl`, if the persona ships its own validation split."""
        path = self.folder / VALID
        return path if path.is_file() else None

    @property
    def eval_file(self) -> Path | None:
        """`eval.jsonl`, the held-out eval suite, if present."""
        path = self.folder / EVAL
        return path if path.is_file() else None


SAFETY_SETS = Path(__file__).parent / "samples" / "safety"
"""The shipped general guard sets live beside the sample personas but are not one."""


def sample_personas_dir() -> Path:
    """The read-only sample personas shipped inside the package."""
    return Path(__file__).parent / "samples"


def default_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """The search order: user personas, then `extra`, then the samples."""
    return [personas_dir(), *extra, sample_personas_dir()]


def discover(dirs: Sequence[Path] | None = None) -> tuple[list[PersonaEntry], list[Problem]]:
    """Every persona in `dirs` (default: `default_dirs()`), first name wins; problems collected."""
    entries: dict[str, PersonaEntry] = {}
    problems: list[Problem] = []
    for base in default_dirs() if dirs is None else dirs:
        if not base.is_dir():
            continue
        seen_here: dict[str, Path] = {}
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if folder.name.startswith((".", "_")) or folder == SAFETY_SETS:
                continue
            card_path = folder / CARD
            if not card_path.is_file():
                problems.append(warning(str(folder), 0, f"no {CARD}; not a persona"))
                continue
            try:
                card = load_card(card_path)
            except CardError as exc:
                problems += [
                    error(str(card_path), 0, _strip_source(m, card_path))
                    for m in str(exc).splitlines()
                ]
                continue
            if card.name != folder.name:
                problems.append(
                    warning(str(card_path), 0, f"name {card.name!r} differs from the folder name")
                )
            if card.name in seen_here:
                problems.append(
                    error(
                        str(card_path),
                        0,
                        f"name {card.name!r} is also used by {seen_here[card.name]}",
                    )
                )
                continue
            seen_here[card.name] = folder
            entries.setdefault(card.name, PersonaEntry(card.name, folder, card))
    return list(entries.values()), problems


def find_persona(name: str, dirs: Sequence[Path] | None = None) -> PersonaEntry | None:
    """The persona called `name`, if discovery finds one."""
    entries, _ = discover(dirs)
    return next((e for e in entries if e.name == name), None)


def _strip_source(message: str, path: Path) -> str:
    return message.removeprefix(f"{path}: ")
