"""The server's JSON as the TUI reads it: msgspec Structs that ignore fields they do not know.

The admin API's types come from `server.hotswap.types` (pure msgspec, shared with the server);
the OpenAI-side types here are lenient views: every field the TUI does not strictly need has a
default, so a newer or older server still decodes.
"""

from __future__ import annotations

import msgspec

from server.hotswap.types import (
    AdapterEvent,
    AdapterList,
    CheckpointInfo,
    LoadError,
    PersonaAdapters,
    RunInfo,
)

__all__ = [
    "AdapterEvent",
    "AdapterList",
    "ChatChunk",
    "ChatMessage",
    "CheckpointInfo",
    "ErrorEnvelope",
    "Health",
    "LoadError",
    "ModelInfo",
    "ModelList",
    "PersonaAdapters",
    "PersonaInfo",
    "PersonaList",
    "ReplyPiece",
    "ResolvedSampling",
    "RunInfo",
    "SamplingOverrides",
    "TrainingDefaults",
]


class ErrorBody(msgspec.Struct, frozen=True):
    """The inside of OpenAI's error envelope."""

    message: str = ""
    type: str = ""
    param: str | None = None
    code: str | int | None = None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    """`{"error": {...}}`, the body of every failed request."""

    error: ErrorBody


class ModelInfo(msgspec.Struct, frozen=True):
    """One entry of `GET /v1/models`."""

    id: str
    owned_by: str = ""
    created: int = 0


class ModelList(msgspec.Struct, frozen=True):
    """`GET /v1/models`."""

    data: list[ModelInfo] = []


class ResolvedSampling(msgspec.Struct, frozen=True):
    """A persona's sampling defaults after the card, model and server defaults are merged."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    repetition_context_size: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None


class TrainingDefaults(msgspec.Struct, frozen=True):
    """A persona card's `[training]`: what a job trains with unless told otherwise."""

    epochs: int = 3
    learning_rate: float = 1e-4
    rank: int = 8
    scale: float = 20.0
    layers: int = 8
    batch_size: int = 4
    max_seq_length: int = 512
    val_every: int = 25
    checkpoint_every: int = 50
    method: str = "sft"
    """`sft`, `dpo` or `orpo`."""
    beta: float = 0.1


class PersonaInfo(msgspec.Struct, frozen=True):
    """`GET /v1/personas/{id}`."""

    id: str
    display_name: str = ""
    description: str = ""
    system_prompt: str = ""
    base_model: str = ""
    defaults: ResolvedSampling = ResolvedSampling()
    active_adapter: str | None = None
    training: TrainingDefaults = TrainingDefaults()
    data_files: list[str] = []
    """The persona's data files on the server (`train.jsonl`, `eval.jsonl`, ...)."""
    greetings: list[str] = []
    """Opening lines a new chat with this persona may start with."""

    @property
    def title(self) -> str:
        """The name to show people."""
        return self.display_name or self.id


class PersonaList(msgspec.Struct, frozen=True):
    """`GET /v1/personas`."""

    data: list[PersonaInfo] = []


class Health(msgspec.Struct, frozen=True):
    """`GET /health`, whatever its status code."""

    status: str = ""
    """`ok`, `loading` or `failed`."""
    model: str | None = None
    message: str | None = None


class SamplingOverrides(msgspec.Struct, frozen=True, omit_defaults=True):
    """Per-conversation sampling; a field left `None` falls back to the persona's defaults."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_tokens: int | None = None
    seed: int | None = None


class ChatMessage(msgspec.Struct, frozen=True):
    """One message sent in a chat request."""

    role: str
    content: str


class ChunkDelta(msgspec.Struct, frozen=True):
    """The new part of a streamed message."""

    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, frozen=True):
    """One choice of a stream chunk."""

    index: int = 0
    delta: ChunkDelta = ChunkDelta()
    finish_reason: str | None = None


class Usage(msgspec.Struct, frozen=True):
    """Token counts of a finished request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatChunk(msgspec.Struct, frozen=True):
    """One `chat.completion.chunk`, with the studio's `persona_adapter` extension."""

    id: str = ""
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: Usage | None = None
    persona_adapter: str | None = None
    system_fingerprint: str | None = None
    error: ErrorBody | None = None
    """Set when the server reports a failure inside an open stream."""


class ReplyPiece(msgspec.Struct, frozen=True):
    """What the TUI takes from each chunk: new text, and, at the end, why and how much."""

    text: str = ""
    finish_reason: str | None = None
    adapter: str | None = None
    completion_tokens: int | None = None
