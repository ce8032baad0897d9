"""Learning-rate schedules from the card: linear warmup, then constant, linear or cosine decay.

The schedule is a function of the optimizer's step count, which is saved with the optimizer
state, so a resumed run continues at exactly the same point of it.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.optimizers as optim

from data.card import Training

Schedule = Callable[[mx.array], mx.array]


def build_schedule(training: Training, total_steps: int) -> Schedule:
    """The learning rate at each optimizer step (0-based) of a run of `total_steps`."""
    lr = training.learning_rate
    warmup = min(training.warmup or 0, max(total_steps - 1, 0))
    rest = max(total_steps - warmup, 1)
    main: Schedule
    if training.lr_schedule == "cosine":
        main = optim.cosine_decay(lr, rest, lr * 0.1)
    elif training.lr_schedule == "linear":
        main = optim.linear_schedule(lr, lr * 0.1, rest)
    else:
        main = lambda _step: mx.array(lr, dtype=mx.float32)  # noqa: E731
    if warmup == 0:
        return main
    # Start warmup above zero: the first step should already learn something.
    ramp = optim.linear_schedule(lr / (warmup + 1), lr, warmup)
    return optim.join_schedules([ramp, main], [warmup])
