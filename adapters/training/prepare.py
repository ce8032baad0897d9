"""Everything a run needs before its first step: settings, checked data, the loaded model.

Data is checked with the persona's own tokenizer before the model weights are even loaded, so
bad data fails fast, with every problem listed as file:line by the data checker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from data.card import PersonaCard
from data.check import check_dataset
from data.dataset import Row
from data.personas import PREFERENCE, TRAIN_FILES, VALID, PersonaEntry, PersonaError, resolve
from data.problem import Problem
from data.split import split_rows
from data.tokens import ChatTokenizer
from data.train_plan import REFERENCE_TOKENS_PER_SEC, derived, describe, estimate_seconds

from .batching import epoch_batches
from .config import RunConfig, apply_overrides
from .dataset import Example, encode_rows
from .events import DatasetInfo
from .model import BaseModel, load_base, load_tokenizer, model_path
from .preference import PairExample, encode_pairs


class PrepareError(Exception):
    """The run cannot start; the message says why."""


class DataError(PrepareError):
    """The dataset has errors; every one is listed as file:line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        """The errors, in file and line order."""
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"the dataset has {len(self.problems)} error(s):\n{lines}")


@dataclass(frozen=True)
class TrainRequest:
    """A new run as asked for (by `persona train`'s flags or a fine-tuning job), before
    `new_config` resolves it against the card into the order's RunConfig."""

    persona: str
    """A persona name (found by discovery) or a persona folder."""
    overrides: dict[str, object] = field(default_factory=dict)
    iters: int | None = None
    model: str | None = None
    persona_dirs: tuple[Path, ...] = ()
    init_from: str | None = None
    """`--from MODEL_ID`: the checkpoint to start from."""


@dataclass(frozen=True)
class Prepared:
    """A run's settings, its tokenized data and the model to train."""

    config: RunConfig
    base: BaseModel
    train: list[Example] | list[PairExample]
    """Tokenized rows, or preference pairs for DPO and ORPO."""
    valid: list[Example] | list[PairExample]
    dataset: DatasetInfo
    warnings: tuple[Problem, ...]


def resolve_persona(name: str, dirs: Sequence[Path] = ()) -> PersonaEntry:
    """The persona given by name or by folder path; PrepareError naming it when there is none."""
    try:
        return resolve(name, dirs)
    except PersonaError as exc:
        raise PrepareError(str(exc)) from None


def new_config(request: TrainRequest) -> RunConfig:
    """Settings for a fresh run: the card's `[training]` with the request's overrides."""
    entry = resolve_persona(request.persona, request.persona_dirs)
    folder, card = entry.folder, entry.card
    training = apply_overrides(card.training, request.overrides)
    # Preference methods learn from reviewed pairs; `valid.jsonl` holds chat rows, so their
    # validation pairs are split off the pairs.
    preference = training.method != "sft"
    names = (PREFERENCE,) if preference else TRAIN_FILES
    pairs = folder / PREFERENCE
    train_file = (pairs if pairs.is_file() else None) if preference else entry.train_file
    if train_file is None:
        hint = " (review pairs.jsonl from `persona data pairs` into it)" if preference else ""
        raise PrepareError(f"{folder} has no {' or '.join(names)} to train on{hint}")
    valid_file = folder / VALID
    return RunConfig(
        persona=card.name,
        base_model=request.model or card.base_model,
        training=training,
        system_prompt=card.system_prompt,
        iters=request.iters,
        persona_folder=str(folder),
        train_file=str(train_file),
        valid_file=str(valid_file) if valid_file.is_file() and not preference else None,
    )


def prepare(config: RunConfig, log: Callable[[str], None]) -> Prepared:
    """Check and tokenize the data (failing before any weights load), then load the model."""
    path, _ = model_path(config.base_model)
    tokenizer = load_tokenizer(path)
    stop_ids = frozenset(tokenizer.eos_token_ids or ())
    train, valid, info, warnings = load_data(config, tokenizer, stop_ids)
    total = (
        config.iters
        if config.iters is not None
        else config.training.epochs * (info.batches_per_epoch)
    )
    # Unset warmup, val_every and checkpoint_every follow the run's length; run.json keeps them.
    training = derived(config.training, total, info.batches_per_epoch)
    config = msgspec.structs.replace(config, training=training)
    for problem in warnings:
        log(str(problem))
    seconds = estimate_seconds(total, info.train_tokens, info.batches_per_epoch)
    log(
        f"plan: {describe(total, seconds)} at {REFERENCE_TOKENS_PER_SEC:g} trained tokens/s "
        f"(validation every {training.val_every} steps, a checkpoint every "
        f"{training.checkpoint_every}, warmup {training.warmup})"
    )
    log(f"loading {config.base_model} from {path}")
    base = load_base(config.base_model)
    blocks = len(base.model.layers)
    if config.training.layers > blocks:
        raise PrepareError(f"layers = {config.training.layers}, but the model has {blocks} blocks")
    return Prepared(config, base, train, valid, info, warnings)


def load_data(
    config: RunConfig, tokenizer: ChatTokenizer, stop_ids: frozenset[int]
) -> tuple[list, list, DatasetInfo, tuple[Problem, ...]]:  # type: ignore[type-arg]
    """Check the dataset, split it and tokenize it; raise DataError listing every error."""
    t = config.training
    files = [Path(config.train_file)] + ([Path(config.valid_file)] if config.valid_file else [])
    card = PersonaCard(name=config.persona, system_prompt=config.system_prompt, training=t)
    report = check_dataset(files, card, tokenizer)
    if report.errors:
        raise DataError(report.errors)
    train_rows, valid_rows = split(report.rows, config)
    encode = encode_rows if t.method == "sft" else encode_pairs
    train, problems = encode(
        train_rows,
        tokenizer,
        config.system_prompt,
        stop_ids,
        t.max_seq_length,  # type: ignore[arg-type]
    )
    valid, more = encode(
        valid_rows,
        tokenizer,
        config.system_prompt,
        stop_ids,
        t.max_seq_length,  # type: ignore[arg-type]
    )
    if problems or more:
        raise DataError(sorted(problems + more))
    if not train:
        raise PrepareError(f"{config.train_file} has no rows to train on")
    info = DatasetInfo(
        train_rows=len(train),
        valid_rows=len(valid),
        train_tokens=sum(_tokens(e) for e in train),
        learned_tokens=sum(e.targets for e in train),
        valid_tokens=sum(_tokens(e) for e in valid),
        batches_per_epoch=len(epoch_batches([e.length for e in train], t.batch_size, t.seed, 0)),
        train_sha256=file_sha256(Path(config.train_file)),
        valid_sha256=file_sha256(Path(config.valid_file)) if config.valid_file else None,
        warnings=len(report.warnings),
    )
    return train, valid, info, tuple(report.warnings)


def _tokens(example: Example | PairExample) -> int:
    # A pair's step processes both of its sides.
    if isinstance(example, PairExample):
        return example.chosen.length + example.rejected.length
    return example.length


def split(rows: Sequence[Row], config: RunConfig) -> tuple[list[Row], list[Row]]:
    """Train and validation rows: the persona's `valid.jsonl`, else a seeded stratified split."""
    if config.valid_file:
        valid_name = str(Path(config.valid_file))
        return [r for r in rows if r.file != valid_name], [r for r in rows if r.file == valid_name]
    parts = split_rows(rows, valid=config.training.val_fraction, seed=config.training.seed)
    return list(parts.train), list(parts.valid)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_dict(config: RunConfig) -> dict[str, object]:
    """The config as plain JSON-ready data (for the start event)."""
    result: dict[str, object] = msgspec.to_builtins(config)
    return result
