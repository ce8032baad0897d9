"""A short real run: the Juni sample on the embedded Gemma 3 270M, two steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from train_files import train

from adapters.registry import Registry
from adapters.training.events import Checkpoint, Done, Start, Step

pytestmark = pytest.mark.slow


def test_two_steps_on_the_embedded_model(embedded_model_dir: Path, persona_home: Path) -> None:
    from adapters.base import content_hash

    events, outcome = train(["juni", "--iters", "2", "--batch-size", "2", "--val-fraction", "0",
                             "--checkpoint-every", "2"])  # fmt: skip
    start = events[0]
    assert isinstance(start, Start)
    assert start.dataset.train_rows == 1040
    assert start.dataset.learned_tokens < start.dataset.train_tokens
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.step for s in steps] == [1, 2]
    assert all(math.isfinite(s.train_loss) and 0 < s.train_loss < 20 for s in steps)
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [2]
    assert isinstance(events[-1], Done)
    assert outcome.reason == "finished"
    ckpt = Registry(persona_home / "adapters").checkpoints("juni", "run-1")[-1]
    assert ckpt.manifest.base_hash == content_hash(embedded_model_dir)
    assert ckpt.manifest.lora.num_layers == 8
