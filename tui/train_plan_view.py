"""The Train screen's `N steps ≈ T minutes` line, from the dataset stats and the form's values."""

from __future__ import annotations

import msgspec

from data.train_plan import derived, describe, estimate_seconds, planned_steps

from .widgets.train_form import TrainOverrides
from .wire import DatasetStats, PersonaInfo

TOKENS_PER_WORD = 1.3
"""A rough count of Gemma tokens per English word, for rows measured in words only."""


def plan_text(info: PersonaInfo, stats: DatasetStats, values: TrainOverrides) -> str:
    """`24 steps ≈ 6 minutes (31 rows, 8 batches an epoch; validation every 2 steps)`."""
    changed = {
        name: value
        for name in ("epochs", "batch_size", "val_every", "checkpoint_every")
        if (value := getattr(values, name)) is not None
    }
    training = msgspec.structs.replace(info.training, **changed)
    split = "valid.jsonl" not in info.data_files
    total, batches = planned_steps(stats.records, training, values.iters, split)
    reply = stats.tokens.mean if stats.tokens else stats.words.mean * TOKENS_PER_WORD
    # Each row also carries its prompt and the system prompt; count them as the server would.
    prompt = len(info.system_prompt.split()) * TOKENS_PER_WORD + reply / 2
    per_epoch = round((reply + prompt) * stats.records)
    seconds = estimate_seconds(total, per_epoch, batches)
    resolved = derived(training, total, batches)
    return (
        f"{describe(total, seconds)} ({stats.records} rows, {batches} batches an epoch; "
        f"validation every {resolved.val_every} steps, warmup {resolved.warmup})"
    )
