"""A `persona export --to web` folder in headless chromium: load time and decode tokens/s.

Serves FOLDER with `python -m http.server` (no cross-origin isolation, so wllama runs one
thread), opens it in Debian's chromium through Playwright, sends `--replies` messages in one
conversation and prints, per reply, its tokens, seconds and tokens/s (first token included), then
the median. Sampling is the folder's own (persona.json).
Usage: python bench/web_export.py FOLDER [--replies 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROMPTS = (
    "Hello Juni! What can you see from the lighthouse tonight?",
    "What lives in a tide pool?",
    "Why does the sea go out and come back?",
    "Can you tell me a short story about a crab?",
)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--replies", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-P", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--directory", str(args.folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        size = sum(p.stat().st_size for p in args.folder.rglob("*") if p.is_file())
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(url)
            expect(page.locator("#input")).to_be_focused(timeout=600_000)
            loaded = time.perf_counter() - start
            rates = []
            for index in range(args.replies):
                page.fill("#input", PROMPTS[index % len(PROMPTS)])
                page.press("#input", "Enter")
                meta = page.locator(".msg.assistant").last.locator(".meta")
                expect(meta).to_contain_text("tok/s", timeout=600_000)
                run = page.evaluate("personaChat.lastRun")
                tokens = run["usage"]["completion_tokens"]
                rates.append(tokens / run["seconds"])
                print(f"reply {index + 1}: {tokens} tokens in {run['seconds']:.1f} s "
                      f"= {rates[-1]:.1f} tokens/s")  # fmt: skip
            threads = page.evaluate("personaChat.page.backend.wllama.getNumThreads()")
            browser.close()
        print(f"folder {size / 1e6:.0f} MB; page ready in {loaded:.1f} s; {threads} thread(s); "
              f"median {statistics.median(rates):.1f} tokens/s")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
