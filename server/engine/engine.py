"""The engine: one thread owns MLX, and asyncio code talks to it through commands and streams.

`Engine.load` builds the model (float32 on CPU, bfloat16 on an Apple GPU) and wraps its linear
layers for per-row LoRA. `start()` runs the scheduler (`engine_loop.Scheduler`) on a dedicated
thread. Handlers call `stream()`, an async generator fed from that thread with
`loop.call_soon_threadsafe`; closing it, or cancelling the task that reads it, removes the
sequence before the next decode step. Adapter loads and unloads are commands on the same queue.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from adapters.base import EMBEDDED, EMBEDDED_ID, content_hash, resolve_model
from adapters.guard.probe import POOLINGS
from server.engine.commands import (
    Cancel,
    Features,
    LoadAdapter,
    Score,
    Shutdown,
    Submit,
    UnloadAdapter,
)
from server.engine.loop import Scheduler
from server.engine.row import Handle
from server.engine.types import (
    MAX_TOP_LOGPROBS,
    AdapterError,
    AdapterRef,
    ContextLengthError,
    Delta,
    EngineClosed,
    EngineError,
    EngineStats,
    GenerationFailed,
    GenerationRequest,
    InvalidParams,
    JsonGrammar,
    SamplingParams,
    ScoreRequest,
    TokenLogprob,
)

__all__ = [
    "AdapterError",
    "AdapterRef",
    "ContextLengthError",
    "Delta",
    "Engine",
    "EngineClosed",
    "EngineError",
    "EngineStats",
    "GenerationFailed",
    "GenerationRequest",
    "InvalidParams",
    "JsonGrammar",
    "SamplingParams",
    "ScoreRequest",
    "TokenLogprob",
]

DEFAULT_CONTEXT = 4096
"""Used when a model's config names no context length."""


class Engine:
    """The generation engine for one base model and any number of LoRA adapters."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        model_id: str,
        base_hash: str,
        context_length: int,
        max_batch: int = 8,
        max_adapters: int = 8,
        model_path: Path | None = None,
        prefix_cache_bytes: int = 0,
        lookup_draft: int = 0,
        gemv_head: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        """mlx-lm's TokenizerWrapper: apply_chat_template, encode, decode, eos_token_ids."""
        self.model_id = model_id
        """The base model's public id, e.g. `gemma-3-270m`."""
        self.base_hash = base_hash
        """Content hash of the base model folder; adapters must match it."""
        self.context_length = context_length
        """Prompt plus completion tokens the model accepts."""
        self.vocab_size = _vocab_size(model, tokenizer)
        """Token ids run from 0 to vocab_size - 1."""
        self.hidden_size: int | None = _hidden_size(model)
        """Width of the hidden states the guard reads (None when the model does not say)."""
        self.max_batch = max_batch
        self.model_path = model_path
        """The local model folder, when known."""
        self._scheduler = Scheduler(
            model,
            tokenizer,
            base_hash=base_hash,
            vocab_size=self.vocab_size,
            max_batch=max_batch,
            max_adapters=max_adapters,
            prefix_cache_bytes=prefix_cache_bytes,
            lookup_draft=lookup_draft,
            gemv_head=gemv_head,
        )
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def load(
        cls,
        model: str,
        *,
        max_batch: int = 8,
        max_adapters: int = 8,
        prefix_cache_bytes: int = 0,
        lookup_draft: int = 0,
        gemv_head: bool = False,
    ) -> Engine:
        """Load a base model (`embedded`, a folder or a hub repo id); blocking.

        `prefix_cache_bytes` bounds the KV states kept for reuse by later prompts (0: none);
        `lookup_draft` > 0 lets a lone greedy stream verify that many prompt-lookup draft
        tokens per pass (see `server/engine/lookup.py`); `gemv_head` runs a lone greedy row's
        output layer through NumPy with a proof that the token is MLX's (`gemv_head.py`).
        """
        from mlx_lm.utils import _download, load

        resolved = resolve_model(model)
        path = resolved if isinstance(resolved, Path) else _download(resolved)
        loaded, tokenizer, config = load(str(path), return_config=True)
        dtype = mx.bfloat16 if mx.default_device() == mx.gpu else mx.float32
        # Quantized weights stay as they are; float weights take the device's fastest dtype.
        if not any(isinstance(m, nn.QuantizedLinear) for _, m in loaded.named_modules()):
            loaded.set_dtype(dtype, lambda t: mx.issubdtype(t, mx.floating) and t != dtype)
        mx.eval(loaded.parameters())
        if model in (EMBEDDED, EMBEDDED_ID):
            model_id = EMBEDDED_ID
        else:
            model_id = Path(model).expanduser().name if isinstance(resolved, Path) else model
        return cls(
            loaded,
            tokenizer,
            model_id=model_id,
            base_hash=content_hash(path),
            context_length=_context_length(config),
            max_batch=max_batch,
            max_adapters=max_adapters,
            model_path=path,
            prefix_cache_bytes=prefix_cache_bytes,
            lookup_draft=lookup_draft,
            gemv_head=gemv_head,
        )

    def start(self) -> None:
        """Start the MLX thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._scheduler.run, name="mlx-engine", daemon=True
            )
            self._thread.start()

    async def aclose(self) -> None:
        """Fail what is running with EngineClosed and stop the MLX thread."""
        closed, self._closed = self._closed, True
        if closed or self._thread is None or not self._thread.is_alive():
            return
        await self._command(Shutdown, closing=True)

    def validate(self, request: GenerationRequest) -> None:
        """Raise ContextLengthError or InvalidParams for a request the engine cannot run."""
        params, prompt = request.params, request.prompt
        if not prompt:
            raise InvalidParams("the prompt is empty", "prompt")
        if params.max_tokens < 1:
            raise InvalidParams("max_tokens must be at least 1", "max_tokens")
        if len(prompt) + params.max_tokens > self.context_length:
            raise ContextLengthError(len(prompt), params.max_tokens, self.context_length)
        if any(not 0 <= t < self.vocab_size for t in prompt):
            raise InvalidParams("the prompt holds token ids outside the vocabulary", "prompt")
        if any(not 0 <= t < self.vocab_size for t, _ in params.logit_bias):
            raise InvalidParams("logit_bias names token ids outside the vocabulary", "logit_bias")
        if not 0 <= params.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidParams(
                f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", "top_logprobs"
            )
        checks = (
            (params.temperature >= 0, "temperature"),
            (0 < params.top_p <= 1, "top_p"),
            (params.top_k >= 0, "top_k"),
            (0 <= params.min_p <= 1, "min_p"),
            (params.repetition_penalty > 0, "repetition_penalty"),
            (params.repetition_context_size > 0, "repetition_context_size"),
            (params.min_tokens >= 0, "min_tokens"),
        )
        for ok, name in checks:
            if not ok:
                raise InvalidParams(f"{name} is out of range", name)

    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Generate one sequence; raises ContextLengthError/InvalidParams before queueing."""
        self.validate(request)
        return self._stream(request)

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self._check_running()
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        def sink(item: Any) -> None:
            loop.call_soon_threadsafe(inbox.put_nowait, item)

        handle = Handle(next(self._ids), request, sink)
        self._scheduler.commands.put(Submit(handle))
        finished = False
        try:
            while True:
                item = await inbox.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                if item.finish_reason is not None:
                    finished = True
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._scheduler.commands.put(Cancel(handle.id))

    async def score(self, request: ScoreRequest) -> tuple[TokenLogprob, ...]:
        """Teacher-force `request.prompt` and return the logprob of each token from `start` on.

        Raises ContextLengthError or InvalidParams before queueing, AdapterError when the
        adapter cannot be loaded; it runs on the engine's thread between decode steps.
        """
        prompt = request.prompt
        if not 1 <= request.start < len(prompt):
            raise InvalidParams("there is no token to score after the prompt", "messages")
        if len(prompt) > self.context_length:
            raise ContextLengthError(len(prompt), 0, self.context_length)
        if any(not 0 <= t < self.vocab_size for t in prompt):
            raise InvalidParams("the prompt holds token ids outside the vocabulary", "prompt")
        if not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InvalidParams(
                f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", "top_logprobs"
            )
        return await self._command(lambda reply: Score(request, reply))  # type: ignore[no-any-return]

    async def compile_grammar(self, grammar: JsonGrammar) -> None:
        """Compile a request's grammar off the event loop (cached by schema).

        Raises InvalidParams naming what the schema asks that cannot be enforced. Compiling is
        llguidance's work, not MLX's, so it runs in a worker thread beside the engine.
        """
        await asyncio.to_thread(self._scheduler.grammars.compile, grammar)

    @property
    def grammar_compiles(self) -> int:
        """Grammars compiled since start-up (cache misses)."""
        return self._scheduler.grammars.compiles

    async def load_adapter(self, ref: AdapterRef) -> None:
        """Validate and load an adapter into a slot; AdapterError says why it was refused."""
        await self._command(lambda reply: LoadAdapter(ref, reply))

    async def unload_adapter(self, key: str) -> None:
        """Free an adapter's slot once no running sequence uses it."""
        await self._command(lambda reply: UnloadAdapter(key, reply))

    async def features(
        self,
        prompts: list[tuple[int, ...]],
        spans: list[tuple[int, int]],
        reads: list[tuple[int, str]],
    ) -> Any:
        """Pooled base-model hidden states, one (block, pooling) read after another side by
        side: a (prompts, hidden * reads) NumPy array. Runs on the MLX thread between steps;
        reads arriving together share one pass."""
        blocks = len(getattr(self._scheduler.model, "layers", []))
        for layer, pooling in reads:
            if not 1 <= layer <= blocks:
                raise InvalidParams(f"the model has no block {layer}", "model")
            if pooling not in POOLINGS:
                raise InvalidParams(f"no pooling {pooling!r}", "model")
        if not reads:
            raise InvalidParams("a guard must read at least one state", "model")
        return await self._command(
            lambda reply: Features(tuple(prompts), tuple(spans), tuple(reads), reply)
        )

    def loaded_adapters(self) -> list[str]:
        """Manifest keys of the adapters in memory, most recently used first."""
        return list(self._scheduler.loaded)

    def stats(self) -> EngineStats:
        """Counters and current load."""
        return self._scheduler.stats()

    def _check_running(self) -> None:
        if self._thread is None:
            raise EngineClosed("the engine has not been started")
        if self._closed or not self._thread.is_alive():
            raise EngineClosed("the engine has shut down")

    async def _command(self, make: Any, closing: bool = False) -> Any:
        if not closing:
            self._check_running()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any) -> None:
            if future.done():
                return
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        self._scheduler.commands.put(make(lambda r: loop.call_soon_threadsafe(settle, r)))
        return await future


def _vocab_size(model: nn.Module, tokenizer: Any) -> int:
    args = getattr(model, "args", None)
    size = getattr(args, "vocab_size", None)
    return int(size) if size else len(tokenizer)


def _hidden_size(model: nn.Module) -> int | None:
    args = getattr(model, "args", None)
    size = getattr(args, "hidden_size", None)
    text = getattr(args, "text_config", None)
    if size is None and isinstance(text, dict):  # multimodal Gemma 3 keeps it in text_config
        size = text.get("hidden_size")
    return int(size) if isinstance(size, int) and size > 0 else None


def _context_length(config: dict[str, Any]) -> int:
    for key in ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length"):
        value = config.get(key) or config.get("text_config", {}).get(key)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_CONTEXT
