"""A first eval suite held out from the persona's own tagged records, over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from data.card import load_card
from data.eval.suite import load_suite
from data.persona_data import check_persona

CARD = 'name = "{name}"\nsystem_prompt = "You keep bees."\n'
QUESTIONS = [
    "Can I keep honey from my own garden hive?",
    "Why is wax yellow at first?",
    "How does a queen get chosen?",
    "Do drones ever sting anyone?",
    "What colour is sunflower pollen?",
    "When do swarms usually leave?",
    "Does smoke really calm them down?",
    "How heavy is a full frame?",
    "What do they eat through the cold months?",
    "Are mites dangerous to a colony?",
    "Which flowers do they like best in July?",
    "Does a sting hurt more on the hand?",
    "Where do they find water in summer?",
    "Is nectar the same thing as honey?",
    "How many hives fit on one roof?",
    "Should a beginner buy a full suit?",
]
TAGS = ["boundary", "idk", "clarify", "off_topic", "general", "benign_near", "disclosure", "idk"]


def record(question: str, reply: str, tags: list[str]) -> str:
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    return json.dumps({"messages": turns, "tags": tags} if tags else {"messages": turns})


def write(root: Path, name: str, lines: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(CARD.format(name=name))
    (folder / "train.jsonl").write_text("".join(f"{line}\n" for line in lines))
    return folder


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """`wren`: 16 records about bees, the first 8 tagged; `plain`: none tagged; `broken`."""
    root = tmp_path / "personas"
    wren = [
        record(q, f"An answer, number {i}.", [TAGS[i]] if i < 8 else [])
        for i, q in enumerate(QUESTIONS)
    ]  # fmt: skip
    write(root, "wren", wren)
    write(root, "plain", [record(q, "Sure.", []) for q in QUESTIONS[:4]])
    write(root, "broken", [record("Hi?", "Hello.", ["idk"]), '{"messages": 3}'])
    return root


async def test_tagged_records_become_the_suite_and_leave_training(
    http: httpx2.AsyncClient, personas_dir: Path
) -> None:
    folder = personas_dir / "wren"
    before = (folder / "train.jsonl").read_text().splitlines()
    reply = await http.post("/v1/personas/wren/evals/suite", json={"share": 0.5, "seed": 3})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["file"] == "eval.jsonl"
    assert body["train_file"] == "train.jsonl"
    cases, problems = load_suite(folder / "eval.jsonl")
    assert problems == []
    assert body["cases"] == len(cases) >= 3
    assert sum(body["by_category"].values()) == len(cases)
    after = (folder / "train.jsonl").read_text().splitlines()
    assert body["train_records"] == len(after) == len(before) - len(cases)
    assert set(after) <= set(before)  # the lines kept are kept as written, in order
    assert [line for line in before if line in after] == after
    held = [json.loads(line) for line in before if line not in after]
    for case, source in zip(cases, held, strict=True):
        assert case.category in source["tags"]
        assert [m.content for m in case.messages] == [source["messages"][0]["content"]]
        assert case.messages[-1].role == "user"
    # Every held-out record was tagged: untagged ones stay in training.
    assert all("tags" in json.loads(line) for line in before if line not in after)
    report = check_persona(folder, load_card(folder))
    assert not [p for p in report.problems if "in training" in p.message]

    again = await http.post("/v1/personas/wren/evals/suite", json={})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "suite_exists"
    assert (folder / "train.jsonl").read_text().splitlines() == after


@pytest.mark.parametrize(
    ("persona", "body", "status", "code", "text"),
    [
        ("plain", {}, 400, "invalid_dataset", "0 records tagged with an eval category"),
        ("broken", {}, 400, "invalid_dataset", "train.jsonl:2"),
        ("wren", {"share": 0}, 400, "invalid_value", "share"),
        ("wren", {"share": 1.5}, 400, "invalid_value", "share"),
        ("wren", {"fraction": 0.2}, 400, None, "fraction"),
        ("juni", {}, 400, "read_only_persona", "persona new NAME --from juni"),
        ("nobody", {}, 404, "persona_not_found", "nobody"),
    ],
)
async def test_refusals_name_the_reason_and_write_nothing(
    http: httpx2.AsyncClient, personas_dir: Path, persona: str, body: dict[str, object],
    status: int, code: str | None, text: str,
) -> None:  # fmt: skip
    folder = personas_dir / persona
    before = (folder / "train.jsonl").read_bytes() if folder.is_dir() else b""
    reply = await http.post(f"/v1/personas/{persona}/evals/suite", json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    if code is not None:
        assert error["code"] == code
    assert text in error["message"]
    if folder.is_dir():
        assert not (folder / "eval.jsonl").exists()
        assert (folder / "train.jsonl").read_bytes() == before
