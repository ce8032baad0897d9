"""The resolved settings of one training run: the card's `[training]` with overrides applied."""

from __future__ import annotations

import msgspec

from data.card import MAX_BETA, MAX_RPO_ALPHA, METHODS, Training

OVERRIDABLE = tuple(Training.__struct_fields__)
"""Every `[training]` key can be overridden (`--learning-rate 2e-4`, a job's hyperparameters)."""


class RunConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything that decides what a run computes; stored whole in `run.json`."""

    persona: str
    base_model: str
    """The base model as named (`embedded`, a folder, or a hub repo id)."""
    training: Training
    system_prompt: str
    """The card's system prompt, put before rows that bring none (as the server does)."""
    iters: int | None = None
    """A fixed number of optimizer steps; `None` means `training.epochs` full epochs."""
    persona_folder: str = ""
    train_file: str = ""
    valid_file: str | None = None
    """A `valid.jsonl` shipped with the persona; `None` splits `val_fraction` off train."""
    init_from: str | None = None
    """The checkpoint a run starts from (`juni@run-1:75`); `None` starts from the base model.
    For DPO its frozen weights are also the reference model."""
    init_sha256: str | None = None
    """The sha256 of that checkpoint's weights, so a resume starts from the same ones."""


class ConfigError(Exception):
    """An override or a combination of settings that cannot be trained."""


def apply_overrides(training: Training, overrides: dict[str, object]) -> Training:
    """The card's training settings with the given keys replaced, checked like a card."""
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
    merged = msgspec.structs.asdict(training) | overrides
    try:
        result = msgspec.convert(merged, Training)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"training settings: {exc}") from None
    problems = training_problems(result)
    if problems:
        raise ConfigError("; ".join(problems))
    return result


def training_problems(t: Training) -> list[str]:
    """Every setting that makes training impossible (the card checks the rest)."""
    problems = []
    if t.method not in METHODS:
        problems.append(f"method {t.method!r} is not sft, dpo, orpo or guard")
    if not 0 < t.beta <= MAX_BETA:
        problems.append(f"beta must be > 0 and <= {MAX_BETA:g}")
    if not 0 <= t.rpo_alpha <= MAX_RPO_ALPHA:
        problems.append(f"rpo_alpha must be >= 0 and <= {MAX_RPO_ALPHA:g}")
    if t.rpo_alpha and t.method != "dpo":
        problems.append("rpo_alpha applies to method dpo only (ORPO has its own NLL term)")
    if not 0 <= t.max_grad_norm < float("inf"):
        problems.append("max_grad_norm must be >= 0 (0 = no clipping)")
    if t.fine_tune_type not in ("lora", "dora", "full"):
        problems.append(f"fine_tune_type {t.fine_tune_type!r} is not lora, dora or full")
    if t.lr_schedule not in ("constant", "linear", "cosine"):
        problems.append(f"lr_schedule {t.lr_schedule!r} is not constant, linear or cosine")
    for name in ("rank", "batch_size", "epochs", "max_seq_length", "val_every", "checkpoint_every"):
        value = getattr(t, name)
        if value is not None and value < 1:
            problems.append(f"{name} must be >= 1")
    if t.layers == 0 or t.layers < -1:
        problems.append("layers must be >= 1, or -1 for all")
    for name in ("warmup", "patience"):
        value = getattr(t, name)
        if value is not None and value < 0:
            problems.append(f"{name} must be >= 0")
    if not 0 <= t.seed < 2**64:  # what MLX's and NumPy's generators take
        problems.append("seed must be between 0 and 2**64 - 1")
    if not 0 < t.learning_rate <= 1:
        problems.append("learning_rate must be > 0 and <= 1")
    if not 0.0 <= t.dropout < 1.0:
        problems.append("dropout must be in [0, 1)")
    if not 0.0 <= t.val_fraction < 1.0:
        problems.append("val_fraction must be in [0, 1)")
    return problems
