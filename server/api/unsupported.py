"""Known OpenAI fields this server cannot honour, refused by name instead of silently ignored."""

from __future__ import annotations

from typing import Any

from server.api.wire import ChatCompletionRequest, CompletionRequest, SamplingFields, is_set
from server.errors import UnsupportedError

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


def check_common(request: SamplingFields) -> None:
    """Refuse what chat and text completions share: several choices."""
    if is_set(request.n) and request.n != 1:
        raise _refuse("n", "this server returns exactly one choice; send n=1 or leave it out")


def check_chat(request: ChatCompletionRequest) -> None:
    """Refuse chat fields the server cannot honour."""
    check_common(request)
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


def check_completion(request: CompletionRequest) -> None:
    """Refuse text-completion fields the server cannot honour."""
    check_common(request)
    if is_set(request.best_of) and request.best_of != 1:
        raise _refuse("best_of", "this server generates exactly one candidate")
    if is_set(request.suffix) and request.suffix:
        raise _refuse("suffix", "this model does not fill in the middle")
    if request.echo is True and is_set(request.logprobs):
        raise _refuse("echo", "echo with logprobs would need prompt logprobs")
