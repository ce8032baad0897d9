"""A lone greedy row's output layer as a matrix-vector product, proven to pick MLX's token.

MLX's CPU backend runs every product through `cblas_sgemm`. For one row against Gemma's
262,144 x 640 output layer, the OpenBLAS that Debian ships (0.3.21) takes about twice as long
over that GEMM as NumPy's bundled OpenBLAS over the same product as a GEMV. The two differ only
in rounding: each fp32 dot product of length n is within gamma_n * |h| * |w_j| of the exact one
(gamma_n = n*u / (1 - n*u), u = 2**-24, any summation order). So when NumPy's best logit leads
the runner-up by more than four times that bound, MLX's argmax is the same token; otherwise the
step falls back to MLX's own product.

NumPy's BLAS is set to one thread for the process when the head is built: MLX's OpenBLAS
workers keep spinning for a while after the blocks' products, and a second pool of workers
competing with them for two cores made the step slower, not faster.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

UNIT_ROUNDOFF = 2.0**-24
SUPPORTED = frozenset({"gemma3_text"})
"""Model types whose logits are exactly `hidden @ weight.T` (no soft-capping or scaling)."""
SET_THREADS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads",
)
"""Names NumPy's bundled OpenBLAS exports its thread setter under, newest wheels first."""


@functools.cache
def numpy_blas_threads() -> Callable[[int], None] | None:
    """A setter for the thread count of the OpenBLAS bundled with NumPy, if one is found."""
    for library in sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("*openblas*")):
        try:
            handle = ctypes.CDLL(str(library))
        except OSError:
            continue
        for name in SET_THREADS:
            setter = getattr(handle, name, None)
            if setter is not None:
                return lambda n, setter=setter: setter(ctypes.c_int(n))  # type: ignore[misc]
    return None


class GemvHead:
    """Greedy token choice for one hidden state through NumPy's GEMV, with a proven fallback."""

    def __init__(self, weight: mx.array, banned: tuple[int, ...], mask: mx.array | None) -> None:
        self.weight = weight
        """The (vocab, hidden) float32 output layer MLX multiplies by."""
        self._mask = mask
        if (threads := numpy_blas_threads()) is not None:
            threads(1)  # for the whole process: NumPy's other products here are small
        self._matrix = np.asarray(memoryview(weight))  # a view: no copy of 671 MB
        self._banned = np.asarray(banned, dtype=np.int64)
        n = self._matrix.shape[1]
        self._gamma = n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF)
        self._row_norm = float(np.sqrt(np.einsum("ij,ij->i", self._matrix, self._matrix).max()))
        self.proven = 0
        """Steps whose token the bound proved."""
        self.fallbacks = 0
        """Steps that fell back to MLX's product (a near tie)."""

    @classmethod
    def for_model(
        cls, model: nn.Module, banned: tuple[int, ...], mask: mx.array | None
    ) -> GemvHead | None:
        """The head of a supported float32 model with a plain output layer, else None.

        `banned` ids never win; `mask` is the batch's additive mask of the same ids (or None).
        """
        args = getattr(model, "args", None)
        if getattr(args, "model_type", None) not in SUPPORTED:
            return None
        if getattr(model, "tie_word_embeddings", False):
            weight = model.model.embed_tokens.weight
        else:
            head = getattr(model, "lm_head", None)
            if type(head) is not nn.Linear or "bias" in head:
                return None
            weight = head.weight
        if weight.dtype != mx.float32 or weight.ndim != 2:
            return None
        return cls(weight, banned, mask)

    def pick(self, hidden: mx.array) -> mx.array:
        """The greedy token of one (1, hidden) state: a (1,) uint32 array, evaluated."""
        h = np.asarray(memoryview(hidden.astype(mx.float32)))[0]
        logits = self._matrix @ h
        if self._banned.size:
            logits[self._banned] = -np.inf
        best = int(np.argmax(logits))
        top = logits[best]
        logits[best] = -np.inf
        runner_up = logits.max()
        bound = self._gamma * float(np.linalg.norm(h)) * self._row_norm
        if top - runner_up > 4 * bound:
            self.proven += 1
            return mx.array([best], dtype=mx.uint32)
        self.fallbacks += 1
        # The batch's own path, op for op: the same product, the same mask, the same argmax.
        exact = hidden @ self.weight.T
        if self._mask is not None:
            exact = exact + self._mask
        return mx.argmax(exact, axis=-1)
