"""Responses API wire types as msgspec Structs, with OpenAI's exact field names.

The request accepts unknown fields and keeps input items as plain JSON, so an item type the
server cannot serve is refused by name (server/api/responses_input.py). Reply Structs send every
field, nulls included, as OpenAI does: no `omit_defaults`, so constants such as `object` and
`type` are always on the wire.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

from server.wire.openai import PersonaGuard, Positive, Probability, SamplingFields, Temperature


class TextConfig(Struct, frozen=True):
    """`text`: the reply's format (`text`, `json_object` or `json_schema`)."""

    format: dict[str, Any] | UnsetType | None = UNSET
    verbosity: str | UnsetType | None = UNSET


class ResponsesRequest(SamplingFields, frozen=True, kw_only=True):
    """`POST /v1/responses`; vLLM's sampling extras travel as on chat completions."""

    model: str
    input: str | list[Any]
    instructions: str | UnsetType | None = UNSET
    max_output_tokens: Positive | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    top_p: Probability | UnsetType | None = UNSET
    text: TextConfig | UnsetType | None = UNSET
    metadata: Annotated[dict[str, str], Meta(max_length=16)] | UnsetType | None = UNSET
    store: bool | UnsetType | None = UNSET
    previous_response_id: str | UnsetType | None = UNSET
    truncation: str | UnsetType | None = UNSET
    tools: list[Any] | UnsetType | None = UNSET
    tool_choice: Any | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType | None = UNSET
    max_tool_calls: int | UnsetType | None = UNSET
    reasoning: Any | UnsetType = UNSET
    background: bool | UnsetType | None = UNSET
    include: list[str] | UnsetType | None = UNSET
    top_logprobs: int | UnsetType | None = UNSET
    prompt: Any | UnsetType = UNSET
    conversation: Any | UnsetType = UNSET
    service_tier: str | UnsetType | None = UNSET


class OutputText(Struct, frozen=True):
    """One `output_text` part of the reply."""

    text: str
    type: str = "output_text"
    annotations: list[Any] = []
    logprobs: list[Any] = []


class OutputMessage(Struct, frozen=True):
    """The assistant's message, the one output item."""

    id: str
    status: str
    """`in_progress`, `completed` or `incomplete`."""
    content: list[OutputText]
    role: str = "assistant"
    type: str = "message"


class InputTokensDetails(Struct, frozen=True):
    """No prompt caching here: always zero."""

    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Struct, frozen=True):
    """This model does not reason in a separate channel: always zero."""

    reasoning_tokens: int = 0


class ResponseUsage(Struct, frozen=True):
    """Token counts of one response."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = InputTokensDetails()
    output_tokens_details: OutputTokensDetails = OutputTokensDetails()


class IncompleteDetails(Struct, frozen=True):
    """Why a response stopped early."""

    reason: str


class ReplyFormat(Struct, frozen=True):
    """`text` of a response: the format the reply followed."""

    format: dict[str, Any]


class ResponseObject(Struct, frozen=True, kw_only=True):
    """A response, whole or as nested in streaming events; `persona_adapter` names the version."""

    id: str
    created_at: int
    status: str
    """`in_progress`, `completed` or `incomplete`."""
    model: str
    output: list[OutputMessage]
    instructions: str | None
    max_output_tokens: int | None
    previous_response_id: str | None
    temperature: float
    top_p: float
    text: ReplyFormat
    metadata: dict[str, str]
    store: bool
    usage: ResponseUsage | None
    incomplete_details: IncompleteDetails | None = None
    error: Any = None
    persona_adapter: str | None = None
    persona_guard: PersonaGuard | UnsetType = UNSET
    """The guard's decision, for a guarded persona."""
    completed_at: int | None = None
    object: str = "response"
    parallel_tool_calls: bool = False
    tool_choice: str = "none"
    tools: list[Any] = []
    truncation: str = "disabled"
    background: bool = False
    reasoning: Any = None
    user: str | None = None


class ResponseEvent(Struct, frozen=True):
    """`response.created`, `.in_progress`, `.completed` and `.incomplete`."""

    type: str
    sequence_number: int
    response: ResponseObject


class OutputItemEvent(Struct, frozen=True):
    """`response.output_item.added` and `.done`."""

    type: str
    sequence_number: int
    output_index: int
    item: OutputMessage


class ContentPartEvent(Struct, frozen=True):
    """`response.content_part.added` and `.done`."""

    type: str
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class TextDeltaEvent(Struct, frozen=True):
    """`response.output_text.delta`."""

    sequence_number: int
    item_id: str
    delta: str
    output_index: int = 0
    content_index: int = 0
    logprobs: list[Any] = []
    type: str = "response.output_text.delta"


class TextDoneEvent(Struct, frozen=True):
    """`response.output_text.done`."""

    sequence_number: int
    item_id: str
    text: str
    output_index: int = 0
    content_index: int = 0
    logprobs: list[Any] = []
    type: str = "response.output_text.done"


class ErrorEvent(Struct, frozen=True):
    """`error`: the stream failed after it started."""

    sequence_number: int
    message: str
    code: str | None
    param: str | None
    type: str = "error"


class InputPart(Struct, frozen=True):
    """A text part of a listed input item; `annotations` only on `output_text`."""

    type: str
    text: str
    annotations: list[Any] | UnsetType = UNSET


class InputItem(Struct, frozen=True):
    """One message of a response's input, as `GET .../input_items` lists it."""

    id: str
    role: str
    content: list[InputPart]
    status: str = "completed"
    type: str = "message"


class InputItemList(Struct, frozen=True):
    """`GET /v1/responses/{id}/input_items`."""

    data: list[InputItem]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: str = "list"


class DeletedResponse(Struct, frozen=True):
    """`DELETE /v1/responses/{id}`."""

    id: str
    object: str = "response.deleted"
    deleted: bool = True
