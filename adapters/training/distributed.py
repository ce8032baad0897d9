"""Data-parallel training across processes or machines with MLX's own distributed layer.

Under `mlx.launch` (ring backend over TCP, or MPI where present) every process runs the same
`persona train`; `mx.distributed.init()` tells each its rank. Each rank takes its share of every
global batch (rows `rank::size` of the batch the single-process run would use), computes the
summed loss and its gradient, and the ranks add them up, so the update equals the one a single
process computes on the whole batch. Only rank 0 writes checkpoints, events and the registry.
Without `mlx.launch` the world is one process and nothing here costs anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.nn.utils import average_gradients
from mlx.utils import tree_map


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    group: Any
    """The `mx.distributed.Group` of every rank."""
    rank: int
    size: int

    @property
    def writer(self) -> bool:
        """Only rank 0 writes checkpoints, run records and events."""
        return self.rank == 0

    def share(self, rows: tuple[int, ...]) -> tuple[int, ...]:
        """This rank's rows of one global batch (possibly none, for a short last batch)."""
        return rows[self.rank :: self.size]

    def combine(
        self, total: float, count: int, tokens: int, grads: Any
    ) -> tuple[float, int, int, Any]:
        """Global (summed loss, learned tokens, input tokens, gradients of the global mean loss).

        `grads` are this rank's gradients of its own mean loss (zeros when it had no rows), so
        they are weighted by its share of the learned tokens before the sum.
        """
        if self.size == 1:
            return total, count, tokens, grads
        sums = mx.distributed.all_sum(
            mx.array([total, float(count), float(tokens)]), group=self.group, stream=mx.cpu
        )
        global_total, global_count, global_tokens = (float(v) for v in sums.tolist())
        # average_gradients divides by the world size; weighting each rank by size * its share
        # of the learned tokens makes that the gradient of the global token-weighted mean.
        weight = self.size * count / max(global_count, 1.0)
        averaged = average_gradients(tree_map(lambda g: g * weight, grads), group=self.group)
        mx.eval(averaged)
        return global_total, int(global_count), int(global_tokens), averaged

    def any(self, flag: bool) -> bool:
        """Whether any rank raised `flag` (a stop request must stop every rank at one step)."""
        if self.size == 1:
            return flag
        raised = mx.distributed.all_sum(mx.array([float(flag)]), group=self.group, stream=mx.cpu)
        return bool(raised.item() > 0)

    def sum_pair(self, total: float, count: int) -> tuple[float, int]:
        """(summed loss, token count) added over every rank (validation)."""
        if self.size == 1:
            return total, count
        sums = mx.distributed.all_sum(mx.array([total, float(count)]), group=self.group,
                                      stream=mx.cpu)  # fmt: skip
        a, b = sums.tolist()
        return float(a), int(b)


def world() -> World:
    """The world this process trains in (one process unless started by `mlx.launch`)."""
    group = mx.distributed.init()
    return World(group, group.rank(), group.size())


def zero_grads(model: nn.Module) -> Any:
    """Zero gradients shaped like the trainable parameters (a rank with no rows in a batch)."""
    return tree_map(mx.zeros_like, model.trainable_parameters())
