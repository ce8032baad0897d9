"""OpenAI wire types as msgspec Structs, with OpenAI's exact field names.

Requests accept unknown fields (clients add new ones over time) and tell "left out" (`UNSET`)
from "set", so persona defaults apply only to what the client did not send. A JSON `null` counts
as left out. Known fields the server cannot honour are declared here so they can be refused by
name. Responses never use msgspec's `omit_defaults`: it would drop every field equal to its
default, the `object` constants and OpenAI's explicit nulls included. A response field is left
out only when it is `UNSET`.

Pure msgspec (its imports are msgspec and other pure type modules), so the TUI decodes the
server's replies with these very Structs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from server.wire.foreign import ForeignFields

Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
Positive = Annotated[int, Meta(ge=1)]
NonNegative = Annotated[int, Meta(ge=0)]
Seed = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Bias = Annotated[float, Meta(ge=-100.0, le=100.0)]
Stop = str | Annotated[list[str], Meta(max_length=4)]


class ContentPart(Struct, frozen=True):
    """One part of a message's content; only `text` parts can be served."""

    type: str
    text: str | UnsetType = UNSET


class ChatMessage(Struct, frozen=True):
    """One message of a conversation; `developer` counts as `system`."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | UnsetType = UNSET
    tool_calls: Any | UnsetType = UNSET
    function_call: Any | UnsetType = UNSET
    refusal: str | UnsetType | None = UNSET


class StreamOptions(Struct, frozen=True):
    """Options that only apply when streaming."""

    include_usage: bool | UnsetType | None = UNSET


class ResponseFormat(Struct, frozen=True):
    """`text`, `json_object` or `json_schema` (server/api/structured.py reads `json_schema`)."""

    type: str
    json_schema: Any | UnsetType = UNSET


class SamplingFields(ForeignFields, frozen=True, kw_only=True):
    """Sampling fields shared by chat and text completions, vLLM's extras included (and, from
    `ForeignFields`, the fields of other servers that are refused by name)."""

    max_tokens: Positive | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    top_p: Probability | UnsetType | None = UNSET
    top_k: Annotated[int, Meta(ge=-1)] | UnsetType | None = UNSET
    """0 or -1 turn it off, as in vLLM."""
    min_p: Probability | UnsetType | None = UNSET
    repetition_penalty: Annotated[float, Meta(gt=0.0, le=10.0)] | UnsetType | None = UNSET
    repetition_context_size: Annotated[int, Meta(ge=1, le=4096)] | UnsetType | None = UNSET
    presence_penalty: Penalty | UnsetType | None = UNSET
    frequency_penalty: Penalty | UnsetType | None = UNSET
    min_tokens: NonNegative | UnsetType | None = UNSET
    stop: Stop | UnsetType | None = UNSET
    seed: Seed | UnsetType | None = UNSET
    logit_bias: dict[str, Bias] | UnsetType | None = UNSET
    n: Positive | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    user: str | UnsetType | None = UNSET


class ChatCompletionRequest(SamplingFields, frozen=True, kw_only=True):
    """`POST /v1/chat/completions`."""

    model: str
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    max_tokens: NonNegative | UnsetType | None = UNSET
    """0 only with `echo`: score the final message, generate nothing (`server/api/scoring.py`)."""
    max_completion_tokens: NonNegative | UnsetType | None = UNSET
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType | None = UNSET
    tools: list[Any] | UnsetType | None = UNSET
    tool_choice: Any | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType | None = UNSET
    functions: list[Any] | UnsetType | None = UNSET
    function_call: Any | UnsetType = UNSET
    store: bool | UnsetType | None = UNSET
    metadata: dict[str, str] | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET
    modalities: list[str] | UnsetType | None = UNSET
    audio: Any | UnsetType = UNSET
    prediction: Any | UnsetType = UNSET
    reasoning_effort: str | UnsetType | None = UNSET
    web_search_options: Any | UnsetType = UNSET
    add_generation_prompt: bool | UnsetType | None = UNSET
    """vLLM's: false renders the conversation without opening a model turn."""
    continue_final_message: bool | UnsetType | None = UNSET
    """vLLM's: true continues the last (assistant) message inside its own turn."""


class CompletionRequest(SamplingFields, frozen=True, kw_only=True):
    """`POST /v1/completions` (legacy text completions)."""

    model: str
    prompt: str | list[str | int | list[int]]
    """Text, token ids, or a list of either: one choice per prompt (times `n`)."""
    logprobs: Annotated[int, Meta(ge=0, le=5)] | UnsetType | None = UNSET
    echo: bool | UnsetType | None = UNSET
    suffix: str | UnsetType | None = UNSET
    best_of: Positive | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType | None = UNSET
    """vLLM's extension: JSON mode or a JSON schema for a raw completion."""


class Usage(Struct, frozen=True):
    """Token counts of one request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(Struct, frozen=True):
    """One alternative token and its log probability."""

    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(Struct, frozen=True):
    """A chosen token, its log probability and the top alternatives."""

    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(Struct, frozen=True):
    """Chat logprobs: one entry per generated token."""

    content: list[TokenLogprob] | None


class AssistantMessage(Struct, frozen=True):
    """The reply."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None = None


class ChatChoice(Struct, frozen=True):
    """The one choice of a chat completion."""

    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class PersonaGuard(Struct, frozen=True):
    """What the persona guard decided for a reply: `none` (clear), `steer` (guidance added),
    `reply` (an author's reply), `regenerated` (a flagged reply was rewritten with steering) or
    `replaced` (a reply that stayed flagged was replaced by an author's reply)."""

    category: str | None
    score: float
    """P(flagged) of the latest user turn, 0 to 1."""
    action: str
    reply_score: float | None = None
    """P(flagged) of the reply, when the card checks replies."""


class ChatCompletion(Struct, frozen=True):
    """A whole chat completion; `persona_adapter` names the adapter version that replied."""

    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str
    persona_adapter: str | None
    persona_guard: PersonaGuard | UnsetType = UNSET
    """The guard's decision, on every body and chunk of a guarded persona."""
    object: Literal["chat.completion"] = "chat.completion"


class ChunkDelta(Struct, frozen=True):
    """What one chunk adds: the role in the first chunk only, then content."""

    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET


class ChunkChoice(Struct, frozen=True):
    """The one choice of a chunk."""

    index: int
    delta: ChunkDelta
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(Struct, frozen=True):
    """One streamed piece of a chat completion."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    system_fingerprint: str
    persona_adapter: str | None
    usage: Usage | UnsetType | None = UNSET
    """`null` on every chunk but the last when `stream_options.include_usage` is on, else absent."""
    persona_guard: PersonaGuard | UnsetType = UNSET
    """The guard's decision, on every body and chunk of a guarded persona."""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


class CompletionLogprobs(Struct, frozen=True):
    """Legacy logprobs: parallel lists per generated token."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(Struct, frozen=True):
    """One choice of a text completion."""

    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class Completion(Struct, frozen=True):
    """A text completion, whole or one streamed piece of it."""

    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    system_fingerprint: str
    persona_adapter: str | None
    usage: Usage | UnsetType | None = UNSET
    persona_guard: PersonaGuard | UnsetType = UNSET
    """The guard's decision, on every body and chunk of a guarded persona."""
    object: Literal["text_completion"] = "text_completion"


class Model(Struct, frozen=True):
    """One servable model: the base, a persona, or a pinned adapter version."""

    id: str
    created: int
    owned_by: str
    root: str | None = None
    """The adapter version behind this id, or the base model id."""
    parent: str | None = None
    """The base model of a persona."""
    max_model_len: int | None = None
    object: Literal["model"] = "model"


class ModelList(Struct, frozen=True):
    """`GET /v1/models`."""

    data: list[Model]
    object: Literal["list"] = "list"


class ResolvedSampling(Struct, frozen=True):
    """A persona's defaults after merging card, base model and server defaults."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repetition_penalty: float
    repetition_context_size: int
    presence_penalty: float
    frequency_penalty: float
    min_tokens: int
    max_tokens: int
    stop: list[str] = []
    seed: int | None = None


class Health(Struct, frozen=True):
    """`GET /health`."""

    status: Literal["ok", "loading", "failed"]
    model: str
    message: str | None = None


def is_set(value: object) -> bool:
    """True when a request field was sent with a value (neither left out nor null)."""
    return value is not UNSET and value is not None


def encode(value: Struct) -> bytes:
    """Encode a wire Struct as compact JSON."""
    return msgspec.json.encode(value)
