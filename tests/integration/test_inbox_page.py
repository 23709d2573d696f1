"""The in-app inbox page (GET /inbox) in headless Chromium against a real worker and broker:
a notification produced to Kafka after the page loaded shows up live, and "mark read"
persists in the inbox table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from logic.tokens import issue_token
from tests.browser import chromium_page
from tests.factories import event_bytes
from tests.integration.conftest import TEST_SECRET, Pipeline, start_pipeline
from tests.integration.kafka_io import produce

pytestmark = pytest.mark.integration

# Generous: two cores shared with other test runs.
SLOW_MS = 60_000


def token_for(user: str) -> str:
    return issue_token(user, TEST_SECRET, timedelta(minutes=10), datetime.now(UTC))


async def inbox_json(p: Pipeline, user: str) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(
            f"{p.url}/inapp/inbox", headers={"Authorization": f"Bearer {token_for(user)}"}
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def test_page_shows_a_notification_produced_after_it_loaded_and_marks_it_read(
    pipeline: Pipeline, uid: str
) -> None:
    # Markup in the message text must come out as text.
    preview = f"<b>hi</b> from {uid} <img src=x onerror='window.__pwned=1'>"
    async with chromium_page() as browser:
        page = browser.page
        await page.goto(f"{pipeline.url}/inbox?token={token_for(uid)}")
        await expect(page.locator("#status")).to_have_attribute(
            "data-state", "live", timeout=SLOW_MS
        )
        await expect(page.locator("#user")).to_have_text(uid)
        await expect(page.locator("#empty")).to_be_visible()

        # Only now does the event exist.
        await produce(
            pipeline.bootstrap,
            pipeline.topic("events.messaging"),
            [event_bytes("message", recipient_id=uid, actor_name="Bob", preview=preview)],
            key=uid.encode(),
        )
        item = page.locator("#items .item")
        await expect(item).to_have_count(1, timeout=SLOW_MS)
        await expect(item.locator(".title")).to_have_text("Bob")
        await expect(item.locator(".body")).to_have_text(preview)
        await expect(item).to_have_attribute("data-read", "false")
        assert await page.locator("#items b, #items img").count() == 0
        assert await page.evaluate("window.__pwned") is None

        await item.locator(".mark-read").click()
        await expect(item).to_have_attribute("data-read", "true", timeout=SLOW_MS)

        # The ack goes through Kafka (confirmations → confirm agent → inbox table): wait until
        # the table has it, then a fresh page load must show the item read.
        deadline = asyncio.get_running_loop().time() + SLOW_MS / 1000
        while not (await inbox_json(pipeline, uid))["items"][0]["read"]:
            assert asyncio.get_running_loop().time() < deadline, "read flag never persisted"
            await asyncio.sleep(0.25)
        await page.reload()
        await expect(page.locator("#status")).to_have_attribute(
            "data-state", "live", timeout=SLOW_MS
        )
        await expect(item).to_have_count(1)
        await expect(item.locator(".body")).to_have_text(preview)
        await expect(item).to_have_attribute("data-read", "true")
        await expect(page.locator("#unread")).to_have_text("All read")
        assert not [e for e in browser.errors if e.startswith("pageerror")]


async def test_page_and_inbox_endpoint_refuse_bad_tokens_and_lock_down_the_page(
    pipeline: Pipeline, uid: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{pipeline.url}/inbox")).status_code == 401
        forged = issue_token(uid, "x" * 40, timedelta(minutes=5), datetime.now(UTC))
        assert (
            await http.get(f"{pipeline.url}/inbox", params={"token": forged})
        ).status_code == 401
        r = await http.get(f"{pipeline.url}/inapp/inbox", params={"token": forged})
        assert r.status_code == 401

        page = await http.get(f"{pipeline.url}/inbox", params={"token": token_for(uid)})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "<script src=" in page.text and "<script>" not in page.text

        pulled = await http.get(f"{pipeline.url}/inapp/inbox", params={"token": token_for(uid)})
        assert pulled.status_code == 200
        assert pulled.json() == {"user_id": uid, "unread": 0, "items": []}


async def owned_elsewhere(first: Pipeline, second: Pipeline, uid: str) -> str:
    """A user the first worker redirects to the second, once both agree on who owns what."""
    deadline = asyncio.get_running_loop().time() + 120
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as http:
        while True:
            assert asyncio.get_running_loop().time() < deadline, "workers never settled"
            for n in range(16):
                user = f"{uid}-{n}"
                params = {"token": token_for(user)}
                via_first = await http.get(f"{first.url}/inbox", params=params)
                via_second = await http.get(f"{second.url}/inbox", params=params)
                location = via_first.headers.get("location", "")
                if (
                    via_first.status_code == 307
                    and location.startswith(second.url + "/inbox?")
                    and via_second.status_code == 200
                ):
                    return user
            await asyncio.sleep(1)


@pytest.mark.timeout(600)
async def test_page_opened_on_another_worker_moves_to_the_users_owner(
    kafka_bootstrap: str, tmp_path: Path, uid: str
) -> None:
    first = start_pipeline(kafka_bootstrap, tmp_path / "a", partitions=4)
    second = None
    try:
        second = start_pipeline(
            kafka_bootstrap, tmp_path / "b", prefix=first.prefix, app_id=first.app_id
        )
        user = await owned_elsewhere(first, second, uid)
        async with chromium_page() as browser:
            page = browser.page
            await page.goto(f"{first.url}/inbox?token={token_for(user)}")
            # The whole page moved, so its fetch and EventSource are same-origin with the owner.
            assert page.url.startswith(f"{second.url}/inbox?")
            await expect(page.locator("#status")).to_have_attribute(
                "data-state", "live", timeout=SLOW_MS
            )
            await produce(
                first.bootstrap,
                first.topic("events.messaging"),
                [event_bytes("message", recipient_id=user, preview=f"hello {user}")],
                key=user.encode(),
            )
            await expect(page.locator("#items .item .body")).to_have_text(
                f"hello {user}", timeout=SLOW_MS
            )
            assert not [e for e in browser.errors if e.startswith("pageerror")]
    finally:
        first.worker.stop()
        if second is not None:
            second.worker.stop()
