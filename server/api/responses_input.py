"""A Responses request's input as a conversation: items checked, refused by name, turned into turns.

Messages (user, assistant, system, developer) with string content or `input_text` /
`output_text` parts are served; every other item or part type is refused with a 400 naming it.
System and developer messages, wherever they stand, become the system prompt; `instructions`
comes first. Either replaces the persona's own system prompt, as a system message does on chat.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from server.api.prompt import fold_turns
from server.errors import InvalidRequestError, UnsupportedError
from server.response_store import Turn
from server.wire.openai import is_set
from server.wire.responses import InputItem, InputPart, ResponsesRequest

ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text")
_TOOLS = "this server does not call tools"


@dataclass(frozen=True)
class Conversation:
    """The input of one request as turns, plus the listed form of its items."""

    turns: list[Turn]
    items: list[InputItem]


def _refuse(param: str, why: str) -> UnsupportedError:
    return UnsupportedError(f"'{param}' is not supported: {why}", param=param)


def check_request(request: ResponsesRequest) -> None:
    """Refuse known Responses fields the server cannot honour."""
    if is_set(request.n) and request.n != 1:
        raise _refuse("n", "this server returns exactly one output")
    if is_set(request.tools) and request.tools:
        raise _refuse("tools", _TOOLS)
    if is_set(request.tool_choice) and request.tool_choice != "none":
        raise _refuse("tool_choice", _TOOLS)
    if is_set(request.max_tool_calls):
        raise _refuse("max_tool_calls", _TOOLS)
    if is_set(request.reasoning) and not _empty(request.reasoning):
        raise _refuse("reasoning", "this model does not reason in a separate channel")
    if request.background is True:
        raise _refuse("background", "responses run in the foreground; stream for early output")
    if is_set(request.include) and request.include:
        raise _refuse("include", f"nothing extra can be included ({request.include[0]!r})")
    if is_set(request.top_logprobs) and request.top_logprobs:
        raise _refuse("top_logprobs", "the Responses route does not return logprobs")
    if is_set(request.prompt):
        raise _refuse("prompt", "stored prompt templates are not served")
    if is_set(request.conversation):
        raise _refuse("conversation", "use previous_response_id to continue a conversation")
    if is_set(request.truncation) and request.truncation != "disabled":
        raise _refuse("truncation", "only 'disabled' is served; a long input is a 400")
    if is_set(request.service_tier) and request.service_tier not in ("auto", "default"):
        raise _refuse("service_tier", "there is one service tier")


def _empty(value: Any) -> bool:
    if value is None or value == {}:
        return True
    return isinstance(value, dict) and all(v is None for v in value.values())


def read_input(value: str | list[Any]) -> Conversation:
    """The request's `input` as turns and listable items; a 400 names any item not served."""
    if isinstance(value, str):
        return Conversation([Turn("user", value)], [_item("user", value)])
    if not value:
        raise InvalidRequestError("input must not be empty", param="input")
    turns: list[Turn] = []
    items: list[InputItem] = []
    for index, raw in enumerate(value):
        role, text = _message(raw, f"input[{index}]")
        turns.append(Turn(role, text))
        items.append(_item(role, text))
    return Conversation(turns, items)


def _message(raw: Any, where: str) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"{where} must be a message object", param=where)
    kind = raw.get("type", "message")
    if kind != "message":
        why = _TOOLS if "call" in str(kind) else "only message items are served"
        raise UnsupportedError(
            f"{where} is of type '{kind}': {why}", param=f"{where}.type", code="unsupported_item"
        )
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidRequestError(
            f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role"
        )
    content = raw.get("content")
    if isinstance(content, str):
        return role, content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or a list of parts", param=f"{where}.content"
        )
    texts = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PARTS:
            raise UnsupportedError(
                f"{where}.content[{n}] is of type '{kind}'; only input_text and output_text "
                "parts are served",
                param=f"{where}.content[{n}].type",
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError(
                f"{where}.content[{n}] has no 'text'", param=f"{where}.content[{n}].text"
            )
        texts.append(text)
    return role, "".join(texts)


def _item(role: str, text: str) -> InputItem:
    if role == "assistant":
        part = InputPart("output_text", text, [])
    else:
        part = InputPart("input_text", text, UNSET)
    return InputItem(f"msg_{uuid.uuid4().hex}", role, [part])


def template_messages(
    history: Sequence[Turn],
    instructions: str | None,
    persona_prompt: str | None,
    post_history: str | None = None,
) -> list[dict[str, str]]:
    """Role/content dicts for the chat template, folded exactly as on chat completions.

    `instructions`, like a leading system or developer message, replaces the persona's prompt.
    """
    pairs = [(t.role, t.content) for t in history]
    return fold_turns(pairs, persona_prompt, post_history, instructions)
