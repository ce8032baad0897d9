"""Draft review over HTTP: list, edit, accept and reject; accepted drafts clear the stats' gaps."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx2
import msgspec
import pytest
from scripted_teacher import scripted_teacher, words

from data.authoring.drafts.gaps import DraftTarget
from data.authoring.drafts.store import add_draft, new_draft, read_drafts
from data.dataset import read_dataset
from data.records import ChatRecord, Message
from data.stats import DatasetStats
from studio.cli import main

CARD = """name = "wren"
display_name = "Wren Alder"
system_prompt = "You are Wren Alder, who keeps bees on a rooftop."

[style]
reply_words = [20, 99]
"""


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """`wren`: 8 records, every reply 45-55 words, and no record tagged `boundary`."""
    rng = random.Random(5)
    tags = [("idk",), ("clarify",), ("off_topic",)] + [()] * 5
    records = [
        ChatRecord(
            (
                Message("user", words(rng, 6) + "?"),
                Message("assistant", words(rng, rng.randint(45, 55)) + "."),
            ),
            tags[i],
        )
        for i in range(8)
    ]
    folder = tmp_path / "personas" / "wren"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    (folder / "dataset.jsonl").write_bytes(
        b"".join(msgspec.json.encode(r) + b"\n" for r in records)
    )
    return folder.parent


def stats(folder: Path, capsys: pytest.CaptureFixture[str]) -> DatasetStats:
    assert main(["data", "stats", str(folder), "--json", "--no-tokenizer"]) == 0
    return msgspec.json.decode(capsys.readouterr().out, type=DatasetStats)


async def test_accepted_drafts_leave_nothing_for_stats_to_warn_about(
    http: httpx2.AsyncClient, personas_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = personas_dir / "wren"
    before = stats(folder, capsys).warnings
    assert any("no records tagged 'boundary'" in w for w in before)
    assert any("in one 9-word band" in w for w in before)  # [20, 99] in 9 bands
    with scripted_teacher() as teacher:
        args = ["data", "draft", str(folder), "--teacher-url", teacher.url]
        args += ["--teacher-model", "scripted", "--no-tokenizer"]
        code = await asyncio.to_thread(main, args)  # the CLI runs its own event loop
    assert code == 0
    capsys.readouterr()
    listed = (await http.get("/v1/personas/wren/drafts")).json()
    assert listed["object"] == "list"
    drafts = listed["data"]
    assert drafts
    assert all(d["teacher"] == "scripted" for d in drafts)
    assert drafts[0]["target"] == {"words": [20, 39], "tag": "boundary", "turns": 2}
    lines = len(read_dataset(folder / "dataset.jsonl").rows)
    last = None
    for number, draft in enumerate(drafts, start=1):
        reply = await http.post(f"/v1/personas/wren/drafts/{draft['id']}/accept")
        assert reply.status_code == 200, reply.text
        last = reply.json()
        assert last == {**last, "status": "accepted", "dataset": "dataset.jsonl"}
        assert last["records"] == lines + number
    assert last is not None
    assert last["warnings"] == []
    assert stats(folder, capsys).warnings == ()
    assert read_drafts(folder) == []
    assert (await http.get("/v1/personas/wren/drafts")).json()["data"] == []


async def test_edit_and_reject_through_the_api(
    http: httpx2.AsyncClient, personas_dir: Path
) -> None:
    folder = personas_dir / "wren"
    turns = (Message("user", "Do bees sleep?"), Message("assistant", "They rest in the hive."))
    first = new_draft(turns, DraftTarget((20, 39), "idk"), "scripted", ("idk",))
    second = new_draft(
        (*turns[:1], Message("assistant", "Yes, in short naps.")), DraftTarget((20, 39)), "scripted"
    )
    add_draft(folder, first)
    add_draft(folder, second)
    dataset = (folder / "dataset.jsonl").read_bytes()
    edited = [
        {"role": "user", "content": "Do bees sleep at night?"},
        {"role": "assistant", "content": "Most do, clinging to the comb."},
    ]
    reply = await http.put(f"/v1/personas/wren/drafts/{first.id}", json={"messages": edited})
    assert reply.status_code == 200
    assert reply.json()["messages"] == edited
    assert reply.json()["tags"] == ["idk"]
    assert read_drafts(folder)[0].messages[0].content == "Do bees sleep at night?"
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    refused = await http.put(f"/v1/personas/wren/drafts/{first.id}", json={"messages": bad})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "two user turns in a row" in error["message"]
    assert error["param"] == "messages"
    gone = await http.post("/v1/personas/wren/drafts/d-nope/accept")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "draft_not_found"
    rejected = await http.post(f"/v1/personas/wren/drafts/{second.id}/reject")
    assert rejected.json() == {
        "id": second.id,
        "status": "rejected",
        "dataset": None,
        "records": None,
        "warnings": [],
    }
    assert [d.id for d in read_drafts(folder)] == [first.id]
    assert (folder / "dataset.jsonl").read_bytes() == dataset
    sample = await http.post("/v1/personas/vell/drafts/d-1/reject")
    assert sample.status_code == 400
    assert sample.json()["error"]["code"] == "read_only_persona"
    assert (await http.get("/v1/personas/nobody/drafts")).status_code == 404
