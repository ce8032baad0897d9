"""Long prompts are rendered and tokenized in a worker thread, so /health never waits on them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

import server.api.chat_plan as chat_plan
import server.api.completion_plan as completion_plan
import server.api.response_plan as response_plan


def recording(target: Callable[..., Any], threads: list[int]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return target(*args, **kwargs)

    return wrapper


async def test_prompts_are_built_off_the_event_loop(
    http: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    for module, name in (
        (chat_plan, "chat_prompt"),
        (completion_plan, "text_prompts"),
        (completion_plan, "_prompt_text"),
        (response_plan, "chat_prompt"),
    ):
        monkeypatch.setattr(module, name, recording(getattr(module, name), threads))
    loop_thread = threading.get_ident()
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(301)]
    requests = {
        "/v1/chat/completions": {"model": "pip", "messages": many, "max_tokens": 1},
        "/v1/completions": {"model": "pip", "prompt": "hi " * 300, "max_tokens": 1, "echo": True},
        "/v1/responses": {"model": "pip", "input": "hi " * 300, "max_output_tokens": 16},
    }
    for path, body in requests.items():
        response = await http.post(path, json=body)
        assert response.status_code == 200, (path, response.text)
    assert len(threads) == 4
    assert loop_thread not in threads


async def test_health_answers_while_a_huge_prompt_is_tokenized(
    http: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    started: list[float] = []
    real = chat_plan.chat_prompt

    def timed(*args: Any, **kwargs: Any) -> Any:
        started.append(time.perf_counter())
        return real(*args, **kwargs)

    monkeypatch.setattr(chat_plan, "chat_prompt", timed)
    text = "hello there, my good friend; how are you doing today?"
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i in range(9999)]
    big = asyncio.create_task(
        http.post("/v1/chat/completions", json={"model": "pip", "messages": many, "max_tokens": 1})
    )
    while not started:  # noqa: ASYNC110 - set from the worker thread
        await asyncio.sleep(0.005)
    health = await http.get("/health")
    answered = time.perf_counter() - started[0]
    response = await big
    took = time.perf_counter() - started[0]
    assert health.status_code == 200
    assert response.status_code == 400  # the tokens do not fit the tiny model's context
    assert took > 0.5, "the prompt was too quick to tokenize for this test to tell anything"
    assert answered < took / 2, f"/health took {answered:.2f} s of the prompt's {took:.2f} s"
