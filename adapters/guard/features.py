"""Guard features: the base model's hidden state at one block over a prefill of the user turn.

The engine thread and the trainer both call `pooled_states`, so the features a guard was trained
on and the ones it is served are computed by the same code. Prompts are right-padded into one
batch: under a causal mask a real token never attends to the padding after it, so each row's
states equal those of a prompt run alone. Only the blocks up to the chosen one run; no output
layer, no cache, no adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.base import create_attention_mask

from .probe import POOLINGS

Read = tuple[int, str]
"""One pooled state a guard reads: (block, pooling), e.g. (6, "mean")."""
BATCH_TOKENS = 4096
"""Most padded tokens one forward pass takes (long batches are split)."""


def inner_model(model: nn.Module) -> Any:
    """The decoder stack (`model.model` for mlx-lm's text models)."""
    return getattr(model, "model", model)


def block_count(model: nn.Module) -> int:
    """How many transformer blocks the model has."""
    return len(inner_model(model).layers)


def pooled_states(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    layers: Sequence[int],
    spans: Sequence[tuple[int, int]],
) -> dict[tuple[int, str], np.ndarray]:
    """Pooled hidden states of each prompt after each block in `layers` (1 = after the first).

    `spans[i]` is the (start, end) token range of prompt i (the user text) that `mean` pooling
    averages and `max` pooling takes the elementwise maximum over; `last` takes the final token.
    Returns {(layer, pooling): (prompts, hidden)}.
    """
    deepest = max(layers)
    out: dict[tuple[int, str], list[np.ndarray]] = {
        (layer, p): [] for layer in layers for p in POOLINGS
    }
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        width = len(prompts[index])
        if batch is None or width * (len(batch) + 1) > BATCH_TOKENS:
            batches.append([index])
        else:
            batch.append(index)
    results: dict[int, dict[tuple[int, str], np.ndarray]] = {}
    for batch in batches:
        states = _run(model, [prompts[i] for i in batch], deepest, set(layers))
        for row, index in enumerate(batch):
            start, end = spans[index]
            end = max(end, start + 1)
            length = len(prompts[index])
            results[index] = {}
            for layer in layers:
                h = states[layer][row]
                results[index][(layer, "mean")] = h[start:end].mean(axis=0)
                # One strong word ("beer" in "can i have some beer") survives a max where a mean
                # over the whole turn dilutes it.
                results[index][(layer, "max")] = h[start:end].max(axis=0)
                results[index][(layer, "last")] = h[length - 1]
    for index in range(len(prompts)):
        for key in out:
            out[key].append(results[index][key])
    return {key: np.stack(rows).astype(np.float32) for key, rows in out.items()}


def _run(
    model: nn.Module, prompts: list[Sequence[int]], deepest: int, keep: set[int]
) -> dict[int, np.ndarray]:
    inner = inner_model(model)
    width = max(len(p) for p in prompts)
    tokens = mx.array([list(p) + [0] * (width - len(p)) for p in prompts], dtype=mx.uint32)
    h = inner.embed_tokens(tokens)
    args = getattr(inner, "args", None)
    if args is not None and getattr(args, "model_type", "").startswith("gemma"):
        # Gemma scales its embeddings, as its own forward pass does.
        h = h * mx.array(args.hidden_size**0.5, mx.bfloat16).astype(h.dtype)
    pattern = getattr(inner, "sliding_window_pattern", 1)
    window = getattr(inner, "window_size", None)
    global_mask = create_attention_mask(h, None)
    local_mask = (
        create_attention_mask(h, None, window_size=window) if pattern > 1 and window else None
    )
    kept: dict[int, mx.array] = {}
    for i, layer in enumerate(inner.layers[:deepest]):
        is_global = pattern <= 1 or i % pattern == pattern - 1
        h = layer(h, global_mask if is_global or local_mask is None else local_mask, None)
        if i + 1 in keep:
            kept[i + 1] = h
    mx.eval(list(kept.values()))
    return {layer: np.array(value.astype(mx.float32)) for layer, value in kept.items()}


def joined(states: dict[tuple[int, str], np.ndarray], reads: Sequence[Read]) -> np.ndarray:
    """The pooled states of `reads`, side by side: (prompts, hidden * len(reads)), in order."""
    return np.concatenate([states[(layer, pooling)] for layer, pooling in reads], axis=1)


def read_features(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    spans: Sequence[tuple[int, int]],
    reads: Sequence[Read],
) -> np.ndarray:
    """A guard's features: one forward pass up to the deepest block read, then `joined`."""
    layers = sorted({layer for layer, _ in reads})
    return joined(pooled_states(model, prompts, layers, spans), reads)
