"""`persona eval` and `persona tune-sampling` through the real app and the official client."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from data.card import load_card
from data.eval.report import markdown, table_rows, terminal_table
from data.eval.run import run_eval
from data.eval.suite import EvalCase
from data.records import Message
from studio.persona_files import load_persona_files
from studio.tune_cli import sweep

CASES = [
    EvalCase("g-1", "general", (Message("user", "Tell me about gears."),), length=(1, 50)),
    EvalCase("i-1", "idk", (Message("user", "What is the rarest gear?"),)),
]


async def test_two_models_side_by_side_with_deltas(
    client: AsyncOpenAI, personas_dir: Path, base: str
) -> None:
    card = load_card(personas_dir / "pip")
    result = await run_eval(
        card,
        CASES,
        ["Gears turn other gears round and round."],
        [base, "pip"],
        samples=2,
        seed=5,
        client=client,
    )
    assert [m.model for m in result.models] == [base, "pip"]
    assert len(result.samples) == 2 * 2 * 2
    assert {s.seed for s in result.samples} == {5, 6}
    assert all(s.error is None for s in result.samples)
    pip = result.models[1]
    # The card caps replies at 5 tokens: every reply is cut, none is complete.
    assert pip.completion_rate == 0.0
    assert all(s.finish_reason == "length" for s in result.samples if s.model == "pip")
    rows = table_rows(result)
    assert rows[0] == ["metric", base, "pip"]
    score_row = next(r for r in rows if r[0] == "score")
    assert "(" in score_row[2]  # the second model shows a delta against the first
    assert "criteria: idk" in terminal_table(result)
    assert "| metric |" in markdown(result)


async def test_a_baseline_is_sampled_with_the_cards_settings_and_the_persona_by_the_server(
    client: AsyncOpenAI, personas_dir: Path, base: str, request_log: Any
) -> None:
    card = load_card(personas_dir / "pip")
    result = await run_eval(
        card, CASES[:1], [], [base, "pip"], seed=3, overrides={"top_p": 0.5}, client=client
    )
    bodies = {json.loads(r.content)["model"]: json.loads(r.content) for r in request_log.requests}
    sent = bodies[base]
    assert (sent["temperature"], sent["max_tokens"], sent["min_p"], sent["top_p"]) == (
        0.0,
        5,
        0.1,
        0.5,
    )
    assert sent["seed"] == 3
    assert sent["messages"][0] == {"role": "system", "content": card.system_prompt}
    # The persona's own id leaves its card to the server: only the override is sent.
    assert "max_tokens" not in bodies["pip"]
    assert bodies["pip"]["top_p"] == 0.5
    assert bodies["pip"]["messages"][0]["role"] == "user"
    # Both were capped at the card's five tokens.
    assert [s.completion_tokens for s in result.samples] == [5, 5]


async def test_unknown_model_is_reported_per_reply_not_raised(
    client: AsyncOpenAI, personas_dir: Path
) -> None:
    card = load_card(personas_dir / "pip")
    result = await run_eval(card, CASES[:1], [], ["nobody"], client=client)
    assert result.models[0].replies == 0
    assert result.models[0].errors == 1
    assert "404" in (result.samples[0].error or "")


async def test_sweep_scores_every_grid_point(
    client: AsyncOpenAI, personas_dir: Path, tmp_path: Path
) -> None:
    pip = shutil.copytree(personas_dir / "pip", tmp_path / "pip")
    suite = pip / "eval.jsonl"
    suite.write_text(
        '{"id": "a", "category": "general", "messages": [{"role": "user", "content": "hi"}]}\n'
        '{"id": "b", "category": "idk", "messages": [{"role": "user", "content": "why?"}]}\n'
    )
    files = load_persona_files(str(pip))
    args = argparse.Namespace(cases=0, model=None, base_url="unused", concurrency=2, seed=0)
    grid: list[dict[str, Any]] = [
        {"temperature": 0.0, "max_tokens": 2},
        {"temperature": 0.0, "max_tokens": 4},
    ]
    points = await sweep(args, files, grid, "unused", client=client)
    assert [p.values for p in points] == grid
    assert all(0.0 <= p.score <= 1.0 for p in points)


async def test_a_seeded_eval_at_concurrency_four_repeats_its_replies(
    client: AsyncOpenAI, personas_dir: Path, base: str
) -> None:
    from data.eval.run import ServerTarget

    card = load_card(personas_dir / "pip")
    cases = [
        EvalCase(f"c-{i}", "general", (Message("user", text),))
        for i, text in enumerate(["Tell me about gears.", "Why?", "Sing a song.", "Hello!"])
    ]
    target = ServerTarget(base_url="unused", concurrency=4)
    overrides: dict[str, float | int] = {"temperature": 0.9, "top_p": 0.95, "max_tokens": 8}

    async def replies() -> list[tuple[str, str, int, str]]:
        result = await run_eval(
            card, cases, [], [base, "juni", "pip"], target=target, samples=2, seed=11,
            overrides=overrides, client=client,
        )  # fmt: skip
        assert all(s.error is None for s in result.samples)
        return sorted((s.model, s.case_id, s.seed, s.text) for s in result.samples)

    first = await replies()
    assert first == await replies()
    assert len({r[3] for r in first if r[0] != "pip"}) > 4  # sampled, not one fixed reply


async def test_drift_conversations_through_the_real_app(
    client: AsyncOpenAI, personas_dir: Path, base: str, request_log: Any
) -> None:
    from data.eval.drift import run_drift
    from data.eval.suite import ConversationScript, ScriptTurn

    card = load_card(personas_dir / "pip")
    script = ConversationScript(
        "d", (ScriptTurn("Hello there."), ScriptTurn("Any gears?", "idk"), ScriptTurn("Bye."))
    )
    drifts, replies = await run_drift(card, [script], [], [base, "pip"], 3, client=client)
    assert [len(d.turns) for d in drifts] == [3, 3]
    assert all(r.error is None and r.text for r in replies)
    assert sorted((r.model, r.turn) for r in replies) == sorted(
        (m, t) for m in (base, "pip") for t in (1, 2, 3)
    )
    # Each turn carries the model's own earlier replies: 1, 3, then 5 messages (+ system).
    sent = [json.loads(r.content) for r in request_log.requests]
    assert sorted(len(b["messages"]) for b in sent if b["model"] == "pip") == [1, 3, 5]
    assert sorted(len(b["messages"]) for b in sent if b["model"] == base) == [2, 4, 6]
    pip_replies = {r.text for r in replies if r.model == "pip"}
    last = max((b for b in sent if b["model"] == "pip"), key=lambda b: len(b["messages"]))
    assert {m["content"] for m in last["messages"] if m["role"] == "assistant"} <= pip_replies
