"""One way to reach an OpenAI-compatible endpoint: the eval, pairs, drafts and the judge use it."""

from __future__ import annotations

from typing import Any


def openai_client(
    base_url: str, api_key: str, timeout: float | None = None, max_retries: int = 0
) -> Any:
    """An `openai.AsyncOpenAI` for `base_url`; `timeout` in seconds (None: the SDK's default).

    Only plain numbers cross into the SDK: it owns its HTTP library and transport (`openai` 3.6x
    moved from httpx to httpx2 and refuses the other library's objects).
    """
    import openai

    if timeout is None:
        return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=max_retries)
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=float(timeout)
    )
