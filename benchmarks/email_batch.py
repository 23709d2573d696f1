"""Email batch: one marketing email to N recipients (default 100,000) through SendGrid's
personalizations -- wall time and the number of mail/send requests (goal: <= 200 for 100k).

    python -m benchmarks.email_batch [--recipients 100000] [--partitions 4] [--pace 1000000]

The provider sandbox runs in its own process (`python -m devenv.sandbox`) with 50 ms
latency on every request and counts the requests it receives
(`GET /_sandbox/requests/count`); each personalization it accepts is recorded as a send.

1. Baseline, in the same run: a lean client (aiohttp) posting the same N recipients as
   ceil(N/1000) requests of 1,000 personalizations each (the same per-recipient
   custom_args Clarion sends), 16 requests in flight (Clarion's CLARION_SYNC_THREADS).
2. Clarion: N marketing deliveries (one mail, each recipient its own address and ids) are
   produced onto `deliveries.email.bulk` before one `clarion worker` starts; it drains
   them through the real sendgrid SDK, timed from the first to the last accepted send in
   the sandbox's record. Lost / duplicated deliveries are counted by delivery id.

Pacing is per delivery (`CLARION_PACE_SENDGRID_PER_S`, 600/s by default in production);
`--pace` sets it for the run (default 1e6/s: the figure measured is batching, not the
pace). At a pace p, a request can carry no more than what the pace lets through while the
previous one is on the wire (about p x 50 ms here).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from benchmarks.common import (
    Report,
    clarion_worker,
    kafka_producer,
    log,
    markdown_table,
    offsets_reader,
    ratio,
    record_count,
    run_benchmark,
    run_tag,
    send_all,
)
from benchmarks.delivery import (
    Control,
    busy_cores,
    machine_busy,
    sandbox_process,
    send_outcomes,
    wait_for_sends,
)
from devenv.sandbox.env import provider_env
from logic.ids import delivery_id
from schemas.common import Category, Channel, Lane
from schemas.notifications import Delivery, Target
from streams.admin import ensure_topics
from streams.catalog import DLQ_DELIVERIES, RETRIES, all_topics, delivery_topic

LATENCY_MS = 50
PER_REQUEST = 1000  # SendGrid's personalizations limit, and Clarion's default batch size
SUBJECT = "Spring sale: 20% off everything"
BODY = "Our spring sale starts today: 20% off everything until Sunday."
URL = "https://shop.example.com/sale"


def address(i: int) -> str:
    return f"user{i:06d}@example.com"


def marketing(i: int, tag: str, now: datetime) -> Delivery:
    """Recipient i's delivery of the one marketing mail (own address and ids)."""
    nid = f"bench-{tag}-mkt-{i}"
    return Delivery(
        delivery_id=delivery_id(nid, Channel.EMAIL, address(i)),
        notification_id=nid,
        recipient_id=f"user{i:06d}",
        category=Category.MARKETING,
        lane=Lane.BULK,
        channel=Channel.EMAIL,
        target=Target(address=address(i)),
        title=SUBJECT,
        body=BODY,
        url=URL,
        occurred_at=now,
        created_at=now,
    )


async def requests_count(control: Control) -> int:
    r = await control.client.get(f"{control.base}/requests/count", params={"provider": "sendgrid"})
    r.raise_for_status()
    return int(r.json()["count"])


# --------------------------------------------------------------------------- baseline


async def baseline(
    urls: dict[str, str], control: Control, n: int, concurrency: int
) -> dict[str, Any]:
    """The lean client: ceil(n/1000) requests of 1,000 personalizations, `concurrency` at
    once; the same JSON Clarion sends (custom_args per personalization)."""
    url = f"{urls['sendgrid']}/v3/mail/send"
    headers = {"Authorization": "Bearer SG.sandbox"}
    content = [
        {"type": "text/plain", "value": f"{BODY}\n\n{URL}"},
        {"type": "text/html", "value": f'<p>{BODY}</p>\n<p><a href="{URL}">{URL}</a></p>'},
    ]

    def body(start: int) -> dict[str, Any]:
        return {
            "from": {"email": "notifications@example.com"},
            "subject": SUBJECT,
            "content": content,
            "personalizations": [
                {
                    "to": [{"email": address(i)}],
                    "custom_args": {
                        "clarion_delivery_id": f"baseline-{i}",
                        "clarion_notification_id": f"baseline-n-{i}",
                        "clarion_recipient_id": f"user{i:06d}",
                        "clarion_attempt": "0",
                    },
                }
                for i in range(start, min(n, start + PER_REQUEST))
            ],
        }

    slots = asyncio.Semaphore(concurrency)
    accepted = failed = 0
    started = time.perf_counter()
    cpu = time.process_time(), machine_busy()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def post(start: int) -> None:
            nonlocal accepted, failed
            async with slots:
                # Built inside the slot, as a sender would build it when it is its turn.
                async with session.post(url, json=body(start), headers=headers) as r:
                    await r.read()
                    if r.status == 202:
                        accepted += min(n, start + PER_REQUEST) - start
                    else:
                        failed += 1

        await asyncio.gather(*(post(s) for s in range(0, n, PER_REQUEST)))
    elapsed = time.perf_counter() - started
    after = time.process_time(), machine_busy()
    figures = {
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(accepted / elapsed, 1) if elapsed > 0 else None,
        "accepted": accepted,
        "failed_requests": failed,
        "requests": await requests_count(control),
        "recorded_by_sandbox": await control.count("sendgrid"),
        "client_cpu": round((after[0] - cpu[0]) / elapsed, 2),
        "machine_cpu": busy_cores(cpu[1], after[1]),
    }
    await control.clear_sends()  # also zeroes the request count
    return figures


# --------------------------------------------------------------------------- Clarion


async def clarion_run(
    bootstrap: str, workdir: Path, urls: dict[str, str], control: Control, args: argparse.Namespace
) -> dict[str, Any]:
    tag = run_tag()
    prefix = f"b{tag}."
    now = datetime.now(UTC)
    deliveries = [marketing(i, tag, now) for i in range(args.recipients)]
    expected = {d.delivery_id for d in deliveries}
    env = provider_env(urls, workdir / "providers") | {
        "CLARION_PACE_SENDGRID_PER_S": str(args.pace),
        "CLARION_SENDGRID_BATCH_SIZE": str(PER_REQUEST),
    }
    # Topics first, then the whole batch, then the worker: it finds the backlog waiting,
    # as after a campaign was fanned out.
    await ensure_topics(
        bootstrap, all_topics(), prefix=prefix, partitions=args.partitions, replication_factor=1
    )
    topic = prefix + delivery_topic(Channel.EMAIL, Lane.BULK)
    records = [(topic, d.recipient_id.encode(), d.model_dump_json().encode()) for d in deliveries]
    del deliveries
    async with kafka_producer(bootstrap, linger_ms=5) as producer:
        produce_s = await send_all(producer, records)
    log.info("produced %d deliveries in %.1f s", len(records), produce_s)
    await control.clear_sends()
    async with clarion_worker(
        bootstrap,
        workdir,
        args.partitions,
        "email_batch",
        prefix=prefix,
        app_id=f"clarion-bench-{tag}",
        extra_env=env,
    ) as clarion:

        async def progress() -> str:
            return f"{await requests_count(control)} requests"

        await wait_for_sends(
            control, "sendgrid", len(expected), args.stall, clarion, "email", progress=progress
        )
        # Anything still in flight (a resend) shows up as a duplicate by now.
        await asyncio.sleep(args.settle)
        requests = await requests_count(control)
        sends = await control.sends("sendgrid")
        async with offsets_reader(bootstrap) as reader:
            retried = await record_count(reader, [prefix + RETRIES])
            dead = await record_count(reader, [prefix + DLQ_DELIVERIES])
        worker_cpu = clarion.cpu_seconds()
    figures, stamps = send_outcomes(sends, expected)
    figures |= {
        "requests": requests,
        "personalizations_per_request": round(len(stamps) / requests, 1) if requests else None,
        "retried": retried,
        "dead_lettered": dead,
        "produce_per_s": round(len(records) / produce_s, 1) if produce_s > 0 else None,
        "worker_cpu_s_total": worker_cpu,
    }
    if len(stamps) >= 2 and stamps[-1] > stamps[0]:
        figures["seconds"] = round(stamps[-1] - stamps[0], 2)
        figures["deliveries_per_s"] = round(len(stamps) / (stamps[-1] - stamps[0]), 1)
    return figures


# --------------------------------------------------------------------------- report


async def benchmark(args: argparse.Namespace, bootstrap: str, workdir: Path) -> Report:
    before = machine_busy()
    await asyncio.sleep(2)
    idle_busy = busy_cores(before, machine_busy())
    if idle_busy is not None and idle_busy > 0.3:
        log.warning("the machine is busy before the start (%.2f cores)", idle_busy)
    with sandbox_process() as sandbox:
        async with httpx.AsyncClient(timeout=60) as client:
            control = Control(client, sandbox.control)
            await control.slow_down_all(LATENCY_MS)
            await control.clear_sends()
            raw = await baseline(sandbox.urls, control, args.recipients, args.baseline_concurrency)
            log.info("baseline: %s", raw)
            ours = await clarion_run(bootstrap, workdir, sandbox.urls, control, args)
            log.info("clarion: %s", ours)

    goal = math.ceil(args.recipients / 500)  # 200 for 100k: half-full requests on average
    figures: dict[str, Any] = {
        "benchmark": "email_batch",
        "recipients": args.recipients,
        "latency_ms": LATENCY_MS,
        "partitions": args.partitions,
        "pace_per_s": args.pace,
        "busy_cores_before_start": idle_busy,
        "clarion": ours,
        "baseline": raw,
        "ratio": ratio(ours.get("deliveries_per_s"), raw["deliveries_per_s"]),
        "requests_goal": goal,
        "requests_goal_met": ours["requests"] <= goal,
    }
    rows = [
        ("Clarion (1 worker, sendgrid SDK)", ours.get("seconds"), ours.get("deliveries_per_s"),
         ours["requests"], ours.get("personalizations_per_request"),
         f"{ours['lost']} / {ours['duplicates']}"),
        (f"lean aiohttp client, {args.baseline_concurrency} in flight", raw["seconds"],
         raw["deliveries_per_s"], raw["requests"], PER_REQUEST, "-"),
    ]  # fmt: skip
    markdown = "\n\n".join(
        [
            "# Email batch: one marketing email to many recipients through SendGrid",
            f"{args.recipients} marketing deliveries (one mail, each recipient its own address "
            f"and ids) on `deliveries.email.bulk` ({args.partitions} partitions), produced "
            f"before one worker starts; sandbox in its own process, {LATENCY_MS} ms per "
            f"request; pacing {args.pace}/s per delivery. Machine load before the start: "
            f"{idle_busy} cores.",
            markdown_table(
                (
                    "who",
                    "seconds (first→last send)",
                    "deliveries/s",
                    "HTTP requests",
                    "recipients/request",
                    "lost / dup",
                ),
                rows,
            ),
            f"Ratio to the lean client (deliveries/s): {figures['ratio']}. Requests goal "
            f"≤ {goal}: {'met' if figures['requests_goal_met'] else 'NOT met'}. "
            f"Clarion: {ours['retried']} retried, {ours['dead_lettered']} dead-lettered, "
            f"{ours['unexpected']} unexpected sends; baseline: {raw['failed_requests']} failed "
            "requests.",
        ]
    )
    return Report(figures, markdown)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.email_batch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--pace", type=float, default=1_000_000.0, help="CLARION_PACE_SENDGRID_PER_S"
    )
    parser.add_argument("--baseline-concurrency", type=int, default=16)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up after this long without a send"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop everything after this many seconds (default: 300 + N/100, i.e. at "
        "least 100 deliveries/s)",
    )
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = 300 + args.recipients / 100
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark("email_batch", lambda b, w: benchmark(args, b, w), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
