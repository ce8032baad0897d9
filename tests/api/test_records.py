"""A persona's records over HTTP: list, add, replace and delete, each checked before it lands."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx2
import pytest

from data.dataset import read_dataset

CARD = """name = "wren"
display_name = "Wren Alder"
system_prompt = "You are Wren Alder, who keeps bees on a rooftop."

[style]
banned = ["as an AI"]
"""

GOOD = [
    {"messages": [{"role": "user", "content": "Do bees sleep?"},
                  {"role": "assistant", "content": "They rest at night, in the hive."}],
     "tags": ["general"]},
    {"prompt": "Why do bees swarm?", "completion": "A crowded hive splits in spring."},
]  # fmt: skip
BAD_LINE = '{"messages": "not a list"}'


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """`wren`: two good records (a chat and a completion) around one unreadable line."""
    folder = tmp_path / "personas" / "wren"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD)
    lines = [json.dumps(GOOD[0]), BAD_LINE, json.dumps(GOOD[1])]
    (folder / "train.jsonl").write_text("".join(f"{line}\n" for line in lines))
    (folder / "train.jsonl").chmod(0o644)
    return folder.parent


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


async def listed(http: httpx2.AsyncClient, persona: str = "wren") -> dict:  # type: ignore[type-arg]
    reply = await http.get(f"/v1/personas/{persona}/records")
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def test_the_list_shows_each_record_with_its_line_hash_and_tags(
    http: httpx2.AsyncClient,
) -> None:
    body = await listed(http)
    assert body["object"] == "list"
    assert body["file"] == "train.jsonl"
    assert body["writable"] is True
    assert [(r["file"], r["line"], r["kind"]) for r in body["data"]] == [
        ("train.jsonl", 1, "chat"),
        ("train.jsonl", 3, "completion"),
    ]
    assert body["data"][0]["tags"] == ["general"]
    assert body["data"][1]["messages"] == turns(
        ("user", "Why do bees swarm?"), ("assistant", "A crowded hive splits in spring.")
    )
    assert len({r["hash"] for r in body["data"]}) == 2
    for tag in ("boundary", "disclosure", "benign_near", "idk", "clarify", "off_topic", "general"):
        assert tag in body["categories"]
    assert [(p["file"], p["line"]) for p in body["problems"]] == [("train.jsonl", 2)]


async def test_a_record_is_added_checked_and_written_by_rename(
    http: httpx2.AsyncClient, personas_dir: Path
) -> None:
    path = personas_dir / "wren" / "train.jsonl"
    before = path.read_bytes()
    messages = turns(("user", "Can I visit the hives?"), ("assistant", "As an AI I say yes."))
    reply = await http.post(
        "/v1/personas/wren/records",
        json={"messages": messages, "tags": ["benign_near", " ", "benign_near"]},
    )
    assert reply.status_code == 201, reply.text
    saved = reply.json()
    assert (saved["file"], saved["line"], saved["records"]) == ("train.jsonl", 4, 4)
    # Saved with its warnings, which name the record by file:line.
    assert [(p["file"], p["line"], p["severity"]) for p in saved["problems"]] == [
        ("train.jsonl", 4, "warning")
    ]
    assert "banned phrase" in saved["problems"][0]["message"]
    after = path.read_bytes()
    assert after.startswith(before)  # every other line, the bad one too, kept byte for byte
    assert json.loads(after.splitlines()[3]) == {"messages": messages, "tags": ["benign_near"]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert (await listed(http))["data"][-1]["hash"] == saved["hash"]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (turns(("assistant", "Hello."), ("user", "Hi?")),
         ["the first turn must be user", "must end with an assistant turn"]),
        (turns(("user", "Only a question?")), ["no assistant turn"]),
        (turns(("user", "Hi?"), ("assistant", "  ")), ["empty assistant turn"]),
        (turns(("user", "Hi?"), ("narrator", "x"), ("assistant", "Yo.")), ["unknown role"]),
        (turns(("user", "Hi?"), ("system", "late"), ("assistant", "Yo.")),
         ["a system message may only come first"]),
        ([], ["the conversation is empty"]),
        (turns(("user", "Hi?"), ("assistant", "Bye.<end_of_turn>")),
         ["messages[1].content: holds control-token text '<end_of_turn>'"]),
    ],
)  # fmt: skip
async def test_a_record_with_errors_is_refused_with_every_problem_and_nothing_written(
    http: httpx2.AsyncClient, personas_dir: Path, messages: list[dict[str, str]],
    expected: list[str],
) -> None:  # fmt: skip
    path = personas_dir / "wren" / "train.jsonl"
    before = path.read_bytes()
    reply = await http.post("/v1/personas/wren/records", json={"messages": messages})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_record"
    assert error["param"] == "messages"
    assert error["message"].startswith("not a valid training record: train.jsonl:4: ")
    for text in expected:
        assert text in error["message"]
    assert path.read_bytes() == before
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_a_duplicate_is_saved_with_a_warning_naming_the_first(
    http: httpx2.AsyncClient,
) -> None:
    reply = await http.post("/v1/personas/wren/records", json=GOOD[0])
    assert reply.status_code == 201, reply.text
    messages = [p["message"] for p in reply.json()["problems"]]
    assert any("duplicate record: same as" in m and "train.jsonl:1" in m for m in messages)


async def test_replace_changes_only_its_line_and_only_if_unchanged_since_listed(
    http: httpx2.AsyncClient, personas_dir: Path
) -> None:
    path = personas_dir / "wren" / "train.jsonl"
    record = (await listed(http))["data"][1]  # the completion, line 3
    messages = turns(("user", "Why do bees swarm?"), ("assistant", "To found a new hive."))
    url = "/v1/personas/wren/records/train.jsonl/3"
    reply = await http.put(url, json={"messages": messages, "tags": ["idk"],
                                      "hash": record["hash"]})  # fmt: skip
    assert reply.status_code == 200, reply.text
    lines = path.read_text().splitlines()
    assert lines[:2] == [json.dumps(GOOD[0]), BAD_LINE]
    assert json.loads(lines[2]) == {"messages": messages, "tags": ["idk"]}
    assert reply.json()["hash"] != record["hash"]

    stale = await http.put(url, json={"messages": messages, "hash": record["hash"]})
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "record_changed"
    assert "train.jsonl:3 changed since it was read" in stale.json()["error"]["message"]

    no_hash = await http.put(url, json={"messages": messages})
    assert no_hash.status_code == 400
    assert no_hash.json()["error"]["param"] == "hash"

    bad = await http.put(
        url, json={"messages": turns(("user", "x?")), "hash": reply.json()["hash"]}
    )
    assert bad.status_code == 400
    assert "train.jsonl:3: " in bad.json()["error"]["message"]
    assert json.loads(path.read_text().splitlines()[2])["tags"] == ["idk"]


async def test_delete_removes_the_line_once(http: httpx2.AsyncClient, personas_dir: Path) -> None:
    path = personas_dir / "wren" / "train.jsonl"
    first = (await listed(http))["data"][0]
    reply = await http.delete(
        "/v1/personas/wren/records/train.jsonl/1", params={"hash": first["hash"]}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"file": "train.jsonl", "line": 1, "records": 2, "deleted": True}
    assert path.read_text().splitlines() == [BAD_LINE, json.dumps(GOOD[1])]
    again = await http.delete(
        "/v1/personas/wren/records/train.jsonl/1", params={"hash": first["hash"]}
    )
    assert again.status_code == 409
    assert len(read_dataset(path).rows) == 1


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code"),
    [
        ("DELETE", "/v1/personas/wren/records/train.jsonl/9", {"params": {"hash": "x"}}, 404,
         "record_not_found"),
        ("DELETE", "/v1/personas/wren/records/train.jsonl/0", {"params": {"hash": "x"}}, 404,
         "record_not_found"),
        ("DELETE", "/v1/personas/wren/records/train.jsonl/1", {}, 400,
         "missing_required_parameter"),
        ("DELETE", "/v1/personas/wren/records/persona.toml/1", {"params": {"hash": "x"}}, 404,
         "file_not_found"),
        ("DELETE", "/v1/personas/wren/records/..%2Fwren%2Ftrain.jsonl/1",
         {"params": {"hash": "x"}}, 404, None),
        ("PUT", "/v1/personas/wren/records/valid.jsonl/1",
         {"json": {"messages": [], "hash": "x"}}, 404, "file_not_found"),
        ("POST", "/v1/personas/wren/records",
         {"json": {"messages": turns(("user", "a?"), ("assistant", "b.")), "tag": ["idk"]}},
         400, None),
        ("POST", "/v1/personas/wren/records", {"json": {"messages": "hi"}}, 400, None),
        ("POST", "/v1/personas/juni/records",
         {"json": {"messages": turns(("user", "a?"), ("assistant", "b."))}}, 400,
         "read_only_persona"),
        ("GET", "/v1/personas/nobody/records", {}, 404, "persona_not_found"),
    ],
)  # fmt: skip
async def test_bad_requests_get_a_4xx_in_the_envelope(
    http: httpx2.AsyncClient, personas_dir: Path, method: str, url: str,
    kwargs: dict, status: int, code: str | None,  # type: ignore[type-arg]
) -> None:  # fmt: skip
    before = (personas_dir / "wren" / "train.jsonl").read_bytes()
    reply = await http.request(method, url, **kwargs)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert (personas_dir / "wren" / "train.jsonl").read_bytes() == before


async def test_a_sample_lists_read_only_and_names_the_copy_command(
    http: httpx2.AsyncClient,
) -> None:
    body = await listed(http, "juni")
    assert body["writable"] is False
    assert len(body["data"]) > 100
    reply = await http.delete(
        f"/v1/personas/juni/records/{body['data'][0]['file']}/1",
        params={"hash": body["data"][0]["hash"]},
    )
    assert reply.status_code == 400
    assert "persona new NAME --from juni" in reply.json()["error"]["message"]
