"""Drift conversations and the echo check, with a scripted model behind the real openai client."""

from __future__ import annotations

import asyncio
import json

import httpx2
import openai
import pytest

from data.card import parse_card
from data.eval.criteria import check_reply
from data.eval.drift import run_drift
from data.eval.metrics import echo_kind, slope
from data.eval.suite import ConversationScript, ScriptTurn

CARD = parse_card(
    """name = "vell"
system_prompt = "You are Vell, the archive automaton of the Clockwork Library, a brass machine."
[style]
catchphrases = ["Noted."]
markers = ["shelves"]
reply_words = [2, 30]
banned = ["!"]
"""
)


def test_echo_of_the_system_prompt_and_of_the_user() -> None:
    recital = "You are Vell, the archive automaton of the Clockwork Library. How may I help?"
    assert echo_kind(recital, CARD.system_prompt, "hello") == "system"
    parrot = "Where can I find the maps of the old harbour? The maps are on the shelves."
    assert echo_kind(
        parrot, CARD.system_prompt, "where can I find the maps of the old harbour"
    ) == ("user")
    # Restating a short question, or using a few of the prompt's words, is not an echo.
    assert echo_kind("What is a crab? A crab is a shore animal.", CARD.system_prompt,
                     "What is a crab?") is None  # fmt: skip
    assert echo_kind("The Clockwork Library keeps its shelves.", CARD.system_prompt, "x") is None
    verdict = check_reply(recital, category="general", system_prompt=CARD.system_prompt)
    assert verdict.failures == ("repeats the system prompt",)


def test_slope_is_least_squares() -> None:
    assert slope([1.0, 0.8, 0.6, 0.4]) == pytest.approx(-0.2)
    assert slope([0.5]) == 0.0
    assert slope([0.0, 1.0, 0.0, 1.0]) == pytest.approx(0.2)


def scripted_client(seen: list[dict]) -> openai.AsyncOpenAI:  # type: ignore[type-arg]
    """Replies in voice for the first two turns, then plain, then a recital of the prompt."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        turn = sum(1 for m in body["messages"] if m["role"] == "user")
        text = {1: "Noted. The shelves hold it.", 2: "Noted. Filed on the shelves, patron.",
                3: "It is over there somewhere, mate!"}.get(turn, CARD.system_prompt)  # fmt: skip
        return httpx2.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
        })  # fmt: skip

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(base_url="http://fake/v1", api_key="x", http_client=http,
                              max_retries=0)  # fmt: skip


def test_drift_per_turn_with_change_and_slope() -> None:
    seen: list[dict] = []  # type: ignore[type-arg]
    script = ConversationScript("d1", tuple(
        ScriptTurn(f"Question {i} about the maps of the harbour?", "general") for i in range(5)
    ))  # fmt: skip
    drifts, replies = asyncio.run(
        run_drift(
            CARD, [script], [], ["gemma-3-270m", "vell"], 4, client=scripted_client(seen), seed=3
        )
    )
    assert len(replies) == 8
    assert {r.turn for r in replies} == {1, 2, 3, 4}
    base = next(d for d in drifts if d.model == "gemma-3-270m")
    assert [t.marker_rate for t in base.turns] == [1.0, 1.0, 0.0, 0.0]
    assert [t.banned_rate for t in base.turns] == [0.0, 0.0, 1.0, 0.0]
    assert [t.echo_rate for t in base.turns] == [0.0, 0.0, 0.0, 1.0]
    assert [t.criteria_pass for t in base.turns] == [1.0, 1.0, 0.0, 0.0]
    assert base.change["marker_rate"] == -1.0
    assert base.slope["marker_rate"] == pytest.approx(-0.4)
    # The model's own replies come back as history; only a non-persona id gets the system prompt.
    last = [b for b in seen if b["model"] == "gemma-3-270m"][-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant",
                                         "user", "assistant", "user"]  # fmt: skip
    assert last[2]["content"] == "Noted. The shelves hold it."
    persona_first = next(b for b in seen if b["model"] == "vell")["messages"]
    assert persona_first[0]["role"] == "user"
    assert {b["seed"] for b in seen} == {3}


def test_scripts_shorter_than_turns_are_refused() -> None:
    script = ConversationScript("d1", (ScriptTurn("a"), ScriptTurn("b")))
    with pytest.raises(ValueError, match="fewer turns: d1"):
        asyncio.run(run_drift(CARD, [script], [], ["vell"], 3, client=scripted_client([])))


def test_scripts_in_a_suite_are_read_apart_from_probes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from data.eval.suite import read_scripts, read_suite

    suite = tmp_path / "eval.jsonl"
    probe = {"id": "g", "category": "general", "messages": [{"role": "user", "content": "Hi"}]}
    good = {"id": "d1", "turns": [{"content": "One"}, {"content": "Two", "category": "idk"}]}
    bad = {"id": "d2", "turns": [{"content": "One", "category": "chat"}, {"content": " "}]}
    short = {"id": "d1", "turns": [{"content": "Only", "mood": 1}]}
    suite.write_text("\n".join(json.dumps(x) for x in (probe, good, bad, short)) + "\n")
    cases, problems = read_suite(suite)
    assert [c.id for _, c in cases] == ["g"]
    assert problems == []
    scripts, found = read_scripts(suite)
    assert [(line, s.id) for line, s in scripts] == [(2, "d1")]
    messages = {(p.line, p.message) for p in found}
    assert (3, "turns[0].category: 'chat' is not general or one of idk, clarify, off_topic, "
               "boundary, disclosure, benign_near") in messages  # fmt: skip
    assert (3, "turns[1].content: empty user turn") in messages
    assert (4, "id: 'd1' is already used on line 2") in messages
    assert (4, "turns: a conversation script needs at least 2 user turns") in messages
    assert any(p.line == 4 and "unknown key 'mood'" in p.message for p in found)


def test_eval_turns_longer_than_the_scripts_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from studio.cli import main

    # The shipped samples hold 8-turn scripts; 9 turns cannot be played (no server is needed).
    assert main(["eval", "vell", "--turns", "9", "--base-url", "http://127.0.0.1:9/v1"]) == 1
    err = capsys.readouterr().err
    assert "--turns 9 needs" in err
    assert "drift-01 (8)" in err
