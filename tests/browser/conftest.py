"""Real headless Chromium (Debian's), driven by Playwright's sync API, for the web UI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ECE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # A missing browser fails loudly: the browser test must never silently not run.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed: run `make browser-deps`"
    from playwright import sync_api
    sync_api.expect.set_options(timeout=10_000)  # room for a loaded machine; no sleeps anywhere
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser) -> Iterator:
    """Pages in contexts of their own (separate storage: separate signed-in users)."""
    contexts = []

    def make(viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or {"width": 1360, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context, context.new_page()

    yield make
    for context in contexts:
        context.close()
