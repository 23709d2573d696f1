"""The inbox page's script in headless Chromium against canned responses (no worker): it
shows notification text as text, never as markup, and marks items read through the ack API."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from playwright.async_api import Request, Route, expect

from tests.browser import chromium_page

ORIGIN = "http://clarion.test"
STATIC = resources.files("sinks") / "static"
HOSTILE_TITLE = '<img src=x onerror="window.__pwned = 1">Mallory'
HOSTILE_BODY = "<script>window.__pwned = 2</script><b>bold?</b> & <i>more</i>"


def item(n: int, **overrides: Any) -> dict[str, Any]:
    return {
        "id": f"d{n}",
        "seq": n,
        "notification_id": f"n{n}",
        "category": "message",
        "lane": "high",
        "title": f"title {n}",
        "body": f"body {n}",
        "url": None,
        "image_url": None,
        "count": 1,
        "created_at": "2026-11-22T10:00:00+00:00",
        "seen": False,
        "read": False,
        **overrides,
    }


class FakeWorker:
    """Answers the page's requests the way sinks/inbox_page.py and sinks/inapp_web.py do."""

    def __init__(self, pulled: list[dict[str, Any]], streamed: list[dict[str, Any]]) -> None:
        self.pulled, self.streamed = pulled, streamed
        self.acks: list[tuple[str | None, Any]] = []

    async def handle(self, route: Route, request: Request) -> None:
        path = request.url.removeprefix(ORIGIN).split("?")[0]
        if path == "/inbox":
            await route.fulfill(body=(STATIC / "inbox.html").read_text(), content_type="text/html")
        elif path in ("/inbox/inbox.js", "/inbox/inbox.css"):
            kind = "text/javascript" if path.endswith(".js") else "text/css"
            body = (STATIC / path.rsplit("/", 1)[1]).read_text()
            await route.fulfill(body=body, content_type=kind)
        elif path == "/inapp/inbox":
            inbox = {"user_id": "alice", "unread": len(self.pulled), "items": self.pulled}
            await route.fulfill(json=inbox)
        elif path == "/inapp/stream":
            # One finite response; `retry` keeps EventSource from reconnecting during the test.
            events = "".join(
                f"id: {i['id']}\nevent: notification\ndata: {json.dumps(i)}\n\n"
                for i in self.streamed
            )
            await route.fulfill(body="retry: 600000\n\n" + events, content_type="text/event-stream")
        elif path == "/inapp/ack":
            self.acks.append((request.headers.get("authorization"), request.post_data_json))
            await route.fulfill(status=202, json={"accepted": 1})
        else:
            await route.fulfill(status=404, body="not found")


async def test_notification_text_is_shown_as_text_never_as_markup() -> None:
    worker = FakeWorker(
        pulled=[item(1, title=HOSTILE_TITLE, url="javascript:window.__pwned = 3")],
        streamed=[item(2, body=HOSTILE_BODY, url="https://example.com/p/2")],
    )
    async with chromium_page() as browser:
        page = browser.page
        await page.route(f"{ORIGIN}/**", worker.handle)
        await page.goto(f"{ORIGIN}/inbox?token=tok")
        items = page.locator("#items .item")
        await expect(items).to_have_count(2, timeout=20_000)
        # Newest first; the text is exactly what the notification said.
        await expect(items.nth(0).locator(".body")).to_have_text(HOSTILE_BODY)
        await expect(items.nth(1).locator(".title")).to_have_text(HOSTILE_TITLE)
        injected = "#items img, #items script, #items b, #items i"
        assert await page.locator(injected).count() == 0
        # A javascript: URL is not made a link; an https one is.
        assert await items.nth(1).locator("a").count() == 0
        link = items.nth(0).locator("a.title")
        await expect(link).to_have_attribute("href", "https://example.com/p/2")
        assert await page.evaluate("window.__pwned") is None
        assert not [e for e in browser.errors if e.startswith("pageerror")]


async def test_mark_read_acks_with_the_token_and_shows_the_item_read() -> None:
    worker = FakeWorker(pulled=[item(1), item(2, read=True)], streamed=[item(3)])
    async with chromium_page() as browser:
        page = browser.page
        await page.route(f"{ORIGIN}/**", worker.handle)
        await page.goto(f"{ORIGIN}/inbox?token=tok")
        first = page.locator('#items .item[data-id="d1"]')
        await expect(page.locator("#items .item")).to_have_count(3, timeout=20_000)
        await expect(page.locator("#unread")).to_have_text("2 unread")
        await expect(first).to_have_attribute("data-read", "false")

        await first.locator(".mark-read").click()
        await expect(first).to_have_attribute("data-read", "true")
        await expect(first.locator(".mark-read")).to_be_disabled()
        assert worker.acks == [("Bearer tok", {"notification_ids": ["n1"], "action": "read"})]

        await page.locator("#mark-all").click()
        await expect(page.locator("#unread")).to_have_text("All read")
        assert worker.acks[1] == ("Bearer tok", {"notification_ids": ["n3"], "action": "read"})
        await expect(page.locator("#mark-all")).to_be_disabled()


def test_script_never_writes_html() -> None:
    """Belt and braces for the browser tests: no HTML-parsing DOM APIs in the page script."""
    script = (STATIC / "inbox.js").read_text()
    for api in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert api not in script, api
