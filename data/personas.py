"""Find personas: folders holding `persona.toml`, searched in order, first name wins.

The default search order is the user's personas folder, then any extra folders, then the samples
that ship with the package, so a user can override a sample by copying it under the same name.
A bad card is reported as a problem and skipped; discovery itself never raises. `resolve()` is
the one way to turn a name or a folder into a `PersonaEntry`, and the entry is the one place
that says which file is the training set and whether the persona may be written to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .card import CardError, PersonaCard, load_card
from .home import personas_dir
from .problem import Problem, error, warning

CARD = "persona.toml"
TRAIN = "train.jsonl"
"""The training set once a dataset is split (or written that way from the start)."""
DATASET = "dataset.jsonl"
"""A whole dataset, trained on as it is until `persona data split` writes train and valid."""
TRAIN_FILES = (TRAIN, DATASET)
"""Which file is the training set: the first of these that exists."""
VALID = "valid.jsonl"
EVAL = "eval.jsonl"
PREFERENCE = "preference.jsonl"
"""Reviewed preference pairs that `persona train --method dpo|orpo` trains on."""
PAIRS = "pairs.jsonl"
"""Pairs drafted by `persona data pairs`, waiting for review; never trained on directly."""


class PersonaError(LookupError):
    """A persona that cannot be found or whose card does not load; the message names it."""


@dataclass(frozen=True)
class PersonaEntry:
    """A persona: its name, its folder and its decoded card, and the files it holds."""

    name: str
    folder: Path
    card: PersonaCard

    @property
    def read_only(self) -> bool:
        """Whether this is a shipped sample, which nothing may write into."""
        return is_sample(self.folder)

    @property
    def train_file(self) -> Path | None:
        """The training set (see `training_set`), or None."""
        return training_set(self.folder)

    @property
    def append_file(self) -> Path:
        """Where new records go (see `append_file`)."""
        return append_file(self.folder)

    @property
    def dataset_file(self) -> Path | None:
        """`dataset.jsonl`, the whole dataset `persona data split` reads, if present."""
        path = self.folder / DATASET
        return path if path.is_file() else None

    @property
    def data_files(self) -> list[Path]:
        """The training set and `valid.jsonl` (see `data_files`)."""
        return data_files(self.folder)

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


def training_set(folder: Path) -> Path | None:
    """The file training reads in a persona folder: `train.jsonl`, else `dataset.jsonl`."""
    return next((p for n in TRAIN_FILES if (p := folder / n).is_file()), None)


def append_file(folder: Path) -> Path:
    """Where new records go (imports, accepted drafts): the training set, so training reads
    them; `dataset.jsonl` when the folder has no data yet."""
    return training_set(folder) or folder / DATASET


def data_files(folder: Path) -> list[Path]:
    """The training set and `valid.jsonl`, those present: every record training sees."""
    valid = folder / VALID
    return [p for p in (training_set(folder), valid if valid.is_file() else None) if p]


SAFETY_SETS = Path(__file__).parent / "samples" / "safety"
"""The shipped general guard sets live beside the sample personas but are not one."""


def sample_personas_dir() -> Path:
    """The read-only sample personas shipped inside the package."""
    return Path(__file__).parent / "samples"


def is_sample(folder: Path) -> bool:
    """Whether `folder` is inside the read-only sample personas."""
    return folder.resolve().is_relative_to(sample_personas_dir().resolve())


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


def resolve(name_or_folder: str | Path, extra_dirs: Sequence[Path] = ()) -> PersonaEntry:
    """The persona in a folder holding `persona.toml`, else the one discovery finds by name in
    `default_dirs(extra_dirs)`; raise PersonaError naming it (and the known names) otherwise."""
    text = str(name_or_folder)
    path = Path(text).expanduser()
    if (path / CARD).is_file():
        try:
            card = load_card(path)
        except CardError as exc:
            raise PersonaError(str(exc)) from None
        return PersonaEntry(card.name, path, card)
    if isinstance(name_or_folder, Path) or "/" in text or text in ("", ".", ".."):
        raise PersonaError(f"{text}: no persona folder (no {CARD} in it)")
    entries, problems = discover(default_dirs(extra_dirs))
    found = next((e for e in entries if e.name == text), None)
    if found is not None:
        return found
    known = ", ".join(e.name for e in entries) or "none"
    detail = "".join(f"\n{p}" for p in problems if p.severity == "error")
    raise PersonaError(f"no persona named {text!r} (known: {known}){detail}")


def _strip_source(message: str, path: Path) -> str:
    return message.removeprefix(f"{path}: ")
