"""Known fields this server cannot honour, refused by name instead of silently ignored.

OpenAI's own fields are checked here; those of other servers' APIs are listed in
`server/wire/foreign.py`.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from server.errors import InvalidRequestError, UnsupportedError
from server.wire.foreign import REFUSED
from server.wire.openai import ChatCompletionRequest, CompletionRequest, SamplingFields, is_set

_TOOLS = "this server does not call tools"
_CHAT_REFUSED = {
    "tools": _TOOLS,
    "functions": _TOOLS,
    "function_call": _TOOLS,
    "audio": "audio output is not supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
    "reasoning_effort": "this model does not reason in a separate channel",
}


def _refuse(param: str, why: str) -> UnsupportedError:
    return UnsupportedError(f"'{param}' is not supported: {why}", param=param)


def check_foreign(request: Any, served: frozenset[str] = frozenset()) -> None:
    """Refuse any field of `REFUSED` that is set to more than its off value (400, by name).

    `served` names fields the route implements itself under the same name (`echo` on
    `/v1/completions`).
    """
    for name, (off, why) in REFUSED.items():
        if name in served:
            continue
        value = getattr(request, name, UNSET)
        try:
            if value is UNSET or off(value):
                continue
        except TypeError:  # a value of another type is not the off value either
            pass
        raise _refuse(name, why)


MAX_N = 8
"""Most choices one request may ask for."""


def choices_wanted(request: SamplingFields) -> int:
    """`n`, or 1 when left out."""
    return request.n if is_set(request.n) else 1


def check_common(request: SamplingFields) -> None:
    """Check what chat and text completions share: the number of choices."""
    if choices_wanted(request) > MAX_N:
        raise InvalidRequestError(f"n must be between 1 and {MAX_N}", param="n")


def check_chat(request: ChatCompletionRequest) -> None:
    """Refuse chat fields the server cannot honour."""
    check_common(request)
    check_foreign(request, served=frozenset({"echo"}))
    if request.echo not in (UNSET, None, False, True):
        raise InvalidRequestError("echo must be true or false", param="echo")
    if request.echo is not True:
        for name in ("max_tokens", "max_completion_tokens"):
            if getattr(request, name) == 0:
                raise InvalidRequestError(
                    f"{name} must be at least 1 (0 is only for echo: true, which scores the "
                    "final message)",
                    param=name,
                )
    for name, why in _CHAT_REFUSED.items():
        value: Any = getattr(request, name)
        if is_set(value) and value != []:
            raise _refuse(name, why)
    if is_set(request.tool_choice) and request.tool_choice != "none":
        raise _refuse("tool_choice", _TOOLS)
    if request.store is True:
        raise _refuse("store", "completions are not stored")
    if is_set(request.modalities) and any(m != "text" for m in request.modalities):
        raise _refuse("modalities", "only text output is served")
    if is_set(request.service_tier) and request.service_tier not in ("auto", "default"):
        raise _refuse("service_tier", "there is one service tier")
    if is_set(request.top_logprobs) and request.top_logprobs > 0 and request.logprobs is not True:
        raise UnsupportedError("top_logprobs requires logprobs=true", param="top_logprobs")
    if request.continue_final_message is True:
        if request.add_generation_prompt is True:
            raise InvalidRequestError(
                "continue_final_message and add_generation_prompt cannot both be true",
                param="continue_final_message",
            )
        if request.messages[-1].role != "assistant":
            raise InvalidRequestError(
                "continue_final_message needs an assistant message last, to continue",
                param="continue_final_message",
            )


def check_completion(request: CompletionRequest) -> None:
    """Refuse text-completion fields the server cannot honour."""
    check_common(request)
    check_foreign(request, served=frozenset({"echo", "best_of"}))
    if is_set(request.best_of) and request.best_of != 1:
        raise _refuse("best_of", "this server generates exactly one candidate")
    if is_set(request.suffix) and request.suffix:
        raise _refuse("suffix", "this model does not fill in the middle")
    if request.echo is True and is_set(request.logprobs):
        raise _refuse("echo", "echo with logprobs would need prompt logprobs")
