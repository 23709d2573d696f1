"""When an expected aggregated notification did not come: was its window *late* (still open
in some worker, with its deadline, and the cutoff the worker logs for it) or *lost* (open
nowhere, never delivered)? Read from the operator view /admin/windows (needs
CLARION_ADMIN_TOKEN on the workers) and the workers' "windows overdue" log lines
(agents/digest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "admin-token-for-soak-0123456789abcdef"
OVERDUE_MARK = "windows overdue:"


def verdicts(
    missing: Iterable[str],
    open_windows: list[dict[str, Any]],
    now: float,
    complete: bool = True,
) -> dict[str, str]:
    """Per recipient without its notification: "late: …" when a window of theirs is still
    open (with its deadline and how far past it we are), "lost: …" when none is, or
    "unknown: …" when not every worker answered (`complete` false)."""
    result: dict[str, str] = {}
    for user in missing:
        mine = [w for w in open_windows if w["recipient_id"] == user]
        if mine:
            result[user] = "late: " + "; ".join(
                f"{w['lane']} window {w['group_key']} open in partition {w['partition']} "
                f"with {w['count']} events, deadline {w['deadline']:.3f} "
                f"({now - w['deadline']:+.0f} s past it)"
                for w in mine
            )
        elif complete:
            result[user] = "lost: no open window on any worker and no notification"
        else:
            result[user] = "unknown: no open window on the workers that answered"
    return result


def overdue_lines(logs: Iterable[Path], partitions: set[int] | None = None) -> list[str]:
    """The workers' "windows overdue" lines (the cutoff and what holds it back), optionally
    only those for the given partitions."""
    found: list[str] = []
    for path in logs:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            if OVERDUE_MARK not in line:
                continue
            if partitions is None or any(f" partition {p}:" in line for p in partitions):
                found.append(f"{path.parent.name}: {line.strip()}")
    return found


async def admin_windows(urls: list[str], timeout_s: float = 30.0, **params: str) -> dict[str, Any]:
    """The body of /admin/windows from whichever worker answers first (without
    scope=local it asks the others and merges). Retries while the group rebalances."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deadline = time.monotonic() + timeout_s
    last = "no worker asked"
    async with httpx.AsyncClient(timeout=15) as client:
        while time.monotonic() < deadline:
            for url in urls:
                try:
                    r = await client.get(
                        f"{url}/admin/windows", headers=headers, params={"limit": "1000", **params}
                    )
                except httpx.HTTPError as exc:
                    last = f"{url}: {exc!r}"
                    continue
                if r.status_code == 200:
                    return dict(r.json())
                last = f"{url}: HTTP {r.status_code} {r.text[:200]}"
            await asyncio.sleep(1)
    raise AssertionError(f"/admin/windows did not answer: {last}")


async def open_windows(urls: list[str], timeout_s: float = 30.0) -> tuple[list[dict], bool]:
    """Every worker's open windows, and whether every worker of the group answered."""
    body = await admin_windows(urls, timeout_s)
    complete = not any(w.get("error") for w in body["workers"])
    return list(body["windows"]), complete


async def owned_partitions(url: str) -> set[int]:
    """The partitions one worker owns now (its own part of the windows view)."""
    body = await admin_windows([url], scope="local")
    return {p for w in body["workers"] for p in w["partitions"]}


async def explain_missing(
    missing: list[str], urls: list[str], logs: list[Path], partition_of_user: dict[str, int]
) -> str:
    """One line per missing recipient (late or lost), then the overdue lines of their
    partitions: the text of the failing assertion."""
    windows, complete = await open_windows(urls)
    lines = [f"{u}: {v}" for u, v in verdicts(missing, windows, time.time(), complete).items()]
    overdue = overdue_lines(logs, {partition_of_user[u] for u in missing})
    lines += overdue[-10:] or ["(no worker logged overdue windows for these partitions)"]
    return "\n".join(lines)
