"""The browser chat of `persona serve`, in headless chromium against a real server (tiny model).

One server with an API key serves the module: Juni runs on a published adapter, so each reply
must show that adapter's version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Process, serve
from export_files import publish_adapter

SAMPLES = Path(__file__).parent.parent.parent / "data" / "samples"
KEY = "web-test-key"
KEY_NAME = "persona-studio.api-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Any]:
    """`persona serve --api-key` on the tiny model, Juni on a published adapter."""
    root = tmp_path_factory.mktemp("web-server")
    checkpoint = publish_adapter(root / "adapters", "juni", tiny_model_dir, seed=3)
    # Juni's own card, with replies capped at 48 tokens so each test waits less.
    card = (SAMPLES / "juni" / "persona.toml").read_text()
    juni = root / "home" / "personas" / "juni"
    juni.mkdir(parents=True)
    (juni / "persona.toml").write_text(card.replace("max_tokens = 320", "max_tokens = 48"))
    process = serve(root / "home", tiny_model_dir, root / "adapters", "--api-key", KEY)
    process.version = checkpoint.manifest.version  # type: ignore[attr-defined]
    yield process
    process.stop()


@pytest.fixture
def keyed(browser: Any) -> Iterator[Any]:
    """A page whose tab already holds the API key (as after answering the prompt once)."""
    context = browser.new_context(viewport={"width": 1100, "height": 760}, accept_downloads=True)
    context.set_default_timeout(20_000)
    context.add_init_script(f"sessionStorage.setItem({KEY_NAME!r}, {KEY!r})")
    yield context.new_page()
    context.close()


def _assistant(page: Any) -> Any:
    return page.locator(".msg.assistant").last


def _send(page: Any, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def test_chat_streams_regenerates_stops_and_keeps_the_conversation(
    keyed: Any, server: Process, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = keyed
    page.goto(server.url + "/")
    expect(page.locator("#persona option[value=juni]")).to_have_text("Juni Pebblewick")
    page.select_option("#persona", "juni")
    expect(page.locator("#description")).to_contain_text("otter")
    # Count every change to the reply's text: a streamed reply grows in several steps.
    page.evaluate(
        """() => { window.updates = 0;
        new MutationObserver(() => window.updates++).observe(
            document.getElementById('log'), {subtree: true, characterData: true, childList: true});
        }"""
    )
    _send(page, "Hello Juni, what do you see?")
    expect(_assistant(page).locator(".meta")).to_contain_text(f"adapter {server.version}")
    assert page.evaluate("window.updates") > 3
    first = _assistant(page).locator(".text").text_content()
    assert first

    page.click("#regenerate")
    expect(_assistant(page).locator(".meta")).to_contain_text(f"adapter {server.version}")
    expect(page.locator(".msg.user")).to_have_count(1)
    expect(page.locator(".msg.assistant")).to_have_count(1)

    _send(page, "Tell me about the tides")
    _wait_for_words(page)
    page.click("#stop")
    expect(_assistant(page).locator(".meta")).to_contain_text("stopped")
    expect(page.locator("#send")).to_be_enabled()
    # Stop before the first word (the request held back so none can come): no empty reply is
    # kept.
    held: list[Any] = []
    page.route("**/v1/chat/completions", lambda route: held.append(route))
    _send(page, "And the moon?")
    page.locator(".msg.assistant[aria-busy=true]").wait_for()
    page.click("#stop")
    expect(page.locator(".msg.assistant[aria-busy=true]")).to_have_count(0)
    expect(page.locator(".msg.user")).to_have_count(3)
    expect(page.locator(".msg.assistant")).to_have_count(2)
    page.unroute("**/v1/chat/completions")
    page.click("#edit")
    expect(page.locator("#input")).to_have_value("And the moon?")
    page.fill("#input", "")

    page.reload()
    expect(page.locator(".msg.user")).to_have_count(2)
    expect(page.locator(".msg.user").first).to_have_text("You said: Hello Juni, what do you see?")
    expect(page.locator("#conversation option")).to_have_count(1)

    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text())
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"] * 2
    assert exported["messages"][0]["content"] == "Hello Juni, what do you see?"
    assert exported["persona_adapters"] == [server.version]
    _imports_back(exported, tmp_path)

    page.click("#edit")
    expect(page.locator("#input")).to_have_value("Tell me about the tides")
    expect(page.locator(".msg.user")).to_have_count(1)
    assert "Traceback" not in server.log.read_text()


def _wait_for_words(page: Any) -> None:
    """Return once the reply being written shows text (the CSP rules out wait_for_function)."""
    probe = "() => document.querySelector('.msg.assistant[aria-busy=true] .text')?.textContent"
    deadline = time.monotonic() + 20
    while not page.evaluate(probe):
        assert time.monotonic() < deadline, "no words came"


def _imports_back(exported: dict[str, Any], tmp_path: Path) -> None:
    """`persona data import` reads the exported file as one record with every turn."""
    source = tmp_path / "chat.json"
    source.write_text(json.dumps(exported))
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "persona.toml").write_text(
        'name = "copy"\nsystem_prompt = "You are a copy."\nbase_model = "embedded"\n'
    )
    done = subprocess.run(
        [sys.executable, "-P", "-m", "studio", "data", "import", str(source), "--to", str(folder),
         "--no-tokenizer"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PERSONA_HOME": str(tmp_path / "import-home")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in (folder / "dataset.jsonl").read_text().splitlines()]
    assert len(records) == 1
    turns = [(m["role"], m["content"]) for m in records[0]["messages"]]
    assert turns == [(m["role"], m["content"]) for m in exported["messages"]]


def test_the_locked_page_shows_one_persona_and_no_picker(keyed: Any, server: Process) -> None:
    from playwright.sync_api import expect

    page = keyed
    page.goto(server.url + "/chat/juni")
    expect(page.locator("#title")).to_have_text("Juni Pebblewick")
    expect(page.locator("#persona")).to_have_count(0)
    _send(page, "Hi there")
    expect(_assistant(page).locator(".meta")).to_contain_text(f"adapter {server.version}")


def test_markup_in_a_reply_is_shown_as_text(keyed: Any, server: Process) -> None:
    from playwright.sync_api import expect

    page = keyed
    attack = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    chunks = [attack[:12], attack[12:]]
    body = "".join(
        "data: "
        + json.dumps(
            {
                "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}],
                "persona_adapter": "run-x:1",
            }
        )
        + "\n\n"
        for c in chunks
    )
    body += "data: [DONE]\n\n"
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=body
        ),
    )
    page.goto(server.url + "/chat/juni")
    _send(page, "Say something odd")
    expect(_assistant(page).locator(".meta")).to_contain_text("adapter run-x:1")
    expect(_assistant(page).locator(".text")).to_have_text(attack)
    assert page.locator("#log img, #log b").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_server_with_a_key_asks_for_it_and_keeps_it_out_of_urls(
    page: Any, server: Process
) -> None:
    from playwright.sync_api import expect

    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(server.url + "/")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key", "wrong-key")
    page.press("#key", "Enter")
    expect(page.locator("#key-error")).to_contain_text("Incorrect API key")
    page.fill("#key", KEY)
    page.click("#key-submit")
    expect(page.locator("#persona option[value=juni]")).to_have_count(1)
    assert page.evaluate(f"sessionStorage.getItem({KEY_NAME!r})") == KEY
    assert page.evaluate(f"localStorage.getItem({KEY_NAME!r})") is None
    assert urls
    assert not [u for u in urls if KEY in u or "wrong-key" in u]


def test_the_page_fits_a_phone_and_works_by_keyboard(browser: Any, server: Process) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
    context.add_init_script(f"sessionStorage.setItem({KEY_NAME!r}, {KEY!r})")
    page = context.new_page()
    page.goto(server.url + "/chat/juni")
    expect(page.locator("#title")).to_have_text("Juni Pebblewick")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for control in page.locator("button:visible, select, textarea").all():
        labelled = control.evaluate(
            "e => Boolean(e.labels && e.labels.length || e.textContent.trim() "
            "|| e.getAttribute('aria-label'))"
        )
        assert labelled, control.evaluate("e => e.outerHTML")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    assert focused
    page.focus("#input")
    page.keyboard.type("Hello by keyboard")
    page.keyboard.press("Enter")
    expect(_assistant(page).locator(".meta")).to_contain_text(f"adapter {server.version}")
    page.keyboard.press("Tab")
    context.close()
