"""The MLX thread: a command queue feeding a continuous-batching scheduler.

Each turn of the loop applies waiting commands (new sequences, cancellations, adapter loads and
unloads), prefills newly admitted sequences one by one into their own KV cache, merges them into
the running batch (mlx-lm's BatchKVCache / BatchRotatingKVCache, left-padded and masked), then
runs one decode step for every row together. As in mlx-lm's `generate_step`, the next step is
queued with `mx.async_eval` before the current tokens are read, so Python work overlaps compute.
An error while starting one sequence fails that sequence only; the loop itself never dies.
"""

from __future__ import annotations

import logging
import queue
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models.cache import (
    BatchKVCache,
    BatchRotatingKVCache,
    KVCache,
    RotatingKVCache,
    make_prompt_cache,
)

from .engine_row import Handle, Row, read_logprob
from .engine_sampling import RowSampler
from .engine_tokens import TokenText
from .engine_types import (
    AdapterError,
    AdapterRef,
    Delta,
    EngineClosed,
    EngineError,
    EngineStats,
    GenerationFailed,
)
from .lora_bank import LoraBank, Slot, SlotsBusyError
from .lora_load import read_adapter

log = logging.getLogger(__name__)

PREFILL_STEP = 512
"""Prompt tokens per prefill forward pass."""
CLEAR_EVERY = 256
"""Decode steps between releases of MLX's buffer cache."""

Reply = Callable[[Any], None]
"""Receives a command's result, or the exception it raised; safe to call from any thread."""


@dataclass(frozen=True)
class Submit:
    handle: Handle


@dataclass(frozen=True)
class Cancel:
    handle_id: int


@dataclass(frozen=True)
class LoadAdapter:
    ref: AdapterRef
    reply: Reply


@dataclass(frozen=True)
class UnloadAdapter:
    key: str
    reply: Reply


@dataclass(frozen=True)
class Shutdown:
    reply: Reply


Command = Submit | Cancel | LoadAdapter | UnloadAdapter | Shutdown


class Scheduler:
    """Owns the model, the batch and the adapter bank; `run` is the MLX thread's body."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        base_hash: str,
        vocab_size: int,
        max_batch: int,
        max_adapters: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base_hash = base_hash
        self.vocab_size = vocab_size
        self.max_batch = max_batch
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.bank = LoraBank(model, max_adapters)
        self.stop_ids = frozenset(int(t) for t in tokenizer.eos_token_ids)
        self.loaded: tuple[str, ...] = ()
        """Loaded adapter keys, most recent first (a snapshot other threads may read)."""
        self.counts: Counter[str] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self._dtype = _float_dtype(model)
        self._names = TokenText(tokenizer)
        self._rows: list[Row] = []
        self._cache: list[Any] | None = None
        self._next: mx.array | None = None
        self._waiting: deque[Handle] = deque()
        self._running = True
        self._on_exit: Reply | None = None
        _batch_cache(model)  # refuse unsupported cache types at start-up, not on first request

    def stats(self) -> EngineStats:
        """A snapshot of the counters."""
        c = self.counts
        return EngineStats(
            requests=c["requests"],
            finished=c["finished"],
            cancelled=c["cancelled"],
            failed=c["failed"],
            prompt_tokens=c["prompt_tokens"],
            completion_tokens=c["completion_tokens"],
            active=len(self._rows),
            queued=len(self._waiting),
            steps=c["steps"],
            prefills=c["prefills"],
            adapters_loaded=len(self.loaded),
            adapter_loads=c["adapter_loads"],
            adapter_failures=c["adapter_failures"],
            adapter_evictions=self.bank.evictions,
            max_batch=self.max_batch,
            max_adapters=self.bank.capacity,
            batch_sizes=tuple(sorted(self.batch_sizes.items())),
        )

    def run(self) -> None:
        """Serve commands until Shutdown; never raises."""
        with mx.stream(mx.new_stream(mx.default_device())):
            while self._running:
                try:
                    self._drain(block=not self._rows and not self._waiting)
                    self._admit()
                    if self._rows:
                        self._step()
                except Exception as exc:
                    log.exception("decode step failed; failing the sequences in the batch")
                    self._fail_all(GenerationFailed(f"generation failed: {exc}"))
            mx.synchronize()
        self._refuse_late_commands()
        if self._on_exit is not None:
            self._on_exit(None)

    def _refuse_late_commands(self) -> None:
        """Answer whatever arrived after Shutdown, so no caller waits forever."""
        closed = EngineClosed("the engine shut down")
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, Submit):
                self._fail(command.handle, closed)
            elif not isinstance(command, Cancel):
                command.reply(None if isinstance(command, Shutdown) else closed)

    # Commands

    def _drain(self, block: bool) -> None:
        while True:
            try:
                command = self.commands.get(block=block)
            except queue.Empty:
                return
            block = False
            self._apply(command)

    def _apply(self, command: Command) -> None:
        if isinstance(command, Submit):
            self.counts["requests"] += 1
            self._waiting.append(command.handle)
        elif isinstance(command, Cancel):
            self._cancel(command.handle_id)
        elif isinstance(command, LoadAdapter):
            try:
                self._load(command.ref)
            except SlotsBusyError as exc:
                command.reply(AdapterError(str(exc)))
            except Exception as exc:
                command.reply(exc if isinstance(exc, AdapterError) else AdapterError(repr(exc)))
            else:
                command.reply(None)
        elif isinstance(command, UnloadAdapter):
            self.bank.unload(command.key)
            self.loaded = tuple(self.bank.keys())
            command.reply(None)
        elif isinstance(command, Shutdown):
            self._running = False
            self._fail_all(EngineClosed("the engine shut down"))
            self._on_exit = command.reply

    def _cancel(self, handle_id: int) -> None:
        for handle in self._waiting:
            if handle.id == handle_id:
                self._waiting.remove(handle)
                self.counts["cancelled"] += 1
                return
        for i, row in enumerate(self._rows):
            if row.handle.id == handle_id:
                self._remove([i])
                self.counts["cancelled"] += 1
                return

    def _load(self, ref: AdapterRef) -> Slot:
        slot = self.bank.get(ref.manifest.key)
        if slot is not None:
            return slot
        try:
            weights = read_adapter(ref, self.base_hash, self.bank.dims(), self._dtype)
        except AdapterError:
            self.counts["adapter_failures"] += 1
            raise
        slot = self.bank.load(weights)
        self.counts["adapter_loads"] += 1
        self.loaded = tuple(self.bank.keys())
        return slot

    # Admission and prefill

    def _admit(self) -> None:
        blocked: deque[Handle] = deque()
        while self._waiting:
            handle = self._waiting.popleft()
            if len(self._rows) >= self.max_batch:
                blocked.append(handle)
                continue
            try:
                row = self._start(handle)
            except SlotsBusyError:
                blocked.append(handle)
                continue
            except EngineError as exc:
                self._fail(handle, exc)
                continue
            except Exception as exc:
                log.exception("prefill failed")
                self._fail(handle, GenerationFailed(f"generation failed: {exc}"))
                continue
            self._join(row)
        self._waiting = blocked

    def _start(self, handle: Handle) -> Row:
        request = handle.request
        slot, key = 0, ""
        if request.adapter is not None:
            key = request.adapter.manifest.key
            slot = self._load(request.adapter).index
            self.bank.acquire(key)
            self.loaded = tuple(self.bank.keys())
        try:
            sampler = RowSampler(
                request.params, request.prompt, tuple(self.stop_ids), self.vocab_size
            )
            row = Row(handle, sampler, self.tokenizer.detokenizer, slot, key)
            row.cache, row.first = self._prefill(row)
        except BaseException:
            if key:
                self.bank.release(key)
            raise
        self.counts["prefills"] += 1
        self.counts["prompt_tokens"] += len(request.prompt)
        return row

    def _prefill(self, row: Row) -> tuple[list[Any], mx.array]:
        prompt = mx.array(row.handle.request.prompt, dtype=mx.uint32)[None]
        cache = _batch_cache(self.model)
        self.bank.select([row.slot])
        body = prompt.shape[1] - 1
        for start in range(0, body, PREFILL_STEP):
            self.model(prompt[:, start : min(start + PREFILL_STEP, body)], cache=cache)
            mx.eval([c.state for c in cache])
        logits = self.model(prompt[:, body:], cache=cache)[:, -1, :]
        first = self._sample(row, logits, None)
        mx.async_eval(first, *(row.pending or ()))
        return cache, first

    def _join(self, row: Row) -> None:
        assert row.cache is not None
        assert row.first is not None
        if self._cache is None or self._next is None:
            self._cache, self._next = row.cache, row.first
        else:
            for mine, theirs in zip(self._cache, row.cache, strict=True):
                mine.extend(theirs)
            self._next = mx.concatenate([self._next, row.first])
        row.cache, row.first = None, None
        self._rows.append(row)

    # Decoding

    def _sample(self, row: Row, logits: mx.array, token: mx.array | None) -> mx.array:
        logits = row.sampler.process(logits, token)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        chosen = row.sampler.sample(logprobs)
        if row.wants_logprobs:
            picked = mx.take_along_axis(logprobs, chosen[:, None], axis=-1)
            k = min(row.top_logprobs, self.vocab_size)
            if k:
                ids = mx.argpartition(-logprobs, kth=k - 1, axis=-1)[:, :k]
                row.pending = (picked, ids, mx.take_along_axis(logprobs, ids, axis=-1))
            else:
                row.pending = (picked, None, None)
        return chosen

    def _step(self) -> None:
        rows, inputs = self._rows, self._next
        assert inputs is not None
        current = [row.pending for row in rows]
        self.bank.select([row.slot for row in rows])
        logits = self.model(inputs[:, None], cache=self._cache)[:, -1, :]
        if all(row.sampler.plain for row in rows):
            upcoming = mx.argmax(logits, axis=-1)
            for row in rows:
                row.sampler.count += 1
        else:
            upcoming = mx.concatenate(
                [self._sample(r, logits[i : i + 1], inputs[i : i + 1]) for i, r in enumerate(rows)]
            )
        extras = [p for row in rows if row.pending for p in row.pending if p is not None]
        mx.async_eval(upcoming, *extras)
        self.counts["steps"] += 1
        self.batch_sizes[len(rows)] += 1
        tokens = inputs.tolist()
        self._next = upcoming
        outbox: list[tuple[Handle, Any]] = []
        done: list[int] = []
        for i, row in enumerate(rows):
            item = self._advance(row, tokens[i], current[i])
            if item is None:
                continue
            outbox.append((row.handle, item))
            if isinstance(item, BaseException) or item.finish_reason is not None:
                done.append(i)
        # Rows leave the batch before their consumers hear they are done, so stats never lag.
        if done:
            self._remove(done)
        for handle, item in outbox:
            self._send(handle, item)
        if self.counts["steps"] % CLEAR_EVERY == 0:
            mx.clear_cache()

    def _advance(self, row: Row, token: int, pending: Any) -> Delta | BaseException | None:
        """One token for one row: the Delta to send, the error that ends it, or None."""
        try:
            logprob = read_logprob(token, pending, self._names) if pending is not None else None
            delta = row.consume(token, logprob, self.stop_ids)
        except Exception as exc:
            log.exception("turning a token into text failed")
            self.counts["failed"] += 1
            return GenerationFailed(f"generation failed: {exc}")
        self.counts["completion_tokens"] += 1
        if delta is not None and delta.finish_reason is not None:
            self.counts["finished"] += 1
        return delta

    def _send(self, handle: Handle, item: Any) -> None:
        try:
            handle.sink(item)
        except Exception:
            # The consumer's event loop is gone: nobody will read this sequence any more.
            log.warning("sequence %d lost its consumer; cancelling it", handle.id)
            self._cancel(handle.id)

    def _remove(self, indices: list[int]) -> None:
        drop = set(indices)
        keep = [i for i in range(len(self._rows)) if i not in drop]
        for i in drop:
            if self._rows[i].adapter_key:
                self.bank.release(self._rows[i].adapter_key)
        self.loaded = tuple(self.bank.keys())
        if not keep or self._cache is None or self._next is None:
            self._rows, self._cache, self._next = [], None, None
            mx.clear_cache()
            return
        for cache in self._cache:
            cache.filter(keep)
        self._next = self._next[mx.array(keep)]
        self._rows = [self._rows[i] for i in keep]

    # Failures

    def _fail(self, handle: Handle, error: BaseException) -> None:
        self.counts["failed"] += 1
        try:
            handle.sink(error)
        except Exception:
            log.warning("could not deliver an error to sequence %d", handle.id)

    def _fail_all(self, error: BaseException) -> None:
        handles = [row.handle for row in self._rows] + list(self._waiting)
        self._remove(list(range(len(self._rows))))
        self._waiting.clear()
        for handle in handles:
            self._fail(handle, error)


def _batch_cache(model: nn.Module) -> list[Any]:
    """An empty one-row batch cache of the model's own cache layout."""
    caches: list[Any] = []
    for cache in make_prompt_cache(model):
        if type(cache) is KVCache:
            caches.append(BatchKVCache([0]))
        elif type(cache) is RotatingKVCache and cache.keep == 0:
            caches.append(BatchRotatingKVCache(cache.max_size, [0]))
        else:
            raise EngineError(f"{type(cache).__name__} caches cannot be batched yet")
    return caches


def _float_dtype(model: nn.Module) -> mx.Dtype:
    """The dtype adapter weights are cast to: that of the model's first float parameter."""
    for _, value in tree_flatten(model.parameters()):
        if mx.issubdtype(value.dtype, mx.floating):
            return value.dtype
    return mx.float32
