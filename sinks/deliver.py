"""Provider sinks: one agent per (channel, lane) delivers through the channel's real SDK.

For each delivery: claim its delivery id (a copy of a delivery still in flight, e.g. a
producer retry, waits for the first's outcome and is skipped, logic/claims.py), skip it if
the idempotency ledger has it (a redelivery, a retry racing its original, a replay), drop
it if expired, wait for the provider's pace (this worker's share of the provider's global
rate, following the partition assignment: sinks/pacers.py), send, and then by outcome:
- sent: ledger entry + `sent` receipt;
- transient (429, 5xx, timeout): back on `deliveries.retry` with backoff and jitter (never
  sooner than Retry-After) — or, for a channel that promises per-target order (webhooks),
  retried in place behind a per-target chain; after the last try → `dlq.deliveries`;
- permanent: `dlq.deliveries` with the reason, plus removing a dead target from the user's
  contact points, or recording a STOP as an SMS opt-out.
Each (channel, lane) is read by a topic loader (streams/topic_loader.py: no Faust stream
machinery per delivery record), on the partitions of `ledger` this worker owns, with its
own consumer group `<app id>-sink-<channel>-<lane>`. Sends run concurrently
(CLARION_SINK_CONCURRENCY per sink, or a provider's larger `max_in_flight`: SendGrid's
batches) in the loader's ack window, and a record counts as done (its offset may be
committed) only when it and every earlier one of its partition are finished
(logic/ackwindow.py).
Channels without a configured provider fall back to the console outbox (sinks/outbox.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import ConsumerRecord
from faust.types import Message

from logic.ackwindow import AckWindow, KeyedChain
from logic.backoff import RetryPolicy, retry_delay
from logic.claims import Claims, copy_reason
from logic.topic_names import provider_sink_group
from schemas.common import Channel, Lane
from schemas.control import RetryRequest
from schemas.notifications import Delivery, ReceiptStatus
from sinks.dead_letters import dead_letter
from sinks.providers import registry
from sinks.providers.base import Outcome, Sender, SendResult
from sinks.providers.factory import close_senders
from streams import metrics, receipts, sink_records
from streams.topic_loader import (
    TopicLoader,
    as_current_event,
    as_message,
    record_event,
    started_with_the_app,
)
from tables import changelog, keys
from tables.profile_updates import disable_channel, remove_address
from tables.rows import LedgerEntry

if TYPE_CHECKING:
    from sinks.context import SinkContext
    from streams.clarion_app import ClarionApp

log = logging.getLogger("clarion.deliver")
# httpx logs every request at INFO and twilio's client seven lines per request: at
# thousands of sends a second that is most of the worker's time. Outcomes are in receipts.
for _noisy in ("httpx", "httpcore", "twilio", "hpack", "h2", "aioapns", "google"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
# Channels whose consumers expect a user's notifications in order: a failing one holds back
# the later ones to the same target (and only those), retrying in place.
ORDERED = frozenset({Channel.WEBHOOK})


def install(app: ClarionApp, ctx: SinkContext) -> None:
    """One sink agent per (configured channel, served lane), with this app's pacers (one per
    registered provider, at this worker's share of its rate), claims and retry policy."""
    _settings, topics, ledger, senders = ctx.settings, ctx.topics, ctx.tables.ledger, ctx.senders
    policy = RetryPolicy(
        _settings.retry_max_attempts, _settings.retry_base_s, _settings.retry_cap_s
    )
    # One pacer per registered provider, at this worker's share of the provider's global
    # rate: recomputed at every rebalance (sinks/pacers.py).
    _pacers = ctx.pacers
    _pacers.connect(app, ctx.tables.ledger.changelog_topic.get_topic_name())
    specs, configured = ctx.providers.specs, registry.configured(ctx.providers)

    # Delivery ids in flight in this app -> the first copy's outcome (a ReceiptStatus value).
    claims: Claims[str, str] = Claims()

    class Attempt:
        """One delivery record's way through the sink (its source kept for the dead letter)."""

        def __init__(self, delivery: Delivery, message: Message) -> None:
            self.delivery = delivery
            self.message = message
            # Its pacer's, metrics' and dead letter's label; a retry changes only the attempt.
            self.provider = registry.provider_of(specs, delivery, configured)
            self.outcome: str | None = None  # a ReceiptStatus value once this record is done
            self.event: Any = None  # Faust's current event for the send (see `apply`)

        async def run(self, sender: Sender, chains: KeyedChain | None = None) -> None:
            """Deliver unless a copy of this delivery is in flight; `chains` (ordered channels)
            runs it behind earlier deliveries to the same target."""
            d = self.delivery
            self.outcome = None  # the window may run this again after an infrastructure error
            # Claimed before the ledger is read, and held until the outcome is written (ledger,
            # retry topic or dead letter), so no copy can pass the ledger in between.
            first = await claims.claim(d.delivery_id)
            if first is not None:
                await (await receipts.record(ctx, d, ReceiptStatus.SKIPPED, copy_reason(first)))
                return
            try:
                if chains is None:
                    await self._deliver(sender)
                else:
                    # The claim is taken outside the chain: a waiting copy does not hold back the
                    # target's later deliveries.
                    await chains.run(d.target.address, lambda: self._deliver(sender))
            finally:
                claims.release(d.delivery_id, self.outcome)

        async def _deliver(self, sender: Sender) -> None:
            d = self.delivery
            if ledger.get(keys.ledger_key(d.recipient_id, d.delivery_id)) is not None:
                await (await receipts.record(ctx, d, ReceiptStatus.SKIPPED, "already_sent"))
                self.outcome = ReceiptStatus.SENT.value
                return
            while True:
                await _pacers[self.provider].acquire()
                result = await sender.send(d)
                metrics.provider_send(d, self.provider, result.outcome.value, result.reason)
                if result.outcome is not Outcome.TRANSIENT:
                    await self._finish(result)
                    return
                delay = retry_delay(policy, d.attempt, result.retry_after_s)
                if delay is None:
                    await self._dead(result, ReceiptStatus.DEAD_LETTERED)
                    self.outcome = ReceiptStatus.DEAD_LETTERED.value
                    return
                if d.channel not in ORDERED:
                    await self._to_retry_topic(result, delay)
                    self.outcome = ReceiptStatus.RETRYING.value
                    return
                log.info("%s: %s; retrying in place in %.1f s", d.delivery_id, result.reason, delay)
                metrics.retry_scheduled(d, "in_place")
                await asyncio.sleep(delay)
                d = self.delivery = d.model_copy(update={"attempt": d.attempt + 1})

        async def _finish(self, result: SendResult) -> None:
            d = self.delivery
            if result.outcome is Outcome.SENT:
                row = LedgerEntry(time.time(), result.provider_message_id)
                # Through tables/changelog.py (row at once, changelog record batched): a
                # Faust table write cost ~250 µs and queued in Faust's producer buffer, whose
                # fill (over 100 writes) holds back every stream of the worker.
                await changelog.put(ledger, keys.ledger_key(d.recipient_id, d.delivery_id), row)
                # The send is final from here: a copy waiting on the claim is skipped even if
                # writing the receipt below fails and this work is tried again.
                self.outcome = ReceiptStatus.SENT.value
                await (await receipts.record(ctx, d, ReceiptStatus.SENT))
                return
            if result.reason == "expired":
                await (await receipts.record(ctx, d, ReceiptStatus.EXPIRED, "ttl_elapsed"))
                self.outcome = ReceiptStatus.EXPIRED.value
                return
            await self._dead(result, ReceiptStatus.FAILED)
            if result.remove_target:
                await remove_address(ctx, d.recipient_id, d.target.address, result.reason or "gone")
            if result.opt_out:
                await disable_channel(ctx, d.recipient_id, d.channel, result.reason or "opt_out")
            self.outcome = ReceiptStatus.FAILED.value

        async def _dead(self, result: SendResult, status: ReceiptStatus) -> None:
            d = self.delivery
            reason = result.reason or "unknown"
            if status is ReceiptStatus.DEAD_LETTERED:
                reason = f"retries_exhausted:{reason}"
            await dead_letter(ctx, d, self.message, status, reason, result.detail, self.provider)

        async def _to_retry_topic(self, result: SendResult, delay: float) -> None:
            d = self.delivery
            request = RetryRequest(
                delivery=d.model_copy(update={"attempt": d.attempt + 1}),
                due_at=datetime.fromtimestamp(time.time() + delay, UTC),
                last_reason=result.reason or "transient",
            )
            sent = await topics.retries.send(key=d.recipient_id.encode(), value=request)
            metrics.retry_scheduled(d, "topic")
            receipt = await receipts.record(ctx, d, ReceiptStatus.RETRYING, result.reason)
            await sent
            await receipt

    async def _nothing() -> None:
        """The work of a record that is dead-lettered as undecodable: acked in its turn."""

    def _make_sink(channel: Channel, lane: Lane, sender: Sender) -> None:
        # CLARION_SINK_CONCURRENCY, or more if a provider of the channel batches (SendGrid).
        in_flight = registry.sink_concurrency(ctx.providers, channel, _settings.sink_concurrency)
        chains = KeyedChain() if channel in ORDERED else None
        window: AckWindow[ConsumerRecord] = AckWindow(
            in_flight,
            ack=lambda record: loader.done(record),
            partition_of=lambda record: (record.topic, record.partition),
        )

        async def apply(partition: int, records: Sequence[ConsumerRecord]) -> list[Awaitable[Any]]:
            for record in records:
                message = as_message(record)
                delivery = await sink_records.decode(ctx, message)
                if delivery is None:
                    await window.submit(record, _nothing)
                    continue
                attempt = Attempt(delivery, message)
                # The task the window starts inherits the current event: the ledger row and
                # the contact point updates go to the record's partition. Faust holds it
                # weakly, and the send outlives this block: the attempt holds it.
                attempt.event = record_event(message)
                with as_current_event(message, attempt.event):
                    await window.submit(record, partial(attempt.run, sender, chains))
            return []  # the window acks each record (`loader.done`) when it is finished

        loader = TopicLoader(
            app,
            topics=[topics.deliveries[(channel, lane)].get_topic_name()],
            table=ctx.tables.ledger,
            apply=apply,
            group_id=provider_sink_group(_settings.app_id, channel, lane),
            bootstrap_servers=_settings.bootstrap_servers,
            max_records=in_flight,
            window=window,
            name=f"sink.{channel.value}.{lane.value}",
        )
        app.service(started_with_the_app(loader))

    for _channel, _sender in senders.items():
        for _lane in _settings.served_lanes:
            _make_sink(_channel, _lane, _sender)

    # The senders are the app's (built once in build_app): close them with the worker.
    @app.service
    class _CloseSenders(faust.Service):  # type: ignore[misc]
        """Close the SDK clients (connection pools, thread pools) when the worker stops."""

        async def on_stop(self) -> None:
            await close_senders(senders)
