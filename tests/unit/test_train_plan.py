"""Unset warmup, val_every and checkpoint_every follow the run's length; the plan line."""

from __future__ import annotations

import msgspec
import pytest

from data.card import Training
from data.train_plan import derived, describe, estimate_seconds, planned_steps
from server.wire.openai import ResolvedSampling
from server.wire.personas import PersonaInfo
from tui.train_plan_view import plan_text
from tui.widgets.train_form import TrainOverrides, card_values


def test_thirty_one_rows_validate_and_checkpoint_within_each_epoch() -> None:
    training = Training()
    total, batches = planned_steps(31, training)
    assert (total, batches) == (21, 7)  # 28 rows after the validation split, 3 epochs
    resolved = derived(training, total, batches)
    assert resolved.val_every == 2
    assert resolved.checkpoint_every == 4
    assert resolved.warmup == 2  # at most 10% of the run
    validations = total // resolved.val_every
    assert validations >= 3 * 3


@pytest.mark.parametrize(("rows", "warmup"), [(31, 2), (100, 6), (5000, 10)])
def test_warmup_is_at_most_a_tenth_and_ten(rows: int, warmup: int) -> None:
    total, batches = planned_steps(rows, Training())
    resolved = derived(Training(), total, batches)
    assert resolved.warmup == warmup
    assert resolved.warmup <= total * 0.1


def test_values_the_card_sets_are_kept() -> None:
    card = Training(warmup=10, val_every=25, checkpoint_every=50)
    assert derived(card, 24, 8) == card


def test_iters_shorter_than_an_epoch() -> None:
    total, batches = planned_steps(3000, Training(), iters=12)
    resolved = derived(Training(), total, batches)
    assert total == 12
    assert resolved.val_every == 3  # four validations in the run, not one per 675 batches
    assert resolved.warmup == 1


def test_describe() -> None:
    assert describe(24, 360.0) == "24 steps ≈ 6 minutes"
    assert describe(1, 10.0) == "1 step ≈ under a minute"
    assert describe(900, 3 * 3600.0) == "900 steps ≈ 3.0 hours"
    assert describe(5, None) == "5 steps"
    assert estimate_seconds(10, 800, 4) == pytest.approx(10 * 200 / 40)


def test_train_screen_plan_line() -> None:
    from data.stats import dataset_stats

    stats = dataset_stats([])
    stats = msgspec.structs.replace(stats, records=31)
    info = PersonaInfo(
        id="parrot",
        display_name="Parrot",
        description="",
        system_prompt="You are a parrot.",
        base_model="embedded",
        defaults=_sampling(),
        active_adapter=None,
        training=Training(),
        data_files=["train.jsonl"],
    )
    text = plan_text(info, stats, card_values(info.training))
    assert text.startswith("21 steps ≈ ")
    assert "31 rows, 7 batches an epoch; validation every 2 steps, warmup 2" in text
    fixed = plan_text(info, stats, TrainOverrides(iters=5))
    assert fixed.startswith("5 steps ≈ ")


def _sampling() -> ResolvedSampling:
    return ResolvedSampling(
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        repetition_penalty=1.0,
        repetition_context_size=20,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        min_tokens=0,
        max_tokens=64,
    )
