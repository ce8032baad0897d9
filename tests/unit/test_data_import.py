"""`persona data import`: ShareGPT, Alpaca, SillyTavern and OpenAI files into a persona's data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import msgspec
import pytest

from data.dataset import read_dataset
from data.home import personas_dir
from data.records import TURN_JOIN, ChatRecord
from server.api.prompt import chat_messages
from server.wire.openai import ChatMessage
from studio.cli import main

IMPORTS = Path(__file__).parents[1] / "fixtures" / "imports"
CARD = 'name = "tamsin"\ndisplay_name = "Tamsin Reed"\nsystem_prompt = "You are Tamsin Reed."\n'


@pytest.fixture
def persona() -> Path:
    folder = personas_dir() / "tamsin"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    return folder


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def reply(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def run_import(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["data", "import", *args, "--to", "tamsin", "--no-tokenizer"])
    out, err = capsys.readouterr()
    return code, out, err


def records(folder: Path) -> list[ChatRecord]:
    return [r.record for r in read_dataset(folder / "dataset.jsonl").rows]  # type: ignore[misc]


def summary(err: str) -> dict[str, int]:
    found = re.search(
        r"(\d+) entries, (\d+) conversations; (\d+) records appended .*; (\d+) turns merged, "
        r"(\d+) duplicates skipped; (\d+) errors in the source",
        err,
    )
    assert found, err
    keys = ("entries", "conversations", "appended", "merged", "duplicates", "errors")
    return dict(zip(keys, map(int, found.groups()), strict=True))


def test_sharegpt_with_roleplay_names_and_bad_entries(
    persona: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = IMPORTS / "sharegpt.json"
    code, out, err = run_import(capsys, str(source))
    assert code == 1  # entries were left out; each is named
    assert f"{source}:15: sharegpt: conversations: expected an array" in out
    assert f"{source}:24: sharegpt: no user turn with a reply" in out
    assert f"{source}:9: warning: a reply before the first user turn is left out" in out
    assert summary(err) == {
        "entries": 6, "conversations": 4, "appended": 4, "merged": 1, "duplicates": 0, "errors": 2
    }  # fmt: skip
    got = records(persona)
    assert [m.role for m in got[0].messages] == ["system", "user", "assistant", "user", "assistant"]
    # "Tamsin" is the persona's name, so "Wren" is the user; Wren's two turns are merged.
    assert got[1].messages[0].content == f"Which bollard?{TURN_JOIN}There are two."
    assert got[1].messages[1].content == "The one without the heron on it."
    assert "0 errors, 0 warnings" in err  # the checker ran on the result


def test_alpaca_instruction_input_system_and_history(
    persona: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = IMPORTS / "alpaca.jsonl"
    code, out, _ = run_import(capsys, str(source), "--tag", "canal")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{source}:4: alpaca: output: expected text"
    assert lines[1].startswith(f"{source}:5: not valid JSON")
    got = records(persona)
    assert len(got) == 4
    assert all(r.tags == ("canal",) for r in got)
    assert got[1].messages[0].content == "Answer as Tamsin Reed."
    assert got[1].messages[1].content == "Describe the canal at night.\n\nMention the heron."
    assert [m.content for m in got[2].messages[:2]] == [
        "Is the lock ready?",
        "Nearly. Two minutes.",
    ]


def test_sillytavern_takes_the_chosen_swipe_and_reports_what_it_leaves(
    persona: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = IMPORTS / "sillytavern.jsonl"
    code, out, _ = run_import(capsys, str(source))
    assert code == 1
    assert f"{source}:2: warning: a reply before the first user turn is left out" in out
    assert f"{source}:8: warning: a hidden (is_system) message is left out" in out
    assert f"{source}:9: sillytavern: swipe_id: 4 is not an index into 1 swipes" in out
    (record,) = records(persona)
    texts = [m.content for m in record.messages]
    assert texts[1] == "Eight minutes,\u2028if the top paddles behave."  # swipe 1, raw U+2028 kept
    assert texts[2] == f"Can I help with the gate?{TURN_JOIN}I have gloves."
    assert texts[-1] == "Mind the step on your way out."
    assert (persona / "dataset.jsonl").read_bytes().count(b"\n") == 1


def test_a_long_chat_is_cut_into_records_of_max_turns(
    persona: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_import(capsys, str(IMPORTS / "sillytavern.jsonl"), "--max-turns", "1")
    assert code == 1
    assert [len(r.messages) for r in records(persona)] == [2, 2, 2]


def test_openai_json_array_and_jsonl_append_and_skip_duplicates(
    persona: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    convo = [
        {"messages": [user(f"Question {i}?"), reply(f"Answer {i}.")], "tags": ["idk"]}
        for i in range(3)
    ]
    (persona / "dataset.jsonl").write_text(json.dumps(convo[0]) + "\n")
    before = (persona / "dataset.jsonl").read_bytes()
    array = tmp_path / "chats.json"
    array.write_text(json.dumps(convo, indent=2))
    code, _, err = run_import(capsys, str(array))
    assert code == 0
    assert summary(err)["duplicates"] == 1
    assert (persona / "dataset.jsonl").read_bytes().startswith(before)
    assert [r.messages[0].content for r in records(persona)] == [
        "Question 0?", "Question 1?", "Question 2?"
    ]  # fmt: skip
    jsonl = tmp_path / "chats.jsonl"
    jsonl.write_text("".join(json.dumps(c) + "\n" for c in convo))
    after = (persona / "dataset.jsonl").read_bytes()
    code, _, err = run_import(capsys, str(jsonl), "--format", "openai")
    assert code == 0
    assert summary(err)["appended"] == 0
    assert summary(err)["duplicates"] == 3
    assert (persona / "dataset.jsonl").read_bytes() == after


def test_a_json_array_entry_is_reported_at_its_own_line(
    persona: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "mixed.json"
    good = {
        "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "Evening."}]
    }
    source.write_text(json.dumps([good, 7, {"conversations": [{"from": "human"}]}], indent=1))
    code, out, _ = run_import(capsys, str(source))
    assert code == 1
    seven = source.read_text().split("\n").index(" 7,") + 1  # the number's own line
    assert f"{source}:{seven}: expected a JSON object, got a number" in out
    assert f"{source}:{seven + 1}: sharegpt: conversations[0].value: missing" in out
    assert len(records(persona)) == 1


def test_unknown_roleplay_speakers_need_names(
    persona: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rp.jsonl"
    turns = [
        {"from": "Ferris", "value": "Is this Lock Seven?"},
        {"from": "Keeper", "value": "It is."},
    ]
    source.write_text(json.dumps({"conversations": turns}) + "\n")
    code, out, _ = run_import(capsys, str(source))
    assert code == 1
    assert "speakers ferris, keeper are neither the persona nor the user" in out
    code, _, _ = run_import(capsys, str(source), "--char", "Keeper")
    assert code == 0
    (record,) = records(persona)
    assert [m.role for m in record.messages] == ["user", "assistant"]


def test_a_sample_persona_is_never_written(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "import", str(IMPORTS / "alpaca.jsonl"), "--to", "vell"]) == 2
    assert "read-only sample persona" in capsys.readouterr().err


def test_an_unknown_format_writes_nothing(
    persona: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "other.jsonl"
    source.write_text('{"question": "a", "answer": "b"}\n')
    code, out, _ = run_import(capsys, str(source))
    assert code == 1
    assert "cannot tell the format; pass --format" in out
    assert not (persona / "dataset.jsonl").exists()


def test_merged_turns_are_joined_as_the_server_joins_system_turns() -> None:
    system = [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}]
    turns = msgspec.convert([*system, user("c")], list[ChatMessage])
    assert chat_messages(turns, None)[0]["content"] == f"a{TURN_JOIN}b"


def test_import_into_a_persona_folder_path(
    persona: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(persona, tmp_path / "copy")
    code = main(
        [
            "data",
            "import",
            str(IMPORTS / "sillytavern.jsonl"),
            "--to",
            str(tmp_path / "copy"),
            "--no-tokenizer",
        ]
    )
    assert code == 1
    assert (tmp_path / "copy" / "dataset.jsonl").is_file()
    assert not (persona / "dataset.jsonl").exists()
