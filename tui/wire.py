"""The server's JSON as the TUI reads it: the server's own wire Structs, plus two TUI-only shapes.

Every response type is imported from the modules the server itself encodes with:
`server.wire` (openai, drafts, personas, records), `server.envelope` and
`server.hotswap.types`, and from `data/` the card's `[training]`, a check's `Problem`, a
record's `Message`, `DatasetStats` and an eval's `EvalResult`. So the TUI and the server
cannot drift apart. Those modules import nothing heavier than msgspec, which keeps the TUI free
of litestar and mlx (a test in tests/tui checks it).
"""

from __future__ import annotations

import msgspec

from data.card import Training
from data.eval.run import EvalResult, ModelScores, SampleResult
from data.problem import Problem
from data.records import Message
from data.stats import DatasetStats
from server.envelope import ErrorEnvelope
from server.hotswap.types import (
    AdapterEvent,
    AdapterList,
    CheckpointInfo,
    LoadError,
    PersonaAdapters,
    RunInfo,
)
from server.wire.drafts import DraftInfo, DraftList, DraftReview, DraftTurn
from server.wire.openai import (
    ChatCompletionChunk,
    ChatMessage,
    Health,
    Model,
    ModelList,
    PersonaGuard,
    ResolvedSampling,
    Usage,
)
from server.wire.personas import PersonaCreated, PersonaInfo, PersonaList
from server.wire.records import (
    DataCheck,
    DataRow,
    DatasetRecord,
    RecordDeleted,
    RecordList,
    RecordSaved,
    SuiteBuilt,
)

__all__ = [
    "AdapterEvent",
    "AdapterList",
    "ChatCompletionChunk",
    "ChatMessage",
    "CheckpointInfo",
    "DataCheck",
    "DataRow",
    "DatasetRecord",
    "DatasetStats",
    "DraftInfo",
    "DraftList",
    "DraftReview",
    "DraftTurn",
    "ErrorEnvelope",
    "EvalResult",
    "Health",
    "LoadError",
    "Message",
    "Model",
    "ModelList",
    "ModelScores",
    "PersonaAdapters",
    "PersonaCreated",
    "PersonaGuard",
    "PersonaInfo",
    "PersonaList",
    "Problem",
    "RecordDeleted",
    "RecordList",
    "RecordSaved",
    "ReplyPiece",
    "ResolvedSampling",
    "RunInfo",
    "SampleResult",
    "SamplingOverrides",
    "SuiteBuilt",
    "Training",
    "Usage",
]


class SamplingOverrides(msgspec.Struct, frozen=True, omit_defaults=True):
    """Per-conversation sampling; a field left `None` falls back to the persona's defaults.

    Saved with each conversation and merged into the chat request's top level; the request
    type itself (`server.wire.openai.ChatCompletionRequest`) carries every field the server knows.
    """

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


class ReplyPiece(msgspec.Struct, frozen=True):
    """What the TUI takes from each chunk: new text, and, at the end, why and how much."""

    text: str = ""
    finish_reason: str | None = None
    adapter: str | None = None
    completion_tokens: int | None = None
    guard: PersonaGuard | None = None
    """The persona guard's decision, when the persona has a guard."""
