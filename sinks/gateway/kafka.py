"""The gateway's two Kafka paths: presence out (connects, disconnects, leases) and in-app
items in (its own partition of `gateway.deliveries`, by manual assignment, from the end)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from logic.partitioning import partition_of
from logic.presence import gateway_partition
from schemas.presence import GatewayPush, PresenceEvent, PresenceKind
from streams import catalog
from streams.settings import Settings
from tables import keys

log = logging.getLogger("clarion.gateway")


class PresencePublisher:
    """Sends presence records in the order the connections opened and closed (one sender
    task, one producer: per partition, Kafka keeps that order)."""

    def __init__(self, settings: Settings, gateway_id: str, epoch: str) -> None:
        self._settings = settings
        self._topic = settings.topic(catalog.PRESENCE)
        self.gateway_id = gateway_id
        self.epoch = epoch
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks=1
        )
        self._outbox: asyncio.Queue[tuple[PresenceKind, str] | None] = asyncio.Queue()
        self._partitions = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._producer.start()
        found = await self._producer.partitions_for(self._topic)
        self._partitions = len(found)
        await self.renew()  # before the first connect: an entry is live only with a lease
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="presence-sender"),
            asyncio.create_task(self._lease_loop(), name="presence-lease"),
        ]

    def online(self, user_id: str) -> None:
        self._outbox.put_nowait((PresenceKind.ONLINE, user_id))

    def offline(self, user_id: str) -> None:
        self._outbox.put_nowait((PresenceKind.OFFLINE, user_id))

    async def renew(self, *, revoke: bool = False) -> None:
        """Send the lease to every partition: live for CLARION_GATEWAY_LEASE_S more, or
        (revoke) expired now, which takes this gateway's users offline at once."""
        now = datetime.now(UTC)
        lease = PresenceEvent(
            kind=PresenceKind.LEASE,
            gateway_id=self.gateway_id,
            epoch=self.epoch,
            at=now,
            expires_at=now if revoke else now + timedelta(seconds=self._settings.gateway_lease_s),
        )
        value = lease.model_dump_json().encode()
        key = keys.lease_key(self.gateway_id)
        futures = [
            await self._producer.send(self._topic, value, key=key, partition=p)
            for p in range(self._partitions)
        ]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        self._outbox.put_nowait(None)
        sender, lease = self._tasks or (None, None)
        if lease is not None:
            lease.cancel()
            await asyncio.gather(lease, return_exceptions=True)
        if sender is not None:
            await asyncio.gather(sender, return_exceptions=True)  # drains what is queued
        with contextlib.suppress(Exception):
            await self.renew(revoke=True)
        await self._producer.stop()

    async def _send_loop(self) -> None:
        while (entry := await self._outbox.get()) is not None:
            kind, user_id = entry
            record = PresenceEvent(
                kind=kind,
                gateway_id=self.gateway_id,
                epoch=self.epoch,
                at=datetime.now(UTC),
                user_id=user_id,
            )
            try:
                # Keyed per (user, gateway) for compaction, on the user's partition so the
                # worker that owns the user applies it (co-partitioning).
                await self._producer.send(
                    self._topic,
                    record.model_dump_json().encode(),
                    key=keys.presence_record_key(user_id, self.gateway_id),
                    partition=partition_of(user_id, self._partitions),
                )
            except Exception:  # the producer retries on its own; a lost record expires
                log.exception("presence %s for %s not sent", kind, user_id)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.gateway_lease_s / 3)
            try:
                await self.renew()
            except Exception:
                log.exception("lease renewal failed; retrying at the next interval")


class DeliveryReader:
    """Reads this gateway's partition of `gateway.deliveries` from its end (earlier items are
    in the inbox) and hands each push to `dispatch`."""

    def __init__(
        self, settings: Settings, gateway_id: str, dispatch: Callable[[GatewayPush], object]
    ) -> None:
        self._topic = settings.topic(catalog.GATEWAY_DELIVERIES)
        self.partition = gateway_partition(gateway_id, catalog.GATEWAY_PARTITIONS)
        self._dispatch = dispatch
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=50,
        )
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    async def start(self) -> None:
        await self._consumer.start()
        found = self._consumer.partitions_for_topic(self._topic)
        for _ in range(100):
            if found:
                break
            await self._consumer._client.force_metadata_update()
            found = self._consumer.partitions_for_topic(self._topic)
            await asyncio.sleep(0.1)
        if not found:
            raise RuntimeError(f"topic {self._topic} does not exist (start a worker first)")
        if len(found) != catalog.GATEWAY_PARTITIONS:
            log.warning(
                "%s has %d partitions, the workers address %d",
                self._topic,
                len(found),
                catalog.GATEWAY_PARTITIONS,
            )
        tp = TopicPartition(self._topic, self.partition)
        self._consumer.assign([tp])
        await self._consumer.seek_to_end(tp)
        await self._consumer.position(tp)  # resolved now, before the first connect
        self._task = asyncio.create_task(self._loop(), name="gateway-deliveries")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _loop(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        push = GatewayPush.model_validate_json(record.value)
                    except ValidationError as exc:
                        log.warning("bad gateway delivery at %d: %s", record.offset, exc)
                        continue
                    self.received += 1
                    self._dispatch(push)
