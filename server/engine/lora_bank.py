"""Many LoRA adapters in one model at once, chosen per batch row (a Punica-style gather).

Every linear layer of every transformer block is wrapped once at start-up. A wrapped layer keeps
its base linear and, once some adapter touches it, stacked banks `A: (slots, in, r)` and
`B: (slots, r, out)`. Slot 0 stays zero: the base model. For a batch whose rows use slots `idx`
with scales `s`, the layer computes `base(x) + s[:, None, None] * (x @ A[idx]) @ B[idx]`; when every
row is on the base model the LoRA math is skipped entirely, so an idle bank costs nothing.

Loading an adapter writes its weights into a free slot (least recently used first, never one a
running row still uses); the model is never reloaded. Banks grow when a higher rank arrives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from adapters.manifest import Manifest


class RowSlots:
    """The slot and scale of each batch row for the forward pass being built."""

    def __init__(self) -> None:
        self.index: mx.array | None = None
        """(batch,) slot per row, or None when every row runs the base model."""
        self.scale: mx.array | None = None
        """(batch,) LoRA scale per row."""


class _Banks:
    """One layer's stacked adapter weights (kept out of the module's parameters)."""

    def __init__(self) -> None:
        self.a: mx.array | None = None
        self.b: mx.array | None = None


class MultiLoRALinear(nn.Module):
    """A base linear layer plus a bank of LoRA adapters selected per row."""

    def __init__(self, base: nn.Module, rows: RowSlots, input_dims: int, output_dims: int) -> None:
        super().__init__()
        self.base = base
        self.input_dims = input_dims
        self.output_dims = output_dims
        self._rows = rows
        self._banks = _Banks()

    def __call__(self, x: mx.array) -> mx.array:
        y = self.base(x)
        index, banks = self._rows.index, self._banks
        if index is None or banks.a is None or banks.b is None or self._rows.scale is None:
            return y
        z = (x @ banks.a[index]) @ banks.b[index]
        return y + (self._rows.scale[:, None, None] * z).astype(x.dtype)


def _dims(linear: nn.Module) -> tuple[int, int]:
    output_dims, input_dims = linear.weight.shape
    if isinstance(linear, nn.QuantizedLinear):
        input_dims = input_dims * 32 // linear.bits
    return int(input_dims), int(output_dims)


@dataclass
class Slot:
    """One loaded adapter."""

    index: int
    manifest: Manifest
    users: int = 0
    """Running rows on this slot; a slot in use is never evicted."""
    doomed: bool = False
    """Unload requested while rows still used it: free it when they finish."""


@dataclass(frozen=True)
class AdapterWeights:
    """A validated adapter, ready to be written into a slot."""

    manifest: Manifest
    rank: int
    scale: float
    layers: dict[str, tuple[mx.array, mx.array]]
    """Module path -> (lora_a (in, r), lora_b (r, out)), in the model's dtype."""


class SlotsBusyError(Exception):
    """Every slot serves a running row; a new adapter has to wait."""


class LoraBank:
    """The wrapped layers of one model and the adapters loaded into them."""

    def __init__(self, model: nn.Module, capacity: int) -> None:
        self.rows = RowSlots()
        self.capacity = capacity
        self.rank = 0
        self.layers = _wrap(model, self.rows)
        """Module path (as in adapter files) -> wrapped layer."""
        self._scales = mx.zeros((capacity + 1,), dtype=mx.float32)
        # Materialise now: a lazy array made on this thread cannot be evaluated on the MLX thread.
        mx.eval(self._scales)
        self._slots: OrderedDict[str, Slot] = OrderedDict()
        self._free = list(range(1, capacity + 1))
        self.evictions = 0

    def dims(self) -> dict[str, tuple[int, int]]:
        """(input, output) size of every layer an adapter may target."""
        return {path: (m.input_dims, m.output_dims) for path, m in self.layers.items()}

    def keys(self) -> list[str]:
        """Loaded manifest keys, most recently used first."""
        return list(reversed(self._slots))

    def get(self, key: str) -> Slot | None:
        """The slot holding `key`, if loaded."""
        return self._slots.get(key)

    def acquire(self, key: str) -> Slot:
        """Mark a loaded adapter as used by one more row."""
        slot = self._slots[key]
        slot.users += 1
        self._slots.move_to_end(key)
        return slot

    def release(self, key: str) -> None:
        """One row stopped using `key`; free it now if an unload was waiting for that."""
        slot = self._slots.get(key)
        if slot is None:
            return
        slot.users -= 1
        if slot.users <= 0 and slot.doomed:
            self._free_slot(key)

    def unload(self, key: str) -> bool:
        """Free `key`'s slot (after its running rows finish); False if it was not loaded."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        if slot.users > 0:
            slot.doomed = True
        else:
            self._free_slot(key)
        return True

    def has_room(self) -> bool:
        """Whether a new adapter could be loaded now (a free slot, or an idle one to evict)."""
        return bool(self._free) or any(slot.users == 0 for slot in self._slots.values())

    def load(self, weights: AdapterWeights) -> Slot:
        """Write an adapter into a slot, evicting the least recently used idle one if needed."""
        key = weights.manifest.key
        if key in self._slots:
            self._slots[key].doomed = False
            self._slots.move_to_end(key)
            return self._slots[key]
        index = self._take_slot()
        if weights.rank > self.rank:
            self._grow(weights.rank)
        for path, layer in self.layers.items():
            pair = weights.layers.get(path)
            if pair is None:
                if layer._banks.a is not None:
                    self._write(layer, index, None)
                continue
            self._write(layer, index, pair)
        self._scales[index] = weights.scale
        mx.eval(self._scales, *self._arrays())
        slot = Slot(index, weights.manifest)
        self._slots[key] = slot
        return slot

    def select(self, slots: list[int]) -> None:
        """Set the slot of each row for the next forward pass (all zero means base only)."""
        if any(slots):
            index = mx.array(slots, dtype=mx.uint32)
            self.rows.index = index
            self.rows.scale = self._scales[index]
        else:
            self.rows.index = None
            self.rows.scale = None

    def _take_slot(self) -> int:
        if self._free:
            return self._free.pop(0)
        for key, slot in self._slots.items():
            if slot.users == 0:
                self._free_slot(key)
                self.evictions += 1
                return self._free.pop(0)
        raise SlotsBusyError(f"all {self.capacity} adapter slots serve running requests")

    def _free_slot(self, key: str) -> None:
        slot = self._slots.pop(key)
        self._scales[slot.index] = 0.0
        self._free.append(slot.index)
        self._free.sort()

    def _grow(self, rank: int) -> None:
        for layer in self.layers.values():
            banks = layer._banks
            if banks.a is None or banks.b is None:
                continue
            extra = rank - self.rank
            banks.a = mx.pad(banks.a, [(0, 0), (0, 0), (0, extra)])
            banks.b = mx.pad(banks.b, [(0, 0), (0, extra), (0, 0)])
        self.rank = rank

    def _write(
        self, layer: MultiLoRALinear, index: int, pair: tuple[mx.array, mx.array] | None
    ) -> None:
        banks = layer._banks
        if banks.a is None or banks.b is None:
            dtype = pair[0].dtype if pair is not None else mx.float32
            banks.a = mx.zeros((self.capacity + 1, layer.input_dims, self.rank), dtype=dtype)
            banks.b = mx.zeros((self.capacity + 1, self.rank, layer.output_dims), dtype=dtype)
        if pair is None:
            banks.a[index] = 0.0
            banks.b[index] = 0.0
            return
        a, b = pair
        extra = self.rank - a.shape[1]
        if extra:
            a = mx.pad(a, [(0, 0), (0, extra)])
            b = mx.pad(b, [(0, extra), (0, 0)])
        banks.a[index] = a
        banks.b[index] = b

    def _arrays(self) -> list[mx.array]:
        found: list[mx.array] = []
        for layer in self.layers.values():
            if layer._banks.a is not None and layer._banks.b is not None:
                found += [layer._banks.a, layer._banks.b]
        return found


def _wrap(model: nn.Module, rows: RowSlots) -> dict[str, MultiLoRALinear]:
    """Replace every linear layer inside the transformer blocks with a MultiLoRALinear."""
    in_blocks = {id(m) for block in model.layers for _, m in block.named_modules()}
    if any(isinstance(m, MultiLoRALinear) for _, m in model.named_modules()):
        raise ValueError("this model already has a LoRA bank; load a fresh copy per engine")
    wrapped: dict[str, MultiLoRALinear] = {}
    for path, module in model.named_modules():
        if id(module) in in_blocks and isinstance(module, nn.Linear | nn.QuantizedLinear):
            wrapped[path] = MultiLoRALinear(module, rows, *_dims(module))
    if wrapped:
        model.update_modules(tree_unflatten(list(wrapped.items())))
    return wrapped
