"""`persona data draft` against a scripted teacher on a real port: targets, keeps and drops."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from scripted_teacher import WORDS, completion, on_target, scripted_teacher, words

from data.authoring.drafts.gaps import DraftTarget, bands, plan_drafts
from data.authoring.drafts.prompt import AnswerError, read_answer, teacher_messages
from data.authoring.drafts.store import DRAFTS, read_drafts
from data.home import personas_dir
from data.records import ChatRecord, Message
from data.stats import dataset_stats
from studio.cli import main

CARD = """name = "wren"
display_name = "Wren Alder"
system_prompt = "You are Wren Alder, who keeps bees on a rooftop."

[style]
reply_words = [20, 99]
"""


def narrow_dataset(count: int = 8, seed: int = 3) -> list[ChatRecord]:
    """Replies all 45-55 words; one idk, one clarify, one off_topic and no boundary record."""
    rng = random.Random(seed)
    tags = [("idk",), ("clarify",), ("off_topic",)] + [()] * (count - 3)
    return [
        ChatRecord(
            (
                Message("user", words(rng, 6) + "?"),
                Message("assistant", words(rng, rng.randint(45, 55)) + "."),
            ),
            tags[i],
        )
        for i in range(count)
    ]


def make_persona(records: list[ChatRecord]) -> Path:
    folder = personas_dir() / "wren"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    (folder / "dataset.jsonl").write_bytes(
        b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    )
    return folder


def draft(url: str, *extra: str) -> int:
    return main(["data", "draft", "wren", "--teacher-url", url, "--teacher-model", "scripted",
                 "--no-tokenizer", *extra])  # fmt: skip


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.split("\n") if line.strip()]


def test_the_plan_aims_at_the_missing_mode_the_empty_bands_and_multi_turn() -> None:
    stats = dataset_stats(narrow_dataset())
    assert bands((20, 99)) == [(20, 39), (40, 59), (60, 79), (80, 99)]
    targets = plan_drafts(stats, (20, 99))
    assert targets[0].tag == "boundary"
    assert {t.words for t in targets[:3]} == {(20, 39), (60, 79), (80, 99)}
    assert targets[0].turns == 2  # no multi-turn records yet
    assert plan_drafts(stats, (20, 99), count=3) == targets[:3]
    assert len(targets) < 40


def test_the_prompt_carries_the_card_examples_and_the_gap() -> None:
    from data.card import parse_card

    card = parse_card(CARD)
    examples = narrow_dataset()[:2]
    target = DraftTarget((60, 79), "boundary", 2)
    sent = teacher_messages(card, target, examples, ["no records tagged 'boundary'"])
    text = sent[-1]["content"]
    assert "You are Wren Alder, who keeps bees on a rooftop." in text
    assert examples[0].messages[0].content in text
    assert "with 2 user turns" in text
    assert "between 60 and 79 words" in text
    assert "Failure mode boundary:" in text
    assert "no records tagged 'boundary'" in text


def test_answers_are_read_from_json_inside_text_or_fences() -> None:
    turns = [{"role": "user", "content": "a?"}, {"role": "assistant", "content": "b."}]
    body = json.dumps({"messages": turns})
    for text in (body, f"Sure!\n```json\n{body}\n```", f"```\n{body}```"):
        assert read_answer(text) == [Message("user", "a?"), Message("assistant", "b.")]
    for bad in ("I cannot help with that.", '{"messages": "x"}', '{"messages": []}'):
        with pytest.raises(AnswerError):
            read_answer(bad)


def test_drafts_fill_the_gaps_into_drafts_jsonl_never_the_dataset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = make_persona(narrow_dataset())
    dataset = (folder / "dataset.jsonl").read_bytes()
    with scripted_teacher() as teacher:
        assert draft(teacher.url, "--json") == 0
    found = events(capsys.readouterr().out)
    start, done = found[0], found[-1]
    assert start["type"] == "start"
    assert any("no records tagged 'boundary'" in g for g in start["gaps"])
    assert done["type"] == "done"
    assert done["kept"] == start["count"] == len(read_drafts(folder))
    assert (folder / "dataset.jsonl").read_bytes() == dataset
    drafts = read_drafts(folder)
    assert {d.teacher for d in drafts} == {"scripted"}
    assert drafts[0].target == DraftTarget((20, 39), "boundary", 2)
    assert drafts[0].tags == ("boundary",)
    # The request carried the card, examples and the gap, to the model asked for.
    request = teacher.requests[0]
    assert request["model"] == "scripted"
    assert "Wren Alder" in request["messages"][-1]["content"]


def test_off_band_and_duplicate_drafts_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    records = narrow_dataset()
    folder = make_persona(records)
    existing = records[0].messages[0].content

    def script(messages: list[dict[str, Any]], number: int) -> str:
        if number == 1:  # a reply of 3 words, whatever the band
            return json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "fresh one?"},
                        {"role": "assistant", "content": "far too short"},
                    ]
                }
            )
        if number == 2:  # a prompt already in the dataset, with a reply in the first band
            reply = words(random.Random(0), 30)
            turns = [{"role": "user", "content": existing}, {"role": "assistant", "content": reply}]
            return json.dumps({"messages": turns})
        return on_target(messages, number)

    with scripted_teacher(script) as teacher:
        assert draft(teacher.url, "--json", "--count", "2") == 0
    found = events(capsys.readouterr().out)
    reasons = [e["reason"] for e in found if e["type"] == "draft" and not e["kept"]]
    assert reasons[0].startswith("reply 1 is 3 words, outside its target")
    assert (
        reasons[1] == "its prompt duplicates or nearly duplicates one already in the data or drafts"
    )
    assert found[-1] == {"type": "done", "kept": 2, "dropped": 2, "file": str(folder / DRAFTS)}
    assert len(teacher.requests) == 4


def test_an_unreachable_teacher_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    make_persona(narrow_dataset())
    with scripted_teacher() as teacher:
        url = teacher.url  # the port is closed once the block ends
    assert draft(url) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the teacher at {url}" in err
    assert "0 drafts kept" in err


def test_a_teacher_that_answers_badly_stops_and_keeps_what_it_drafted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = make_persona(narrow_dataset())

    def script(messages: list[dict[str, Any]], number: int) -> str:
        return on_target(messages, number) if number <= 2 else "Sorry, I only speak in riddles."

    with scripted_teacher(script) as teacher:
        assert draft(teacher.url) == 1
    err = capsys.readouterr().err
    assert "the teacher answers badly (3 in a row): no JSON object in the answer" in err
    assert "2 drafts kept" in err
    assert len(read_drafts(folder)) == 2


def test_a_teacher_error_status_names_the_status_and_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_persona(narrow_dataset())
    refusal = {
        "error": {
            "message": "model 'scripted' not found",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    with scripted_teacher(lambda m, n: (404, refusal)) as teacher:
        assert draft(teacher.url) == 1
    assert "answered 404: model 'scripted' not found" in capsys.readouterr().err


def test_a_sample_persona_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["data", "draft", "vell", "--teacher-url", "http://127.0.0.1:9/v1", "--teacher-model", "x"]
    )
    assert code == 2
    assert "read-only sample persona" in capsys.readouterr().err


def test_the_scripted_teacher_speaks_openai() -> None:
    from openai.types.chat import ChatCompletion

    ChatCompletion.model_validate(completion("m", "hi"))
    assert len(set(WORDS)) == len(WORDS) > 300


def test_a_dataset_without_gaps_drafts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(9)
    modes = ["idk", "clarify", "off_topic", "boundary", "disclosure", "benign_near"]
    records = []
    reply = 0
    for i in range(10):
        turns: list[Message] = []
        for _ in range(2 if i in (4, 5, 6, 7) else 1):
            turns += [
                Message("user", words(rng, 6) + "?"),
                Message("assistant", words(rng, 25 + 20 * (reply % 4)) + "."),
            ]
            reply += 1
        records.append(ChatRecord(tuple(turns), (modes[i],) if i < len(modes) else ()))
    assert plan_drafts(dataset_stats(records), (20, 99)) == []
    folder = make_persona(records)
    with scripted_teacher() as teacher:
        assert draft(teacher.url) == 0
    assert teacher.requests == []
    assert "nothing to draft: the dataset has no gap to fill" in capsys.readouterr().err
    assert not (folder / DRAFTS).exists()
