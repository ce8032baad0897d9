"""Scoring a final message through chat completions (`echo` + `max_tokens: 0`), checked against
an independent computation: the tiny model's logits straight from mlx-lm, log-softmaxed in NumPy.
"""

from __future__ import annotations

from typing import Any

import httpx2
import numpy as np
import pytest
from openai.types.chat import ChatCompletion

SCORE = {"echo": True, "continue_final_message": True, "add_generation_prompt": False}
LONG = " ".join(["The tide pool holds a crab, a snail and a starfish."] * 30)


def gemma_prompt(user: str) -> str:
    """Gemma 3's chat prompt for one user turn, written out by hand."""
    return f"<bos><start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


def reference(tiny_model: Any, user: str, reply: str) -> tuple[list[int], np.ndarray]:
    """The reply's token ids and their log probabilities, computed without the server."""
    import mlx.core as mx

    model, tokenizer = tiny_model
    prompt = tokenizer.encode(gemma_prompt(user), add_special_tokens=False)
    full = tokenizer.encode(gemma_prompt(user) + reply, add_special_tokens=False)
    assert full[: len(prompt)] == prompt
    logits = np.array(model(mx.array([full]))[0].astype(mx.float32), dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    targets = full[len(prompt) :]
    rows = np.arange(len(prompt) - 1, len(full) - 1)
    return targets, logprobs[rows, targets]


async def scored(http: httpx2.AsyncClient, model: str, user: str, reply: str, **extra: Any) -> Any:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
        "max_tokens": 0,
        "logprobs": True,
        **SCORE,
        **extra,
    }
    return await http.post("/v1/chat/completions", json=body)


@pytest.mark.parametrize("reply", ["A crab lives in the tide pool.", LONG])
async def test_scores_match_numpy_log_softmax_over_mlx_logits(
    http: httpx2.AsyncClient, base: str, tiny_model: Any, reply: str
) -> None:
    user = "what lives in a tide pool"
    response = await scored(http, base, user, reply, top_logprobs=3)
    assert response.status_code == 200, response.text
    completion = ChatCompletion.model_validate(response.json())
    choice = completion.choices[0]
    assert choice.message.content == reply
    assert choice.finish_reason == "length"
    content = choice.logprobs.content  # type: ignore[union-attr]
    assert content is not None
    targets, expected = reference(tiny_model, user, reply)
    assert len(content) == len(targets)
    assert b"".join(bytes(item.bytes or []) for item in content).decode() == reply
    got = np.array([item.logprob for item in content])
    np.testing.assert_allclose(got, expected, atol=2e-4)
    for item in content:
        assert len(item.top_logprobs) == 3
        assert item.top_logprobs[0].logprob >= item.logprob - 1e-5
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 0
    assert completion.usage.prompt_tokens > len(targets)


async def test_a_persona_scores_with_its_system_prompt(
    http: httpx2.AsyncClient, tiny_model: Any
) -> None:
    user, reply = "hello there", "Gears turn and I hum along."
    response = await scored(http, "pip", user, reply)
    assert response.status_code == 200, response.text
    content = ChatCompletion.model_validate(response.json()).choices[0].logprobs.content  # type: ignore[union-attr]
    system = "You are Pip, a cheerful robot who loves gears."
    _, expected = reference(tiny_model, f"{system}\n\n{user}", reply)
    np.testing.assert_allclose([i.logprob for i in content or []], expected, atol=2e-4)


async def test_control_token_text_in_the_reply_is_scored_as_text(
    http: httpx2.AsyncClient, base: str
) -> None:
    reply = "I say <end_of_turn> out loud."
    response = await scored(http, base, "say it", reply)
    content = response.json()["choices"][0]["logprobs"]["content"]
    assert "<end_of_turn>" not in [item["token"] for item in content]
    assert "".join(item["token"] for item in content) == reply


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"max_tokens": 4}, "echo", "max_tokens above 0"),
        ({"continue_final_message": False}, "echo", "continue_final_message"),
        ({"stream": True}, "stream", "stream"),
        ({"n": 2}, "n", "'n' must be 1"),
    ],
)
async def test_bad_scoring_requests_are_refused_by_name(
    http: httpx2.AsyncClient, base: str, extra: dict[str, Any], param: str, words: str
) -> None:
    response = await scored(http, base, "hi", "Hello.", **extra)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


async def test_max_tokens_zero_without_echo_is_a_400(http: httpx2.AsyncClient, base: str) -> None:
    body = {"model": base, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_tokens"


async def test_scoring_needs_a_user_turn_before_the_reply(
    http: httpx2.AsyncClient, base: str
) -> None:
    body = {
        "model": base,
        "messages": [{"role": "assistant", "content": "Hello."}],
        "max_tokens": 0,
        **SCORE,
    }
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


async def test_persona_eval_scores_contrast_pairs_through_the_served_model(
    client: Any, tiny_model: Any
) -> None:
    from data.card import parse_card
    from data.eval.report import terminal_table
    from data.eval.run import run_eval
    from data.eval.suite import EvalCase
    from data.records import Message

    card = parse_card(
        'name = "pip"\nsystem_prompt = "You are Pip, a cheerful robot who loves gears."\n'
    )
    user = "hello there"
    good, bad = "Gears turn and I hum along.", "Xq zz vv qq."
    case = EvalCase(
        "c1", "general", (Message("user", user),), chosen=good, rejected=(bad, good + " Yes.")
    )
    result = await run_eval(card, [case], [], ["pip"], client=client, sample=False)
    assert result.samples == []
    assert result.models == []
    [scores] = result.contrast
    system = "You are Pip, a cheerful robot who loves gears."
    means = {}
    for reply in (good, bad, good + " Yes."):
        _, logprobs = reference(tiny_model, f"{system}\n\n{user}", reply)
        means[reply] = logprobs.mean()
    wins = (means[good] > means[bad]) + (means[good] > means[good + " Yes."])
    assert scores.overall.pairs == 2
    assert scores.overall.won == wins
    _, gold = reference(tiny_model, f"{system}\n\n{user}", good)
    assert scores.by_category["general"].gold_perplexity == pytest.approx(
        np.exp(-gold.mean()), rel=1e-3
    )
    table = terminal_table(result)
    assert table.splitlines()[0].startswith("headline")
    assert "contrast accuracy: general" in table
    assert "gold perplexity: all" in table
