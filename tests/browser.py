"""Headless Chromium for browser tests: Debian's chromium package driven by Playwright
(`make chromium` installs it; Playwright's own browser downloads are never used)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

CHROMIUM = Path(os.environ.get("CLARION_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium waits on Google services it cannot reach
# on a closed network; --no-sandbox because tests run as root in containers.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Browser:
    page: Page
    errors: list[str] = field(default_factory=list)  # uncaught script errors, console errors


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `make chromium` installs Debian's package "
            "(apt-get), or set CLARION_CHROMIUM to a Chromium binary"
        )


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Browser]:
    """One page in a fresh headless Chromium with its own throwaway profile."""
    require_chromium()
    async with async_playwright() as pw:
        with tempfile.TemporaryDirectory(prefix="clarion-chromium-") as profile:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), headless=True, args=ARGS
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                browser = Browser(page)
                page.on("pageerror", lambda exc: browser.errors.append(f"pageerror: {exc}"))
                page.on(
                    "console",
                    lambda msg: (
                        browser.errors.append(f"console: {msg.text}")
                        if msg.type == "error"
                        else None
                    ),
                )
                yield browser
            finally:
                await context.close()
