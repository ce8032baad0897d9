"""Length-bucketed batches that use every row exactly once per epoch.

Rows are ordered by length (coarse buckets, shuffled inside a bucket with the epoch's generator,
so batch partners change between epochs), cut into batches of `batch_size` with the remainder
kept as a smaller last batch, and the batch order is shuffled. Everything is a pure function of
`(seed, epoch)`, which is what lets a resumed run see exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dataset import Example

BUCKET_TOKENS = 8
"""Rows whose lengths differ by less than this may share a batch in any order."""


@dataclass(frozen=True, eq=False)
class Batch:
    """Padded inputs and the flat positions whose next token carries loss."""

    rows: tuple[int, ...]
    inputs: np.ndarray
    """int32 (B, L): each row's tokens but the last, right-padded with 0."""
    positions: np.ndarray
    """int32 (P,): flat indices `b * L + j` of inputs whose next token is learned."""
    targets: np.ndarray
    """int32 (P,): the learned next token at each position."""
    tokens: int
    """Real (unpadded) input tokens in the batch."""


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[tuple[int, ...]]:
    """Row indices of each batch of one epoch, in training order; every row exactly once."""
    rng = np.random.default_rng([seed, epoch])
    jitter = rng.permutation(len(lengths))
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i] // BUCKET_TOKENS, jitter[i]))
    batches = [tuple(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def eval_batches(lengths: Sequence[int], batch_size: int) -> list[tuple[int, ...]]:
    """Row indices of batches for validation: by length, no shuffling."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [tuple(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def collate(examples: Sequence[Example], rows: Sequence[int]) -> Batch:
    """Pad the chosen examples into one batch (no truncation: lengths are checked before)."""
    picked = [examples[i] for i in rows]
    width = max(e.length for e in picked) - 1
    inputs = np.zeros((len(picked), width), dtype=np.int32)
    positions: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for b, example in enumerate(picked):
        n = example.length - 1
        inputs[b, :n] = example.tokens[:-1]
        learned = np.flatnonzero(example.learn[1:])
        positions.append((b * width + learned).astype(np.int32))
        targets.append(example.tokens[1:][learned])
    return Batch(
        rows=tuple(rows),
        inputs=inputs,
        positions=np.concatenate(positions),
        targets=np.concatenate(targets).astype(np.int32),
        tokens=sum(e.length - 1 for e in picked),
    )
