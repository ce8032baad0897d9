"""Eval suites: every problem at its line, valid cases kept."""

from __future__ import annotations

from pathlib import Path

from data.eval.suite import load_suite

SUITE = Path(__file__).parents[1] / "fixtures" / "datasets" / "suite_bad.jsonl"


def test_every_problem_in_a_suite_has_its_line() -> None:
    cases, problems = load_suite(SUITE)
    assert [(p.line, p.severity, p.message) for p in problems] == [
        (2, "error", "id: 'ok-1' is already used on line 1"),
        (
            3,
            "error",
            "category: 'trivia' is not one of general, idk, clarify, off_topic, boundary, "
            "disclosure, benign_near, multi_turn",
        ),
        (4, "error", "the conversation must end with a user turn, not assistant"),
        (5, "error", "length: [50, 10] must be [min_words, max_words], min <= max"),
        (6, "error", "missing required key 'messages'"),
        (7, "warning", "a multi_turn probe has only one user turn"),
        (8, "warning", "unknown key 'must_include' is ignored"),
    ]
    assert [c.id for c in cases] == ["ok-1", "multi-short", "typo"]


def test_case_defaults_and_prompt() -> None:
    cases, _ = load_suite(SUITE)
    first = cases[0]
    assert first.must_include_any == ("do not know",)
    assert first.must_not_include == ()
    assert first.length == ()
    assert first.prompt == "What is in the sealed crate?"
