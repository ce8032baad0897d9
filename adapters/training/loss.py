"""Cross-entropy over the learned tokens only, with the output layer computed in chunks.

Gemma's output layer is 262,144 x 640: on a 270M model it costs more than every transformer block
together. So the loss gathers the hidden states of the positions that carry loss (not the prompt,
not padding), and for each chunk of them computes the logits, the fp32 log-sum-exp and, in the
same pass, the gradient with respect to those hidden states, `(softmax - onehot) @ W`. A custom
VJP hands that gradient to autodiff, so the big matmuls run twice per learned token instead of
three times per token, and no logits tensor ever exists for the whole batch: `mx.depends` makes
each chunk finish (and free its logits) before the next one starts. Everything stays one lazy
graph, evaluated once per step, so MLX frees activations as the backward pass consumes them.

Models whose forward is not `hidden @ W.T` (final soft-capping, quantized heads) fall back to the
full forward with the loss gathered at the learned positions; `find_head` checks numerically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from .batching import Batch, collate

CHUNK = 128
"""Learned positions per output-layer chunk: 128 x 262,144 fp32 logits are 134 MB."""


@dataclass(frozen=True)
class Head:
    """A model split into its body (tokens to final hidden states) and output weight (V, D)."""

    body: Callable[[mx.array], mx.array]
    weight: mx.array


def find_head(model: nn.Module) -> Head | None:
    """The body/output split of an mlx-lm model, if its logits are exactly `body(x) @ W.T`."""
    inner = getattr(model, "model", None)
    if inner is None or not callable(inner):
        return None
    lm_head = getattr(model, "lm_head", None)
    if type(lm_head) is nn.Linear and "bias" not in lm_head:
        weight = lm_head.weight
    elif lm_head is None and type(getattr(inner, "embed_tokens", None)) is nn.Embedding:
        weight = inner.embed_tokens.weight
    else:
        return None
    probe = mx.array([[2, 105, 2364, 107, 3912, 4, 5, 6]]) % weight.shape[0]
    expected = model(probe)
    got = inner(probe) @ weight.T
    if expected.shape != got.shape:
        return None
    gap = mx.abs(expected.astype(mx.float32) - got.astype(mx.float32)).max().item()
    scale = mx.abs(expected.astype(mx.float32)).max().item()
    return Head(inner, weight) if gap <= 1e-4 * max(scale, 1.0) else None


@mx.compile
def _shifted_exp(z: mx.array, peak: mx.array) -> mx.array:
    # One fused pass instead of a subtraction and an exp over 262,144 columns.
    return mx.exp(z - peak)


def head_loss(
    hidden: mx.array, targets: mx.array, weight: mx.array, *, grad: bool, chunk: int = CHUNK
) -> tuple[mx.array, mx.array | None]:
    """Summed cross-entropy of `hidden @ W.T` against `targets` (fp32), and its gradient."""
    total = mx.array(0.0, dtype=mx.float32)
    grads: list[mx.array] = []
    for start in range(0, hidden.shape[0], chunk):
        h = hidden[start : start + chunk]
        t = targets[start : start + chunk, None]
        if start:
            h = mx.depends(h, grads[-1] if grad else total)
        z = (h @ weight.T).astype(mx.float32)
        peak = z.max(axis=-1, keepdims=True)
        picked = mx.take_along_axis(z, t, axis=-1)
        e = _shifted_exp(z, peak)
        sums = e.sum(axis=-1, keepdims=True)
        total = total + (mx.log(sums) + peak - picked).sum()
        if grad:
            # (softmax - onehot) @ W, without another pass over the logits: normalise after the
            # matmul, and the one-hot part is just the target rows of W.
            g = (e.astype(weight.dtype) @ weight) * (1.0 / sums) - weight[t[:, 0]]
            grads.append(g.astype(hidden.dtype))
    if not grad:
        return total, None
    return total, mx.concatenate(grads) if grads else mx.zeros_like(hidden)


@mx.custom_function
def _summed_cross_entropy(
    hidden: mx.array, targets: mx.array, weight: mx.array
) -> tuple[mx.array, mx.array]:
    total, dh = head_loss(hidden, targets, weight, grad=True)
    assert dh is not None
    return total, dh


@_summed_cross_entropy.vjp
def _summed_cross_entropy_vjp(
    primals: tuple[mx.array, ...], cotangents: tuple[mx.array, ...], outputs: tuple[mx.array, ...]
) -> tuple[mx.array, ...]:
    # The gradient was computed with the loss; the frozen weight and the targets get none (these
    # zeros are never evaluated, as nothing asks for them).
    _, targets, weight = primals
    return cotangents[0] * outputs[1], mx.zeros_like(targets), mx.zeros_like(weight)


class TokenLoss:
    """Token-weighted mean cross-entropy of a batch's learned tokens, with its gradient."""

    def __init__(self, model: nn.Module) -> None:
        self.head = find_head(model)
        """The body/output split, or None to use the model's full forward."""
        self._grad = nn.value_and_grad(model, self._objective)

    collate = staticmethod(collate)
    """The batch of given rows (the trainer asks its objective, since pairs batch differently)."""

    def value_and_grad(self, model: nn.Module, batch: Batch) -> tuple[float, int, dict]:
        """(summed loss, learned tokens, gradients of the mean loss) for one batch."""
        (_, total), grads = self._grad(model, batch)
        mx.eval(total, grads)
        return float(total.item()), int(batch.targets.shape[0]), grads

    def evaluate(self, model: nn.Module, batch: Batch) -> tuple[float, int]:
        """(summed loss, learned tokens) without gradients."""
        count = int(batch.targets.shape[0])
        if self.head is None:
            return self._full_logits(model, batch)[1].item(), count
        total, _ = head_loss(self._hidden(batch), mx.array(batch.targets), self.head.weight,
                             grad=False)  # fmt: skip
        return total.item(), count

    def _hidden(self, batch: Batch) -> mx.array:
        assert self.head is not None
        h = self.head.body(mx.array(batch.inputs))
        return h.reshape(-1, h.shape[-1])[mx.array(batch.positions)]

    def _objective(self, model: nn.Module, batch: Batch) -> tuple[mx.array, mx.array]:
        if self.head is None:
            return self._full_logits(model, batch)
        total, _ = _summed_cross_entropy(
            self._hidden(batch), mx.array(batch.targets), self.head.weight
        )
        return total / batch.targets.shape[0], total

    @staticmethod
    def _full_logits(model: nn.Module, batch: Batch) -> tuple[mx.array, mx.array]:
        logits = model(mx.array(batch.inputs))
        flat = logits.reshape(-1, logits.shape[-1])[mx.array(batch.positions)]
        total = nn.losses.cross_entropy(flat.astype(mx.float32), mx.array(batch.targets)).sum()
        return total / batch.targets.shape[0], total
