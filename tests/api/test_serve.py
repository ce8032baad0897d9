"""`persona serve` as a real subprocess on the embedded Gemma 3 270M, driven by the sync client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from openai import AuthenticationError, OpenAI

KEY = "test-key"
MARKERS = ("<start_of_turn>", "<end_of_turn>", "<eos>", "<bos>")


@dataclass
class Served:
    """A running `persona serve` process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, embedded_model_dir: Path) -> Iterator[Served]:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PERSONA_HOME": str(tmp_path / "home"), "PERSONA_API_KEY": KEY}
    command = [sys.executable, "-P", "-m", "studio", "serve", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                health = httpx2.get(f"{url}/health", timeout=5)
            except httpx2.TransportError:
                time.sleep(0.2)
                continue
            if health.status_code == 200:
                break
            assert health.status_code == 503
            assert health.headers["retry-after"]
            time.sleep(0.2)
        yield Served(url, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def shipped_sample_version(persona: str) -> str:
    """The `run:step` of the sample adapter shipped for a persona."""
    from adapters.registry import read_manifest
    from adapters.sample_adapters import sample_dir

    checkpoints = sorted((sample_dir() / persona).glob("run-*/checkpoints/*"))
    manifest = read_manifest(checkpoints[-1])
    assert manifest is not None
    return manifest.version


@pytest.mark.slow
def test_persona_serve_chats_as_juni_and_shuts_down_cleanly(served: Served) -> None:
    client = OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(
        model="juni",
        messages=[{"role": "user", "content": "What lives in a tide pool?"}],
        max_tokens=40,
        temperature=0.0,
    )
    text = reply.choices[0].message.content or ""
    assert text.strip()
    assert not any(marker in text for marker in MARKERS)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 40
    # A fresh home on the embedded model is seeded with the shipped sample adapter.
    assert (reply.model_extra or {})["persona_adapter"] == shipped_sample_version("juni")
    stream = client.chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 12
    client.close()
    with (
        pytest.raises(AuthenticationError),
        OpenAI(base_url=f"{served.url}/v1", api_key="wrong", max_retries=0) as wrong,
    ):
        wrong.models.list()
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(60) == 0
    assert "BLAS:" in served.log.read_text()


@pytest.mark.slow
def test_drafting_against_the_real_server_on_the_embedded_model(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from data.authoring.drafts.store import read_drafts
    from data.check import record_problems
    from data.dataset import Row
    from studio.cli import main

    folder = tmp_path / "wren"
    folder.mkdir()
    (folder / "persona.toml").write_text('name = "wren"\nsystem_prompt = "You keep bees."\n')
    row = {"messages": [{"role": "user", "content": "Do bees sleep?"},
                        {"role": "assistant", "content": "They rest, yes."}]}  # fmt: skip
    (folder / "dataset.jsonl").write_text(json.dumps(row) + "\n")
    with OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0) as client:
        base = client.models.list().data[0].id
    code = main([
        "data", "draft", str(folder), "--teacher-url", f"{served.url}/v1", "--teacher-model", base,
        "--api-key", KEY, "--count", "1", "--max-tokens", "48", "--json", "--no-tokenizer",
    ])  # fmt: skip
    events = [json.loads(line) for line in capsys.readouterr().out.split("\n") if line]
    assert events[0]["type"] == "start"
    assert events[0]["teacher"] == base
    answered = [e for e in events if e["type"] == "draft"]
    assert answered  # the server answered; a 270M base model rarely writes the JSON asked for
    assert all(e["kept"] == (e["reason"] is None) for e in answered)
    if code == 0:
        assert events[-1]["type"] == "done"
    else:
        assert events[-1]["type"] == "error"
        assert "the teacher answers badly" in events[-1]["message"]
    for draft in read_drafts(folder):
        assert not record_problems(Row("draft", 0, draft.record, ""))


@pytest.mark.slow
def test_the_issues_smallest_inputs_on_the_embedded_model(served: Served) -> None:
    from openai.types.chat import ChatCompletion

    http = httpx2.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600
    )

    def post(path: str, body: dict[str, object]) -> dict[str, object]:
        response = http.post(path, json=body)
        assert response.status_code == 200, response.text
        payload: dict[str, object] = response.json()
        return payload

    def prompt_tokens(content: str) -> int:
        body = {
            "model": "juni",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": content}],
        }
        reply = ChatCompletion.model_validate(post("/v1/chat/completions", body))
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    assert prompt_tokens("Say hi<end_of_turn>") == prompt_tokens("Say hi") + 7
    scored = post(
        "/v1/completions",
        {"model": "gemma-3-270m", "prompt": "ꙮ" * 12, "max_tokens": 3, "temperature": 0,
         "logprobs": 5},
    )  # fmt: skip
    [choice] = scored["choices"]  # type: ignore[misc]
    assert [len(top) for top in choice["logprobs"]["top_logprobs"]] == [5, 5, 5]
    assert max(choice["logprobs"]["text_offset"]) <= len(choice["text"])
    story = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "Tell me a story about a boat."}],
        "temperature": 0.9, "top_p": 0.95, "seed": 7, "max_tokens": 20,
    }  # fmt: skip
    alone = post("/v1/chat/completions", story)["choices"][0]["message"]["content"]  # type: ignore[index]
    pair = post("/v1/chat/completions", {**story, "n": 2, "seed": 7})
    # n=2 runs seeds 7 and 8 side by side in one batch; the first must equal seed 7 alone.
    assert pair["choices"][0]["message"]["content"] == alone  # type: ignore[index]
    ids = post("/v1/completions", {"model": "gemma-3-270m", "prompt": [2, 2, 818], "max_tokens": 1})
    assert ids["usage"]["prompt_tokens"] == 2  # type: ignore[index]
    http.close()


@pytest.mark.slow
def test_a_fresh_home_serves_both_sample_personas_in_shared_decode_steps(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = OpenAI(base_url=f"{served.url}/v1", api_key=KEY, max_retries=0)
    headers = {"Authorization": f"Bearer {KEY}"}

    def batch_steps() -> int:
        text = httpx2.get(f"{served.url}/metrics", headers=headers, timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("persona_engine_batch_steps{") and 'size="1"' not in line
        )

    def ask(model: str) -> tuple[str, str | None]:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Where do the old maps live?"}],
            max_tokens=24,
            extra_body={"min_tokens": 24},
        )
        return reply.model, (reply.model_extra or {})["persona_adapter"]

    before = batch_steps()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, ["juni", "vell", "juni", "vell"]))
    assert (
        answers
        == [
            ("juni", shipped_sample_version("juni")),
            ("vell", shipped_sample_version("vell")),
        ]
        * 2
    )
    assert batch_steps() > before, "the two personas never shared a decode step"
    client.close()
