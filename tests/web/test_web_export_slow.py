"""`persona export juni --to web` on the embedded 270M: in headless chromium, the greedy reply is
llama.cpp's (node-llama-cpp) token for token, on the same GGUF and prompt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser import node_missing, static_server
from llama_cpp import greedy, skip_reason, tokenize

pytestmark = pytest.mark.slow

REPLY_TOKENS = 32


def test_the_exported_juni_replies_as_llama_cpp_does(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    if reason := node_missing() or skip_reason():
        pytest.skip(reason)
    out = tmp_path / "juni-web"
    done = subprocess.run(
        [sys.executable, "-P", "-m", "studio", "export", "juni", "--to", "web", "--out", str(out)],
        capture_output=True, text=True, timeout=1200, check=False, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The folder's sampling defaults are plain JSON: make them greedy for the comparison.
    config = json.loads((out / "persona.json").read_text())
    config["sampling"].update(temperature=0.0, max_tokens=REPLY_TOKENS, repetition_penalty=1.0)
    (out / "persona.json").write_text(json.dumps(config))
    site = static_server(out, tmp_path / "http.log")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(site.url + "/")
        expect(page.locator("#title")).to_have_text("Juni Pebblewick", timeout=120_000)
        page.fill("#input", "Hello Juni! What can you see from the lighthouse tonight?")
        page.press("#input", "Enter")
        meta = page.locator(".msg.assistant").last.locator(".meta")
        expect(meta).to_contain_text("adapter run-", timeout=300_000)
        run = page.evaluate("personaChat.lastRun")
    finally:
        context.close()
        site.stop()
    gguf = next((out / "model").glob("*.gguf"))
    prompt = tokenize(gguf, run["prompt"])
    assert run["usage"]["prompt_tokens"] == len(prompt)
    tokens, _ = greedy(gguf, prompt, REPLY_TOKENS)
    assert len(tokens) >= 8
    assert run["tokens"] == tokens
    speed = len(tokens) / run["seconds"]
    print(f"{len(tokens)} tokens in {run['seconds']:.2f} s: {speed:.1f} tokens/s in chromium")
