"""Browser tests: Debian's chromium driven by Playwright, against real servers on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser import ARGS, CHROMIUM, chromium_missing


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium (skips with the reason when it or Playwright is missing).

    Per module: Playwright's sync API keeps an event loop running while it is open, which
    pytest-asyncio's tests after it must not find."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own context (its own localStorage), phone-sized off by default."""
    context = browser.new_context(viewport={"width": 1100, "height": 760}, accept_downloads=True)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()
