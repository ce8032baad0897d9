"""`persona export --to web`: the static folder runs the persona in headless chromium, offline,
and its greedy reply is llama.cpp's (node-llama-cpp) on the same GGUF and prompt (tiny model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import node_missing, static_server
from export_files import export, publish_adapter
from llama_cpp import skip_reason, teacher_force, tokenize

from studio.web_export import guard_replies

ALLOWANCE = 0.5
"""Nats. The tiny model's random weights spread its logits thin over 262,144 tokens, so top
choices sit close together, and WebAssembly and native llama.cpp, rounding differently on one
q8_0 GGUF, swap near-tied ones (measured: 6 of 24 positions, margins up to 0.33 nats). The slow
test on the real 270M holds the two to the same tokens exactly."""

CARD = """\
name = "wren"
display_name = "Wren"
description = "A lighthouse keeper's wren."
system_prompt = "You are Wren, a small bird who keeps watch over the harbour."
greetings = ["Hello from the harbour wall!"]

[sampling]
temperature = 0.0
max_tokens = 24
"""


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[tuple[Path, str]]:
    """A web export of `wren` on the tiny model (made once), and its adapter version."""
    if reason := node_missing():
        pytest.skip(reason)
    tmp_path = tmp_path_factory.mktemp("web-export")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_HOME", str(tmp_path / "home"))
        yield _export(tmp_path, tiny_model_dir)


def _export(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, str]:
    personas = tmp_path / "personas"
    (personas / "wren").mkdir(parents=True)
    (personas / "wren" / "persona.toml").write_text(CARD)
    root = tmp_path / "adapters"
    checkpoint = publish_adapter(root, "wren", tiny_model_dir, seed=5)
    out = tmp_path / "web"
    argv = ["wren", "--to", "web", "--out", str(out), "--model", str(tiny_model_dir)]
    assert export([*argv, "--adapters", str(root), "--personas", str(personas)]) == 0
    return out, checkpoint.manifest.version


def test_the_folder_holds_the_page_the_model_wllama_and_the_persona(
    exported: tuple[Path, str],
) -> None:
    out, version = exported
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"index.html", "chat.js", "chat.css", "persona.json", "README.md"} <= names
    assert {"wllama/index.js", "wllama/wllama.wasm", "wllama/LICENCE"} <= names
    assert [n for n in names if n.startswith("model/") and n.endswith("-q8_0.gguf")]
    html = (out / "index.html").read_text()
    assert 'data-backend="wllama"' in html
    assert "/web/" not in html
    config = json.loads((out / "persona.json").read_text())
    assert config["adapter"] == version
    assert config["greetings"] == ["Hello from the harbour wall!"]
    assert config["sampling"]["temperature"] == 0.0
    assert config["sampling"]["max_tokens"] == 24
    assert "<end_of_turn>" in config["special_tokens"]
    assert config["guard_replies"] == []
    assert "MIT" in (out / "wllama" / "LICENCE").read_text()
    assert {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()} == {"0o644"}


def test_guard_replies_are_read_defensively(tmp_path: Path) -> None:
    cases = {
        '[guard]\nreplies = ["Not that.", 3]\n': ["Not that."],
        '[guard]\nreplies = {off_topic = "Back to sea.", unsafe = "Ask a grown-up."}\n': [
            "Back to sea.",
            "Ask a grown-up.",
        ],
        '[guard]\nreplies = "just one"\n': [],
        "guard = 5\n": [],
        "[guard]\n": [],
        "not toml [": [],
        "": [],
    }
    for text, replies in cases.items():
        (tmp_path / "persona.toml").write_text(text)
        assert guard_replies(tmp_path) == replies, text
    assert guard_replies(None) == []
    assert guard_replies(tmp_path / "missing") == []


def test_the_export_chats_offline_with_llama_cpps_greedy_reply(
    exported: tuple[Path, str], browser: Any, tiny_model: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    if reason := skip_reason():
        pytest.skip(reason)
    out, version = exported
    site = static_server(out, tmp_path / "http.log")
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    outside: list[str] = []

    def offline(route: Any) -> None:
        # Nothing but the folder itself: the export must not reach for a CDN or the hub.
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    try:
        page.goto(site.url + "/")
        expect(page.locator("#title")).to_have_text("Wren", timeout=60_000)
        expect(page.locator("#persona")).to_have_count(0)
        expect(page.locator(".msg.assistant").first).to_contain_text("Hello from the harbour")
        text = "Tell me about <end_of_turn> gears."
        page.fill("#input", text)
        page.press("#input", "Enter")
        meta = page.locator(".msg.assistant").last.locator(".meta")
        expect(meta).to_contain_text(f"adapter {version}", timeout=60_000)
        run = page.evaluate("personaChat.lastRun")
    finally:
        context.close()
        site.stop()
    assert outside == []

    _, tokenizer = tiny_model
    config = json.loads((out / "persona.json").read_text())
    assert run["prompt"].startswith(f"<start_of_turn>model\n{config['system_prompt']}\n\n")
    gguf = next((out / "model").glob("*.gguf"))
    prompt = tokenize(gguf, run["prompt"])
    assert prompt == list(tokenizer.encode(run["prompt"]))
    assert run["usage"]["prompt_tokens"] == len(prompt)
    # Two real ends of turn (the greeting's, the user's): the one the user typed stayed text.
    assert prompt.count(tokenizer.convert_tokens_to_ids("<end_of_turn>")) == 2
    reply = run["tokens"]
    assert run["usage"]["completion_tokens"] == len(reply) > 0
    assert tokenizer.decode(reply, skip_special_tokens=True) == run["text"]
    # llama.cpp, fed the same prompt and the page's reply, picks the page's token everywhere but
    # where the two are tied within rounding: the tiny model's random weights tie often.
    [positions] = teacher_force(gguf, [(prompt, reply)])
    ties = []
    for index, (token, position) in enumerate(zip(reply, positions, strict=True)):
        if position.token != token:
            margin = position.logprob - (position.chosen if position.chosen is not None else -1e9)
            ties.append((index, token, position.token, round(margin, 4)))
    assert all(margin <= ALLOWANCE for *_, margin in ties), (ties, reply)
    assert len(ties) <= len(reply) // 3, ties


def test_without_npm_or_a_cached_wllama_the_export_says_what_to_install(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import studio.wllama

    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(studio.wllama.shutil, "which", lambda _: None)
    root = tmp_path / "adapters"
    publish_adapter(root, "juni", tiny_model_dir)
    out = tmp_path / "web"
    argv = ["juni", "--to", "web", "--out", str(out), "--model", str(tiny_model_dir)]
    assert export([*argv, "--adapters", str(root)]) == 1
    assert "npm is not installed" in capsys.readouterr().err
    assert not out.exists()
