"""The MLX thread: a command queue feeding a continuous-batching scheduler.

Each turn of the loop applies waiting commands (`commands.py`: new sequences, cancellations,
adapter loads and unloads), prefills newly admitted sequences, lets them join the running batch,
and runs one decode step for every row together (`batch.DecodeBatch`). An error while starting
or delivering one sequence fails that sequence only; the loop itself never dies.
"""

from __future__ import annotations

import logging
import queue
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from adapters.guard.features import read_features
from server.engine.batch import DecodeBatch, Prefill, extract_row, float_dtype
from server.engine.commands import (
    Cancel,
    Command,
    Features,
    LoadAdapter,
    Reply,
    Score,
    Shutdown,
    Submit,
    UnloadAdapter,
)
from server.engine.grammar import Grammars
from server.engine.lora_bank import LoraBank, Slot, SlotsBusyError
from server.engine.lora_load import read_adapter
from server.engine.prefix_cache import PrefixCache, Reuse
from server.engine.row import Handle, Row, read_logprob
from server.engine.sampling import RowSampler
from server.engine.score import teacher_force
from server.engine.token_mask import banned_ids
from server.engine.tokens import TokenText
from server.engine.types import (
    AdapterBusy,
    AdapterError,
    AdapterRef,
    Delta,
    EngineClosed,
    EngineError,
    EngineStats,
    GenerationFailed,
)

log = logging.getLogger(__name__)

CLEAR_EVERY = 256
"""Decode steps between releases of MLX's buffer cache."""


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
        prefix_cache_bytes: int = 0,
        lookup_draft: int = 0,
        gemv_head: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base_hash = base_hash
        self.vocab_size = vocab_size
        self.max_batch = max_batch
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.bank = LoraBank(model, max_adapters)
        self.stop_ids = frozenset(int(t) for t in tokenizer.eos_token_ids)
        self.grammars = Grammars(tokenizer, tuple(sorted(self.stop_ids)), vocab_size)
        self.loaded: tuple[str, ...] = ()
        """Loaded adapter keys, most recent first (a snapshot other threads may read)."""
        self.counts: Counter[str] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self._dtype = float_dtype(model)
        self._names = TokenText(tokenizer)
        self.batch = DecodeBatch(
            model,
            self.bank,
            vocab_size,
            banned_ids(tokenizer, self.stop_ids),
            draft=lookup_draft,
            stop_ids=self.stop_ids,
            gemv_head=gemv_head,
        )
        self._waiting: deque[Handle] = deque()
        self._admitted: deque[Row] = deque()
        """Sequences with a row reserved, waiting for a prefill group, oldest first."""
        self._group: Prefill | None = None
        """The sequences whose prompts are being run now."""
        self._running = True
        self._on_exit: Reply | None = None
        self._features: list[Features] = []
        """Guard reads that arrived in this turn's commands; run together as one batch."""
        self.prefix = PrefixCache(prefix_cache_bytes)
        """KV states of finished sequences, reused by prompts that continue them."""

    def stats(self) -> EngineStats:
        """A snapshot of the counters."""
        c = self.counts
        p = self.prefix.stats()
        return EngineStats(
            requests=c["requests"],
            finished=c["finished"],
            cancelled=c["cancelled"],
            failed=c["failed"],
            prompt_tokens=c["prompt_tokens"],
            completion_tokens=c["completion_tokens"],
            active=len(self.batch.rows),
            queued=len(self._waiting) + len(self._admitted) + len(self._prefilling()),
            steps=c["steps"],
            prefills=c["prefills"],
            prefill_groups=c["prefill_groups"],
            adapters_loaded=len(self.loaded),
            adapter_loads=c["adapter_loads"],
            adapter_failures=c["adapter_failures"],
            adapter_evictions=self.bank.evictions,
            max_batch=self.max_batch,
            max_adapters=self.bank.capacity,
            batch_sizes=tuple(sorted(self.batch_sizes.items())),
            prefix_cache_budget_bytes=p.budget,
            prefix_cache_bytes=p.nbytes,
            prefix_cache_entries=p.entries,
            prefix_cache_hits=p.hits,
            prefix_cache_misses=p.misses,
            prefix_cache_evictions=p.evictions,
            prefix_cache_reused_tokens=p.reused_tokens,
            lookup_draft_tokens=self.batch.drafted,
            lookup_accepted_tokens=self.batch.accepted,
            gemv_head_steps=self.batch.head.proven if self.batch.head else 0,
            gemv_head_fallbacks=self.batch.head.fallbacks if self.batch.head else 0,
        )

    def run(self) -> None:
        """Serve commands until Shutdown; never raises."""
        with mx.stream(mx.new_stream(mx.default_device())):
            while self._running:
                try:
                    idle = not (self.batch.rows or self._waiting or self._admitted or self._group)
                    self._drain(block=idle)
                    if self._features:
                        self._read_features()
                    self._admit()
                    if self._admitted or self._group:
                        self._prefill_some()
                    if self.batch.rows:
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
                command.reply(AdapterBusy(str(exc)))
            except Exception as exc:
                command.reply(exc if isinstance(exc, AdapterError) else AdapterError(repr(exc)))
            else:
                command.reply(None)
        elif isinstance(command, UnloadAdapter):
            self.bank.unload(command.key)
            self.prefix.forget((self.base_hash, command.key))
            self.loaded = tuple(self.bank.keys())
            command.reply(None)
        elif isinstance(command, Features):
            self.counts["feature_requests"] += 1
            self._features.append(command)
        elif isinstance(command, Score):
            command.reply(self._score(command))
        elif isinstance(command, Shutdown):
            self._running = False
            self._fail_all(EngineClosed("the engine shut down"))
            self._on_exit = command.reply

    def _read_features(self) -> None:
        """Every waiting guard read, batched per set of reads: one forward pass each."""
        pending, self._features = self._features, []
        groups: dict[tuple[tuple[int, str], ...], list[Features]] = {}
        for command in pending:
            groups.setdefault(command.reads, []).append(command)
        for reads, commands in groups.items():
            prompts = [p for c in commands for p in c.prompts]
            spans = [s for c in commands for s in c.spans]
            try:
                self.bank.select([0])  # the base model: no adapter's rows
                states = read_features(self.model, prompts, spans, reads)
            except Exception as exc:
                log.exception("guard features failed")
                for command in commands:
                    command.reply(GenerationFailed(f"guard features failed: {exc}"))
                continue
            self.counts["feature_batches"] += 1
            self.counts["feature_prompts"] += len(prompts)
            start = 0
            for command in commands:
                end = start + len(command.prompts)
                command.reply(states[start:end])
                start = end

    def _score(self, command: Score) -> Any:
        """The token logprobs of a scoring request, or the error that stopped it."""
        request = command.request
        key = request.adapter.manifest.key if request.adapter is not None else ""
        try:
            slot = self._load(request.adapter).index if request.adapter is not None else 0
        except SlotsBusyError as exc:
            return AdapterBusy(str(exc))
        except Exception as exc:
            return exc if isinstance(exc, AdapterError) else AdapterError(repr(exc))
        if key:
            self.bank.acquire(key)
        try:
            found = teacher_force(self.model, self.bank, slot, request, self._names)
        except Exception as exc:
            log.exception("scoring failed")
            return GenerationFailed(f"scoring failed: {exc}")
        finally:
            self._release(key)
        self.counts["prompt_tokens"] += len(request.prompt)
        return found

    def _cancel(self, handle_id: int) -> None:
        # Count first: a reader that sees the row gone must also see it counted.
        for handle in self._waiting:
            if handle.id == handle_id:
                self.counts["cancelled"] += 1
                self._waiting.remove(handle)
                return
        for row in [*self._admitted, *self._prefilling()]:
            if row.handle.id == handle_id and not row.cancelled:
                self.counts["cancelled"] += 1
                row.cancelled = True
                if row in self._admitted:
                    self._admitted.remove(row)
                self._release(row.adapter_key)
                return
        for i, row in enumerate(self.batch.rows):
            if row.handle.id == handle_id:
                self.counts["cancelled"] += 1
                self._remove([i])
                return

    def _load(self, ref: AdapterRef) -> Slot:
        slot = self.bank.get(ref.manifest.key)
        if slot is not None:
            return slot
        if not self.bank.has_room():
            # Checked before reading the files: a waiting request retries every loop turn.
            raise SlotsBusyError(f"all {self.bank.capacity} adapter slots serve running requests")
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
            if (
                len(self.batch.rows) + len(self._admitted) + len(self._prefilling())
                >= self.max_batch
            ):
                blocked.append(handle)
                continue
            try:
                self._admitted.append(self._start(handle))
            except SlotsBusyError:
                blocked.append(handle)
            except EngineError as exc:
                self._fail(handle, exc)
            except Exception as exc:
                log.exception("starting a sequence failed")
                self._fail(handle, GenerationFailed(f"generation failed: {exc}"))
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
            grammar, params = self.grammars.start(request)
            sampler = RowSampler(params, request.prompt, tuple(self.stop_ids), self.vocab_size)
            return Row(handle, sampler, self.tokenizer.detokenizer, slot, key, grammar)
        except BaseException:
            self._release(key)
            raise

    def _prefilling(self) -> list[Row]:
        """Live rows of the prefill group under way."""
        return [row for row in self._group.rows if not row.cancelled] if self._group else []

    def _prefill_some(self) -> None:
        """One prompt chunk of the current prefill group; the group joins the batch once done.

        Sequences admitted together share the group (as long as padding stays under half), and
        long prompts take a chunk per loop turn, so rows already decoding keep going.
        """
        if self._group is None:
            rows = [self._admitted.popleft()]
            reuse = self._reuse(rows[0])
            # A row with a reused prefix runs alone: its cache is not aligned with any other's.
            while (
                reuse is None
                and self._admitted
                and Prefill.fits(
                    [len(r.handle.request.prompt) for r in rows],
                    len(self._admitted[0].handle.request.prompt),
                )
                and self._reuse(self._admitted[0]) is None
            ):
                rows.append(self._admitted.popleft())
            self._group = Prefill(self.model, rows, reuse)
        group = self._group
        try:
            ready = self.batch.prefill(group)
        except Exception as exc:
            self._group = None
            log.exception("prefill failed")
            error = exc if isinstance(exc, EngineError) else GenerationFailed(f"prefill: {exc}")
            for row in group.rows:
                if not row.cancelled:
                    self._release(row.adapter_key)
                    self._fail(row.handle, error)
            return
        if ready:
            self._group = None
            if self.prefix.enabled:
                for i, row in enumerate(group.rows):
                    if not row.cancelled:
                        self._keep(row, lambda i=i: extract_row(group.cache, i))
            joined = self.batch.join(group)
            self.counts["prefill_groups"] += 1
            self.counts["prefills"] += len(joined)
            self.counts["prompt_tokens"] += sum(len(r.handle.request.prompt) for r in joined)

    def _reuse(self, row: Row) -> Reuse | None:
        """The row's prefix cache hit, looked up once (the first time it could be grouped)."""
        if not row.looked_up and self.prefix.enabled:
            row.looked_up = True
            owner = (self.base_hash, row.adapter_key)
            row.reuse = self.prefix.lookup(owner, row.handle.request.prompt)
        return row.reuse

    def _keep_prefixes(self, indices: list[int]) -> None:
        """Store the KV state of finished rows (by batch position) before they leave."""
        if self.prefix.enabled:
            for i in indices:
                self._keep(self.batch.rows[i], lambda i=i: self.batch.extract(i))

    def _keep(self, row: Row, extract: Callable[[], list[Any]]) -> None:
        """Store what `row` has fed the model so far, from its extracted cache.

        Kept twice per sequence: after its prefill (the prompt: the next turn's prompt always
        starts with it) and once it finishes (prompt and reply: continued when the client sends
        the reply back token for token).
        """
        try:
            layers = extract()
            if any(layer.offset != len(row.fed) for layer in layers):
                raise RuntimeError(f"cache holds {layers[0].offset} tokens, fed {len(row.fed)}")
        except Exception:
            log.exception("keeping a sequence's KV state failed; it is not cached")
            return
        self.prefix.insert((self.base_hash, row.adapter_key), tuple(row.fed), layers)

    def _release(self, key: str) -> None:
        if key:
            self.bank.release(key)
            self.loaded = tuple(self.bank.keys())

    # Decoding

    def _step(self) -> None:
        consumed = self.batch.step()
        self.counts["steps"] += 1
        self.batch_sizes[len(consumed)] += 1
        outbox: list[tuple[Handle, Any]] = []
        done: list[int] = []
        finished: list[int] = []
        # A speculating row yields several tokens in one step: entries map back to batch
        # positions, and whatever follows a row's last token is dropped.
        position = {id(row): i for i, row in enumerate(self.batch.rows)}
        for row, token, pending in consumed:
            i = position[id(row)]
            if i in done:
                continue
            item = self._advance(row, token, pending)
            if item is None:
                continue
            outbox.append((row.handle, item))
            if isinstance(item, BaseException):
                done.append(i)
            elif item.finish_reason is not None:
                done.append(i)
                finished.append(i)
        # Rows leave the batch before their consumers hear they are done, so stats never lag.
        if done:
            self._keep_prefixes(finished)
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
        for row in self.batch.remove(indices):
            if row.adapter_key:
                self.bank.release(row.adapter_key)
        self.loaded = tuple(self.bank.keys())

    # Failures

    def _fail(self, handle: Handle, error: BaseException) -> None:
        self.counts["failed"] += 1
        try:
            handle.sink(error)
        except Exception:
            log.warning("could not deliver an error to sequence %d", handle.id)

    def _fail_all(self, error: BaseException) -> None:
        starting = [*self._admitted, *self._prefilling()]
        handles = [row.handle for row in self.batch.rows] + [row.handle for row in starting]
        handles += list(self._waiting)
        self._remove(list(range(len(self.batch.rows))))
        for row in starting:
            self._release(row.adapter_key)
        self._admitted.clear()
        self._group = None
        self._waiting.clear()
        for handle in handles:
            self._fail(handle, error)
