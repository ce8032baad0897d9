"""Preference pairs in OpenAI's DPO format: decoded, checked as file:line, counted by stats."""

from __future__ import annotations

import json
from pathlib import Path

from data.card import parse_card
from data.check import check_dataset
from data.dataset import read_dataset
from data.records import PreferenceRecord, as_messages, prompt_text, replies
from data.stats import dataset_stats

CARD = parse_card('name = "t"\nsystem_prompt = "You are T."\n[style]\nbanned = ["!"]\n')


def pair(user: object, good: object, bad: object, **extra: object) -> str:
    """One DPO line as OpenAI documents it."""
    body = {
        "input": {"messages": [{"role": "user", "content": user}]},
        "preferred_output": [{"role": "assistant", "content": good}],
        "non_preferred_output": [{"role": "assistant", "content": bad}],
        **extra,
    }
    return json.dumps(body)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "preference.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_openai_dpo_line_decodes_as_a_conversation_with_the_preferred_reply(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, [pair("Is it safe to swim alone?", "Ask a grown-up first.", "Sure!")])
    loaded = read_dataset(path)
    assert not loaded.problems
    record = loaded.rows[0].record
    assert isinstance(record, PreferenceRecord)
    assert [m.role for m in as_messages(record)] == ["user", "assistant"]
    assert replies(record) == ["Ask a grown-up first."]
    assert prompt_text(record) == "Is it safe to swim alone?"
    assert record.rejected[-1].content == "Sure!"


def test_every_problem_is_reported_at_its_line(tmp_path: Path) -> None:
    two_replies = json.loads(pair("Hi", "Hello.", "Yo!"))
    two_replies["preferred_output"].append({"role": "assistant", "content": "Again."})
    ends_on_assistant = json.loads(pair("Hi", "Hello.", "Yo!"))
    ends_on_assistant["input"]["messages"].append({"role": "assistant", "content": "x"})
    lines = [
        pair("Fine question?", "A fine answer.", "A bad answer!"),  # 1: ok
        pair("Hi", "Same reply.", "Same reply."),  # 2
        json.dumps(two_replies),  # 3
        pair("Hi", 5, "Yo"),  # 4
        json.dumps(ends_on_assistant),  # 5
        pair("Hi", "Hello.", "", tagz=["idk"]),  # 6
        json.dumps({"input": {"messages": []}}),  # 7
    ]
    report = check_dataset([write(tmp_path, lines)], CARD)
    found = {(p.line, p.severity, p.message) for p in report.problems}
    texts = "\n".join(f"{line}: {msg}" for line, _, msg in sorted(found))
    assert not [p for p in report.problems if p.line == 1], texts
    assert (2, "error", "preferred_output and non_preferred_output are the same reply") in found
    assert (3, "error", "preferred_output: must hold exactly one assistant message, not 2") in found
    assert (4, "error", "preferred_output[0].content: expected str, got int") in found
    assert (5, "error", "input: the conversation must end with a user turn, not assistant") in found
    assert (6, "error", "non_preferred_output[0].content: empty reply") in found
    assert (6, "warning", "unknown key 'tagz' is ignored") in found
    assert (7, "error", "missing required key 'preferred_output'") in found


def test_token_checks_cover_both_sides(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    card = parse_card('name = "t"\nsystem_prompt = "S."\n[training]\nmax_seq_length = 40\n')
    path = write(tmp_path, [pair("Hi", "Short.", "word " * 60)])
    report = check_dataset([path], card, tokenizer)
    messages = [p.message for p in report.errors]
    assert len(messages) == 1
    assert messages[0].startswith("non-preferred: ")
    assert "exceeds training.max_seq_length 40" in messages[0]


def test_stats_report_the_pairs(tmp_path: Path) -> None:
    lines = [
        pair("A?", "one two three", "one two three four five", tags=["boundary"]),
        pair("B?", "one two three four five six seven", "one", tags=["idk"]),
        json.dumps({"messages": [{"role": "user", "content": "C?"},
                                 {"role": "assistant", "content": "a b"}]}),
    ]  # fmt: skip
    rows = read_dataset(write(tmp_path, lines)).rows
    stats = dataset_stats([r.record for r in rows], CARD)
    assert stats.records == 3
    assert stats.replies == 3  # the preferred replies and the chat reply
    pref = stats.preference
    assert pref is not None
    assert (pref.pairs, pref.preferred_words, pref.non_preferred_words) == (2, 5.0, 3.0)
    assert pref.longer_non_preferred == 0.5
    assert {s.text for s in pref.tags} == {"boundary", "idk"}
    assert dataset_stats([rows[2].record], CARD).preference is None


def test_stats_name_an_opening_that_most_non_preferred_replies_share(tmp_path: Path) -> None:
    # Rejected replies drafted from one model's failures often open the same way; a preference
    # method then learns to avoid the opening, not the content, and moves to the next one.
    lines = [
        pair(f"Q{i}?", f"{good} the answer to {i}.", f"{bad} an answer to {i}.")
        for i, (good, bad) in enumerate(
            [("Well, here is", "Hmm, I'm afraid"), ("Yes, that is", "Hmm, I'm afraid"),
             ("Of course, and", "Hmm, I'm afraid"), ("Ask a grown-up", "Sure, here is"),
             ("Nobody knows", "Maybe it is"), ("I wonder about", "Oh, it is")]
        )
    ]  # fmt: skip
    stats = dataset_stats([r.record for r in read_dataset(write(tmp_path, lines)).rows], CARD)
    pref = stats.preference
    assert pref is not None
    assert (pref.non_preferred_openers[0].text, pref.non_preferred_openers[0].count) == (
        "hmm i'm",
        3,
    )
    assert pref.preferred_openers[0].count == 1
    warned = [w for w in stats.warnings if "open with" in w]
    assert warned == [
        '50% of non-preferred replies open with "hmm i\'m": a preference method learns that '
        "opening more than the content; vary it or add pairs without it"
    ]
    varied = [line.replace("Hmm, I'm afraid", f"Reply {n} says") for n, line in enumerate(lines)]
    stats = dataset_stats([r.record for r in read_dataset(write(tmp_path, varied)).rows], CARD)
    assert not [w for w in stats.warnings if "open with" in w]
