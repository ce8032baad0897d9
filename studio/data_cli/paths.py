"""Which files a `persona data` PATH argument names: persona folders, persona names, JSONL files.

Each PATH is a persona folder, a persona name, or a JSONL file; a file next to a `persona.toml`
is checked against that card. Files named `eval.jsonl` are read as eval suites.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.card import CardError, PersonaCard, load_card
from data.personas import (
    CARD,
    EVAL,
    PAIRS,
    PREFERENCE,
    TRAIN_FILES,
    VALID,
    PersonaError,
    resolve,
)
from data.problem import Problem, error
from data.tokens import ChatTokenizer


@dataclass
class FileGroup:
    """Files `persona data` works on together: a persona folder's datasets and eval suite (or
    loose files, grouped by their folder), checked against one card."""

    label: str
    card_path: Path | None
    datasets: list[Path] = field(default_factory=list)
    eval_file: Path | None = None


class UsageError(Exception):
    """A PATH that is neither a file, a folder nor a persona name."""


def group_paths(paths: Sequence[str], card: Path | None = None) -> list[FileGroup]:
    """Group PATH arguments by the persona they belong to."""
    groups: dict[str, FileGroup] = {}
    for text in paths:
        path = Path(text)
        if not path.exists():
            try:
                path = resolve(text).folder
            except PersonaError:
                raise UsageError(f"{text}: no such file, folder or persona") from None
        if path.is_dir():
            group = groups.setdefault(str(path), FileGroup(str(path), _card_in(path, card)))
            group.datasets += [p for n in (*TRAIN_FILES, VALID) if (p := path / n).is_file()]
            group.eval_file = path / EVAL if (path / EVAL).is_file() else None
            # Pairs repeat training prompts on purpose: check them apart from the SFT data.
            pairs = [p for n in (PREFERENCE, PAIRS) if (p := path / n).is_file()]
            if pairs:
                label = f"{path}{os.sep}{PREFERENCE}"
                groups.setdefault(label, FileGroup(label, _card_in(path, card), pairs))
            if not group.datasets and group.eval_file is None and not pairs:
                raise UsageError(f"{path}: holds no {' / '.join(TRAIN_FILES)} or {EVAL}")
            continue
        folder = path.parent
        group = groups.setdefault(str(folder), FileGroup(str(folder), _card_in(folder, card)))
        if path.name == EVAL:
            group.eval_file = path
        else:
            group.datasets.append(path)
    return list(groups.values())


def read_card(group: FileGroup) -> tuple[PersonaCard | None, list[Problem]]:
    """The group's card, or the problems that stop it from loading."""
    if group.card_path is None:
        return None, []
    try:
        return load_card(group.card_path), []
    except CardError as exc:
        prefix = f"{group.card_path}: "
        return None, [
            error(str(group.card_path), 0, line.removeprefix(prefix))
            for line in str(exc).splitlines()
        ]


def load_tokenizer(base_model: str) -> tuple[ChatTokenizer | None, str | None]:
    """The base model's tokenizer, or None and the reason token checks are skipped."""
    # The command line is where layers meet: resolving a base model belongs to adapters.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers import AutoTokenizer

        from adapters.base import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(base_model)))
    except Exception as exc:  # no tokenizer only means fewer checks, never a crash
        return None, f"token checks skipped: cannot load the tokenizer of {base_model}: {exc}"
    if not getattr(tokenizer, "chat_template", None):
        return None, f"token checks skipped: {base_model} has no chat template"
    return tokenizer, None


def _card_in(folder: Path, override: Path | None) -> Path | None:
    if override is not None:
        return override
    path = folder / CARD
    return path if path.is_file() else None
