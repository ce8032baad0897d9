"""`persona data pairs` against a scripted fake OpenAI server, over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data.dataset import read_dataset
from data.records import PreferenceRecord
from studio.cli import main

CARD = """name = "archivist"
system_prompt = "You are the Archivist."
[style]
markers = ["shelves"]
reply_words = [3, 40]
banned = ["!"]
[training]
max_seq_length = 50
"""

# The scripted model: per user prompt, the reply for seed 0 and for seed 1.
SCRIPT = {
    "What is the airspeed of a dragon?": ("It is exactly 40 leagues per hour.",
                                          "I do not know; the ledgers are silent."),
    "Tell me where my neighbour lives.": ("Sure! He lives at 4 Elm Street.",
                                          "That is private; I keep such records closed."),
    "Who will win the next election?": ("I do not know, and nobody knows.",
                                        "Nobody knows that yet, patron."),
    "Sing me a pop song.": ("La la la, a pop song for you, on and on.",
                            "Let us return to the shelves instead."),
    # "CUT " replies end with finish_reason "length": the model ran into max_tokens.
    "How old is the oldest scroll?": ("CUT It is nine thousand years old, written by",
                                      "It is nine thousand years old."),
    "Who wrote the lost catalogue?": ("CUT It was written by the first keeper, who",
                                      "CUT The first keeper wrote it, in the year"),
    # Ended and rule-breaking, but 71 tokens with the system prompt: over max_seq_length 50.
    "What colour is the great hall's door?": (
        "It is painted a deep crimson with golden hinges, and every spring the keepers add one "
        "more coat of lacquer, so by now the door is thicker than a loaf of bread and it creaks "
        "in three different keys.",
        "It is crimson, patron."),
    "Who built the east wing?": ("Master Orrin built it in 1650.",
                                 "The guild of masons built it, stone by stone."),
}  # fmt: skip


def chat(user: str, reply: str, tag: str | None = None) -> str:
    record: dict[str, object] = {"messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": reply}]}  # fmt: skip
    if tag:
        record["tags"] = [tag]
    return json.dumps(record)


@pytest.fixture
def persona(tmp_path: Path) -> Path:
    folder = tmp_path / "archivist"
    folder.mkdir()
    (folder / "persona.toml").write_text(CARD)
    lines = [
        chat("What is the airspeed of a dragon?", "I do not know; no ledger records it.", "idk"),
        chat("Tell me where my neighbour lives.", "That is private, and it stays private.",
             "boundary"),
        chat("Who will win the next election?", "I do not know. The future is not filed.", "idk"),
        chat("Sing me a pop song.", "I keep shelves, not songs. Shall we find a songbook instead?",
             "off_topic"),
        chat("How old is the oldest scroll?", "I do not know; the ledgers never dated it.", "idk"),
        chat("Who wrote the lost catalogue?", "I do not know. It is lost, and so is its author.",
             "idk"),
        chat("What colour is the great hall's door?", "I do not know; nobody filed its colour.",
             "idk"),
        chat("How many shelves are there?", "Four hundred and twelve shelves."),
        chat("Is the moon made of cheese?", "Certainly it is, patron.", "idk"),  # breaks its rule
        # Tagged for its first reply: the probe stops there, not at the last reply.
        json.dumps({"messages": [
            {"role": "user", "content": "Who built the east wing?"},
            {"role": "assistant", "content": "I do not know; the builders left no names."},
            {"role": "user", "content": "Thanks. Is it open today?"},
            {"role": "assistant", "content": "Yes, until six, patron."}], "tags": ["idk"]}),
    ]  # fmt: skip
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    held_out = [{"role": "user", "content": "HELD-OUT: what is behind the door?"}]
    probe = {"id": "idk-1", "category": "idk", "messages": held_out}
    (folder / "eval.jsonl").write_text(json.dumps(probe) + "\n")
    return folder


@pytest.fixture
def fake_server() -> Iterator[tuple[str, list[dict]]]:  # type: ignore[type-arg]
    """An OpenAI-compatible endpoint that answers from SCRIPT and records every request."""
    seen: list[dict] = []  # type: ignore[type-arg]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            text = SCRIPT[body["messages"][-1]["content"]][body["seed"] % 2]
            finish = "length" if text.startswith("CUT ") else "stop"
            payload = {
                "id": f"chatcmpl-{len(seen)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish,
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }  # fmt: skip
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def test_rule_breaking_replies_become_non_preferred(
    persona: Path,
    fake_server: tuple[str, list[dict]],  # type: ignore[type-arg]
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, seen = fake_server
    assert main(["data", "pairs", str(persona), "--from", "gemma-3-270m", "--base-url", url]) == 0
    out = capsys.readouterr().out
    rows = read_dataset(persona / "pairs.jsonl").rows
    pairs = {r.record.input.messages[-1].content: r.record for r in rows}  # type: ignore[union-attr]
    assert all(isinstance(p, PreferenceRecord) for p in pairs.values())
    # idk: the invented airspeed; boundary: the address; off_topic: the song. Both election
    # replies admit not knowing, so that record makes no pair.
    # A reply cut at max_tokens is never a non-preferred output: the scroll record pairs the
    # reply its model ended, and the catalogue record (both replies cut) makes no pair.
    # A pair the trainer would refuse is not drafted either: the door record pairs its short
    # invented reply, not the one too long for max_seq_length.
    assert set(pairs) == {"What is the airspeed of a dragon?", "Tell me where my neighbour lives.",
                          "Sing me a pop song.", "How old is the oldest scroll?",
                          "What colour is the great hall's door?",
                          "Who built the east wing?"}  # fmt: skip
    scroll = pairs["How old is the oldest scroll?"]
    assert scroll.non_preferred_output[0].content == "It is nine thousand years old."
    assert "3 rule-breaking replies ran into max_tokens and were not paired" in out
    door = pairs["What colour is the great hall's door?"]
    assert door.non_preferred_output[0].content == "It is crimson, patron."
    assert "1 rule-breaking replies were not paired: training would refuse" in out
    dragon = pairs["What is the airspeed of a dragon?"]
    assert dragon.preferred_output[0].content == "I do not know; no ledger records it."
    assert dragon.non_preferred_output[0].content == "It is exactly 40 leagues per hour."
    assert dragon.tags == ("idk",)
    assert pairs["Tell me where my neighbour lives."].tags == ("boundary",)
    # Two seeds per failure-mode record; the untagged record and the one whose own reply breaks
    # the rule are never asked; the held-out eval probe is never sent.
    prompts = [body["messages"][-1]["content"] for body in seen]
    assert sorted(prompts) == sorted(2 * [k for k in SCRIPT])
    assert {body["seed"] for body in seen} == {0, 1}
    assert not any("HELD-OUT" in json.dumps(body) for body in seen)
    # Not the persona itself: the card's system prompt is sent, as `persona eval` does.
    assert all(body["messages"][0] == {"role": "system", "content": "You are the Archivist."}
               for body in seen)  # fmt: skip
    assert "train.jsonl:9: warning: the dataset's own reply breaks" in out
    assert "wrote 6 pairs from 8 records" in out
    wing = pairs["Who built the east wing?"]
    assert [m.content for m in wing.input.messages] == ["Who built the east wing?"]
    assert wing.preferred_output[0].content == "I do not know; the builders left no names."
    # The drafts pass the data checker with the persona's tokenizer, as training will check
    # them, and an existing file is never overwritten silently.
    capsys.readouterr()
    assert main(["data", "check", str(persona / "pairs.jsonl")]) == 0, capsys.readouterr().out
    assert main(["data", "pairs", str(persona), "--from", "m", "--base-url", url]) == 2
    assert "pass --force" in capsys.readouterr().err


def test_a_sample_persona_needs_an_output_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "pairs", "juni", "--from", "juni", "--base-url", "http://x/v1"]) == 2
    assert "read-only sample persona; pass --out" in capsys.readouterr().err
