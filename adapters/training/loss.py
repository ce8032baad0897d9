"""Cross-entropy over the learned tokens only, with the output layer computed in chunks.

Gemma's output layer is 262,144 x 640: on a 270M model it costs more than every transformer block
together, and softmax over it more still (MLX's CPU `exp` is scalar). So the loss gathers the
hidden states of the positions that carry loss, and for each chunk of them computes the logits,
the fp32 log-sum-exp and, in the same pass, the gradient with respect to those hidden states
(`(softmax - onehot) @ W / n`). Autodiff then only needs the surrogate `sum(h * dh)`, whose
gradient is exactly `dh`: the big matmuls run twice per learned token instead of three times per
token, and no logits tensor ever exists for the whole batch. On CPU the softmax runs in numpy
(vectorised `exp`); on a GPU it stays in MLX.

Models whose forward is not `hidden @ W.T` (final soft-capping, quantized heads) fall back to the
full forward with the loss gathered at the learned positions; `find_head` checks numerically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .batching import Batch

CHUNK = 256
"""Learned positions per output-layer chunk: 256 x 262,144 fp32 logits are 268 MB."""


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


def head_loss(
    hidden: mx.array,
    targets: np.ndarray,
    weight: mx.array,
    grad_scale: float | None,
    *,
    use_numpy: bool,
    chunk: int = CHUNK,
) -> tuple[float, mx.array | None]:
    """Summed cross-entropy of `hidden @ W.T` against `targets`, and `grad_scale * dloss/dhidden`.

    `hidden` must be evaluated and detached; pass `grad_scale=None` for the loss alone.
    """
    total = 0.0
    grads: list[mx.array] = []
    for start in range(0, hidden.shape[0], chunk):
        h = hidden[start : start + chunk]
        t = targets[start : start + chunk]
        logits = (h @ weight.T).astype(mx.float32)
        if use_numpy:
            part, probs = _numpy_chunk(logits, t, grad_scale)
        else:
            part, probs = _mlx_chunk(logits, t, grad_scale)
        total += part
        if probs is not None:
            g = (probs.astype(weight.dtype) @ weight).astype(hidden.dtype)
            mx.eval(g)
            grads.append(g)
    if grad_scale is None:
        return total, None
    return total, mx.concatenate(grads) if grads else mx.zeros_like(hidden)


def _numpy_chunk(
    logits: mx.array, targets: np.ndarray, grad_scale: float | None
) -> tuple[float, mx.array | None]:
    mx.eval(logits)
    # A writable view of this chunk's own fresh buffer: softmax runs in place, no 268 MB copy.
    z = np.asarray(logits)
    if not z.flags.writeable:
        z = z.copy()
    rows = np.arange(z.shape[0])
    picked = z[rows, targets].astype(np.float64)
    peak = z.max(axis=1, keepdims=True)
    np.subtract(z, peak, out=z)
    np.exp(z, out=z)
    sums = z.sum(axis=1, keepdims=True, dtype=np.float32)
    loss = float((np.log(sums[:, 0].astype(np.float64)) + peak[:, 0] - picked).sum())
    if grad_scale is None:
        return loss, None
    z *= np.float32(grad_scale) / sums
    z[rows, targets] -= np.float32(grad_scale)
    return loss, mx.array(z)


def _mlx_chunk(
    logits: mx.array, targets: np.ndarray, grad_scale: float | None
) -> tuple[float, mx.array | None]:
    t = mx.array(targets)
    lse = mx.logsumexp(logits, axis=-1)
    picked = mx.take_along_axis(logits, t[:, None], axis=-1)[:, 0]
    loss = (lse - picked).astype(mx.float32).sum()
    if grad_scale is None:
        return loss.item(), None
    probs = mx.exp(logits - lse[:, None]) * grad_scale
    onehot = mx.arange(logits.shape[1])[None, :] == t[:, None]
    probs = mx.where(onehot, probs - grad_scale, probs)
    mx.eval(loss, probs)
    return loss.item(), probs


class TokenLoss:
    """Token-weighted mean cross-entropy of a batch's learned tokens, with its gradient."""

    def __init__(self, model: nn.Module, *, use_numpy: bool | None = None) -> None:
        self.head = find_head(model)
        """The body/output split, or None to use the model's full forward."""
        self.use_numpy = mx.default_device() == mx.cpu if use_numpy is None else use_numpy
        """Softmax in numpy (fast `exp` on CPU) rather than MLX."""
        self._grad = nn.value_and_grad(model, self._objective)

    def value_and_grad(self, model: nn.Module, batch: Batch) -> tuple[float, int, dict]:
        """(summed loss, learned tokens, gradients of the mean loss) for one batch."""
        (_, total), grads = self._grad(model, batch)
        return float(total.item()), int(batch.targets.shape[0]), grads

    def evaluate(self, model: nn.Module, batch: Batch) -> tuple[float, int]:
        """(summed loss, learned tokens) without gradients."""
        count = int(batch.targets.shape[0])
        positions = mx.array(batch.positions)
        if self.head is None:
            return self._full_logits(model, batch, positions)[1].item(), count
        hidden = self._hidden(batch, positions)
        mx.eval(hidden)
        total, _ = head_loss(
            hidden, batch.targets, self.head.weight, None, use_numpy=self.use_numpy
        )
        return total, count

    def _hidden(self, batch: Batch, positions: mx.array) -> mx.array:
        assert self.head is not None
        h = self.head.body(mx.array(batch.inputs))
        return h.reshape(-1, h.shape[-1])[positions]

    def _objective(self, model: nn.Module, batch: Batch) -> tuple[mx.array, mx.array]:
        positions = mx.array(batch.positions)
        if self.head is None:
            return self._full_logits(model, batch, positions)
        hidden = self._hidden(batch, positions)
        mx.eval(hidden)
        count = batch.targets.shape[0]
        total, dh = head_loss(
            mx.stop_gradient(hidden),
            batch.targets,
            self.head.weight,
            1.0 / count,
            use_numpy=self.use_numpy,
        )
        assert dh is not None
        surrogate = (hidden * mx.stop_gradient(dh)).sum()
        return surrogate, mx.array(total, dtype=mx.float32)

    @staticmethod
    def _full_logits(
        model: nn.Module, batch: Batch, positions: mx.array
    ) -> tuple[mx.array, mx.array]:
        logits = model(mx.array(batch.inputs))
        picked = logits.reshape(-1, logits.shape[-1])[positions].astype(mx.float32)
        total = nn.losses.cross_entropy(picked, mx.array(batch.targets)).sum()
        return total / batch.targets.shape[0], total
