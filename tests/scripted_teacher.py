"""A scripted teacher: an OpenAI-compatible chat server on a real port, answering by script.

`persona data draft` talks to it over real HTTP with the official openai client. The default
script reads the target out of the drafting prompt (reply length, failure mode, turns) and
writes a conversation that meets it, from a seeded vocabulary of made-up words, so prompts and
replies never repeat one another.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tu",
    "sa",
    "vel",
    "dor",
    "pim",
    "quo",
    "bes",
    "nar",
    "fil",
    "gu",
    "tre",
    "yon",
    "hap",
    "zel",
    "wim",
    "cor",
]
WORDS = [a + b for a in SYLLABLES for b in SYLLABLES if a != b]

Script = Callable[[list[dict[str, Any]], int], "str | tuple[int, dict[str, Any]]"]
"""(messages, request number) -> the answer text, or (HTTP status, JSON body) for an error."""


def words(rng: random.Random, count: int) -> str:
    """`count` made-up words."""
    return " ".join(rng.choice(WORDS) for _ in range(count))


def on_target(messages: list[dict[str, Any]], number: int) -> str:
    """A conversation that meets the target the drafting prompt asks for."""
    prompt = messages[-1]["content"]
    low, high = map(int, re.search(r"between (\d+) and (\d+) words", prompt).groups())  # type: ignore[union-attr]
    turns = (
        1
        if "with one user turn" in prompt
        else int(re.search(r"with (\d+) user turns", prompt).group(1))
    )  # type: ignore[union-attr]
    rng = random.Random(number)
    conversation = []
    for _ in range(turns):
        conversation.append({"role": "user", "content": words(rng, 7) + "?"})
        conversation.append(
            {"role": "assistant", "content": words(rng, rng.randint(low, high)) + "."}
        )
    return "Here you are:\n```json\n" + json.dumps({"messages": conversation}) + "\n```"


@dataclass
class Teacher:
    """The running server: its URL and every request it answered."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def scripted_teacher(script: Script = on_target) -> Iterator[Teacher]:
    """Serve `script` at `http://127.0.0.1:<free port>/v1` until the block ends."""
    teacher = Teacher("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            teacher.requests.append(body)
            if self.path != "/v1/chat/completions":
                return self._send(
                    404,
                    {
                        "error": {
                            "message": "not found",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            answer = script(body["messages"], len(teacher.requests))
            if isinstance(answer, tuple):
                return self._send(*answer)
            return self._send(200, completion(body["model"], answer))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    teacher.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield teacher
    finally:
        server.shutdown()
        server.server_close()


def completion(model: str, text: str) -> dict[str, Any]:
    """A chat completion as OpenAI sends it."""
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
