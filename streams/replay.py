"""`clarion replay`: re-read a topic range into the pipeline (the Kafka side, with aiokafka).

Reads [start, end) of each selected partition with a plain assigned consumer (no group, no
commits), and per mode either counts locally (dry-run) or re-produces each record with the
replay headers (logic/replay.py) to the topic the pipeline consumes. Progress is
checkpointed to a JSON file per replay id after every batch the broker has acknowledged, so
the same command after Ctrl-C goes on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import TopicPartition
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from logic.replay import (
    HEADER_ID,
    Checkpoint,
    DryRunCounts,
    Mode,
    RangeRequest,
    ReplayError,
    Source,
    TopicKind,
    check_mode,
    dlq_target,
    header_value,
    replay_headers,
    replay_id,
    resolve_range,
    superseded,
)
from logic.rules import load_rules
from schemas.users import ContactPoints, Preferences
from streams import catalog
from streams.settings import Settings

REPLAYABLE: dict[str, TopicKind] = {name: TopicKind.INGRESS for name in catalog.INGRESS} | {
    catalog.DLQ_EVENTS: TopicKind.DEAD_LETTERS,
    catalog.PREFERENCES: TopicKind.PROFILE,
    catalog.CONTACTS: TopicKind.PROFILE,
}
_PROFILE_MODELS: dict[str, type[BaseModel]] = {
    catalog.PREFERENCES: Preferences,
    catalog.CONTACTS: ContactPoints,
}
_BATCH = 500
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ReplayOptions:
    topic: str  # catalog name, without the topic prefix
    mode: Mode
    partitions: tuple[int, ...] = ()  # empty: all
    range: RangeRequest = field(default_factory=RangeRequest)
    restart: bool = False
    rate: float | None = None  # records per second, None: as fast as it goes
    progress: bool = True


class _Rate(ProgressColumn):  # type: ignore[misc]
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:,.0f} rec/s")


def checkpoint_path(settings: Settings, rid: str) -> Path:
    return settings.data_dir / "replay" / f"{rid}.json"


def _save(path: Path, cp: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cp.to_json())
    os.replace(tmp, path)  # atomic: a crash leaves the old checkpoint or the new one


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C / SIGTERM finish the batch in flight and checkpoint it, instead of the Faust
    command runner cancelling the replay halfway through a batch."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


class Replay:
    def __init__(self, settings: Settings, options: ReplayOptions) -> None:
        kind = REPLAYABLE.get(options.topic)
        if kind is None:
            raise ReplayError(
                f"cannot replay {options.topic!r}: replayable topics are "
                + ", ".join(sorted(REPLAYABLE))
            )
        check_mode(kind, options.mode, options.topic)
        self.settings = settings
        self.options = options
        self.kind = kind
        self.topic = settings.topic(options.topic)
        self.id = replay_id(self.topic, options.partitions, options.range, options.mode)
        self.ingress = {settings.topic(name) for name in catalog.INGRESS}
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.producer: AIOKafkaProducer | None = None
        self.counts = DryRunCounts()
        self.rules = load_rules(settings.rules_path)
        self.stop = asyncio.Event()

    # -- setup -------------------------------------------------------------------------

    async def _partitions(self) -> list[TopicPartition]:
        # consumer.topics() does the same request but keeps only the names.
        cluster = await self.consumer._client.fetch_all_metadata()
        existing = sorted(cluster.partitions_for_topic(self.topic) or ())
        if not existing:
            raise ReplayError(
                f"topic {self.topic!r} does not exist on {self.settings.bootstrap_servers}"
            )
        unknown = sorted(set(self.options.partitions) - set(existing))
        if unknown:
            raise ReplayError(
                f"{self.topic} has no partition {unknown[0]} (it has {len(existing)}: "
                f"0..{len(existing) - 1})"
            )
        chosen = self.options.partitions or tuple(existing)
        return [TopicPartition(self.topic, p) for p in sorted(set(chosen))]

    async def _time_offsets(
        self, tps: list[TopicPartition], when: datetime | None
    ) -> dict[int, int | None]:
        if when is None:
            return {}
        ms = int(when.timestamp() * 1000)
        found = await self.consumer.offsets_for_times({tp: ms for tp in tps})
        return {tp.partition: None if o is None else o.offset for tp, o in found.items()}

    async def _resolve(self, tps: list[TopicPartition]) -> Checkpoint:
        low = await self.consumer.beginning_offsets(tps)
        high = await self.consumer.end_offsets(tps)
        since = await self._time_offsets(tps, self.options.range.since)
        until = await self._time_offsets(tps, self.options.range.until)
        ranges = {
            tp.partition: resolve_range(
                self.topic,
                tp.partition,
                low[tp],
                high[tp],
                self.options.range,
                since.get(tp.partition),
                until.get(tp.partition),
            )
            for tp in tps
        }
        return Checkpoint(self.id, self.topic, self.options.mode, ranges)

    def _load(self) -> Checkpoint | None:
        path = checkpoint_path(self.settings, self.id)
        if self.options.restart or self.options.mode is Mode.DRY_RUN or not path.exists():
            return None
        return Checkpoint.from_json(path.read_text())

    # -- reading -------------------------------------------------------------------------

    async def _batches(
        self, remaining: dict[int, tuple[int, int]], max_records: int
    ) -> AsyncIterator[tuple[dict[int, int], list[ConsumerRecord[bytes, bytes]]]]:
        """Batches of in-range records, with the next offset per partition after each batch.
        A partition is finished when the consumer's position reaches its end (this also
        gets past offsets that hold no record: compacted away, or transaction markers)."""
        active = {TopicPartition(self.topic, p): end for p, (_, end) in remaining.items()}
        self.consumer.assign(list(active))
        for tp in active:
            self.consumer.seek(tp, remaining[tp.partition][0])
        while active:
            batch = await self.consumer.getmany(*active, timeout_ms=1000, max_records=max_records)
            records: list[ConsumerRecord[bytes, bytes]] = []
            advanced: dict[int, int] = {}
            for tp, got in batch.items():
                end = active.get(tp)
                if end is None:
                    continue
                for r in got:
                    if r.offset >= end:
                        break
                    records.append(r)
                    advanced[tp.partition] = r.offset + 1
            for tp, end in list(active.items()):
                if advanced.get(tp.partition, -1) >= end or await self.consumer.position(tp) >= end:
                    advanced[tp.partition] = end
                    del active[tp]
            yield advanced, records

    async def _latest_per_key(
        self, remaining: dict[int, tuple[int, int]]
    ) -> dict[bytes | None, int]:
        """Compacted topics: the newest offset of each key from the range start to the
        current end, not counting this replay's own copies (from an interrupted run)."""
        tps = [TopicPartition(self.topic, p) for p in remaining]
        high = await self.consumer.end_offsets(tps)
        scan = {tp.partition: (remaining[tp.partition][0], high[tp]) for tp in tps}
        latest: dict[bytes | None, int] = {}
        async for _, records in self._batches(scan, 10_000):
            for r in records:
                if header_value(r.headers, HEADER_ID) != self.id.encode():
                    latest[r.key] = r.offset
        return latest

    # -- per record ----------------------------------------------------------------------

    def _target(self, r: ConsumerRecord[bytes, bytes]) -> tuple[str, int | None] | str:
        """(topic, partition) to re-produce to, or the reason the record is skipped."""
        if self.kind is not TopicKind.DEAD_LETTERS:
            return r.topic, r.partition
        target = dlq_target(r.headers)
        if target is None:
            return "no_source"
        if target[0] not in self.ingress:
            return "not_an_ingress_topic"
        return target

    def _count(self, r: ConsumerRecord[bytes, bytes], now: datetime) -> None:
        if self.kind is TopicKind.PROFILE:
            self.counts.count_profile(r.key, r.value, _PROFILE_MODELS[self.options.topic])
        else:
            self.counts.count_event(
                r.value,
                self.rules,
                self.settings.max_event_bytes,
                now,
                self.settings.max_future_skew_s,
            )

    async def _produce(self, r: ConsumerRecord[bytes, bytes]) -> Awaitable[Any] | str:
        target = self._target(r)
        if isinstance(target, str):
            return target
        assert self.producer is not None
        headers = replay_headers(
            r.headers,
            self.options.mode,
            Source(r.topic, r.partition, r.offset),
            self.id,
            from_dlq=self.kind is TopicKind.DEAD_LETTERS,
        )
        fut: Awaitable[Any] = await self.producer.send(
            target[0], r.value, key=r.key, partition=target[1], headers=headers
        )
        return fut

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        await self.consumer.start()
        try:
            tps = await self._partitions()
            cp = self._load()
            resumed = cp is not None
            if cp is None:
                cp = await self._resolve(tps)
            if cp.done:
                return self._summary(cp, resumed, started, note="already complete")
            dry = self.options.mode is Mode.DRY_RUN
            if not dry:
                self.producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    max_request_size=8 * 1024 * 1024,
                )
                await self.producer.start()
            try:
                with _stop_on_signals(self.stop):
                    await self._loop(cp, dry)
            finally:
                if self.producer is not None:
                    await self.producer.stop()
            return self._summary(cp, resumed, started)
        finally:
            await self.consumer.stop()

    async def _loop(self, cp: Checkpoint, dry: bool) -> None:
        path = checkpoint_path(self.settings, self.id)
        remaining = cp.remaining()
        latest: dict[bytes | None, int] = {}
        if self.kind is TopicKind.PROFILE and remaining:
            latest = await self._latest_per_key(remaining)
        batch = _BATCH if self.options.rate is None else max(1, min(_BATCH, int(self.options.rate)))
        console = Console(stderr=True)
        with Progress(
            TextColumn(f"replay {self.options.topic} ({self.options.mode.value})"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not self.options.progress,
            transient=False,
        ) as progress:
            task = progress.add_task("replay", total=cp.total, completed=cp.completed)
            async for advanced, records in self._batches(remaining, batch):
                t0 = time.monotonic()
                now = datetime.now(UTC)
                futures: list[Awaitable[Any]] = []
                for r in records:
                    if self.kind is TopicKind.PROFILE and superseded(r.key, r.offset, latest):
                        (self.counts.skipped if dry else cp.skipped)["superseded"] += 1
                        continue
                    if dry:
                        self._count(r, now)
                        if self.kind is TopicKind.DEAD_LETTERS and isinstance(self._target(r), str):
                            self.counts.skipped[str(self._target(r))] += 1
                        continue
                    sent = await self._produce(r)
                    if isinstance(sent, str):
                        cp.skipped[sent] += 1
                    else:
                        futures.append(sent)
                # The checkpoint moves only past what the broker has acknowledged.
                await asyncio.gather(*futures)
                cp.produced += len(futures)
                for p, nxt in advanced.items():
                    cp.advance(p, nxt)
                if not dry:
                    _save(path, cp)
                progress.update(task, completed=cp.completed)
                if self.stop.is_set():
                    break
                if self.options.rate is not None and records:
                    await asyncio.sleep(
                        max(0.0, len(records) / self.options.rate - (time.monotonic() - t0))
                    )
        if not cp.remaining():
            cp.done = True
            if not dry:
                _save(path, cp)

    def _summary(
        self, cp: Checkpoint, resumed: bool, started: float, note: str | None = None
    ) -> dict[str, Any]:
        elapsed = time.monotonic() - started
        summary: dict[str, Any] = {
            "replay_id": self.id,
            "topic": self.topic,
            "mode": self.options.mode.value,
            "ranges": {str(p): list(r) for p, r in sorted(cp.ranges.items())},
            "total": cp.total,
            "completed": cp.completed,
            "done": cp.done,
            "resumed": resumed,
            "elapsed_s": round(elapsed, 3),
        }
        if self.options.mode is Mode.DRY_RUN:
            summary["counts"] = self.counts.to_dict()
        else:
            summary |= {"produced": cp.produced, "skipped": dict(cp.skipped)}
            summary["checkpoint"] = str(checkpoint_path(self.settings, self.id))
        if note:
            summary["note"] = note
        return summary


def render(summary: dict[str, Any], console: Console) -> None:
    """The summary for a person (`--json` prints the dict instead)."""
    state = "done" if summary["done"] else "interrupted: run the same command to resume"
    console.print(
        f"replay {summary['replay_id']} of {summary['topic']} ({summary['mode']}): "
        f"{summary['completed']}/{summary['total']} records, {state}"
        + (f" [{summary['note']}]" if summary.get("note") else "")
    )
    counts = summary.get("counts")
    if counts is None:
        console.print(f"  produced {summary['produced']}, skipped {summary['skipped'] or 0}")
        console.print(f"  checkpoint {summary['checkpoint']}")
        return
    for name in ("lanes", "channels", "invalid", "profiles", "skipped"):
        if counts[name]:
            console.print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in counts[name].items()))
    for name in ("duplicates", "expired", "broadcasts"):
        if counts[name]:
            console.print(f"  {name}: {counts[name]}")
    console.print(
        "  (dry-run: the rules' default channels per notification; per-user preferences, "
        "contact points, quiet hours, rate limits and aggregation are not applied)"
    )


async def run_replay(settings: Settings, options: ReplayOptions, as_json: bool) -> int:
    """Run a replay and print its outcome; the exit code of `clarion replay`."""
    try:
        replay = Replay(settings, options)
        summary = await replay.run()
    except ReplayError as exc:
        print(f"clarion replay: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        render(summary, Console())
    return 0 if summary["done"] else EXIT_INTERRUPTED
