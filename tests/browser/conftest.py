"""A real Chromium for the browser tests: Debian's package driven by Playwright (no browser download).

Without the browser the tests skip, saying why; with ``CI`` set they fail instead, so CI cannot pass
with them silently skipped.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path(os.getenv("CHROMIUM_PATH", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _absent(reason: str):
    if os.getenv("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """A launched Chromium (headless), closed after the session."""
    if not CHROMIUM.exists() and not shutil.which(str(CHROMIUM)):
        _absent(f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _absent("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()
