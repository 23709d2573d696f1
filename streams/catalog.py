"""Every topic Clarion uses, by name, with its shape. Pure data (no Faust import) so the
admin code, tests and benchmarks share one list with the app."""

from __future__ import annotations

from dataclasses import dataclass

# lane_topic and delivery_topic are pure (logic/topic_names.py); imported from here as before.
from logic.topic_names import delivery_topic, lane_topic
from schemas.common import Channel, Lane

# Domain services produce to these (any event type on any of them; one topic per domain
# keeps a marketing backlog from sitting in front of payments at ingest).
INGRESS = (
    "events.social",
    "events.messaging",
    "events.payments",
    "events.security",
    "events.marketing",
)
# Where the sample traffic (and the README) puts each event type.
INGRESS_FOR_TYPE = {
    "like": "events.social",
    "comment": "events.social",
    "follow": "events.social",
    "mention": "events.social",
    "live_started": "events.social",
    "message": "events.messaging",
    "payment": "events.payments",
    "security_alert": "events.security",
    "marketing": "events.marketing",
}
# The lane each ingress topic mostly feeds: a worker that serves only some lanes
# (CLARION_LANES) ingests only these topics. An event on the "wrong" topic still reaches
# its own lane through the lane topics; it just shares that ingest.
INGRESS_LANE = {
    "events.payments": Lane.CRITICAL,
    "events.security": Lane.CRITICAL,
    "events.messaging": Lane.HIGH,
    "events.social": Lane.SOCIAL,
    "events.marketing": Lane.BULK,
}
PREFERENCES = "preferences"
CONTACTS = "contacts"
# Clarion-owned copies of ingress and profile records that a foreign producer put on another
# partition than the recipient's murmur2 partition (logic/rekey.py). Co-partitioned, written
# only by Clarion's own producer with an explicit partition.
EVENTS_REKEYED = "events.rekeyed"
PROFILES_REKEYED = "profiles.rekeyed"
BROADCASTS = "broadcasts"
# The follow graph (compacted, keyed "<actor>/<follower>", tombstone = unfollow) and the
# fan-out's pages of work (see agents/fanout.py).
FOLLOWS = "follows"
FANOUT_TASKS = "fanout.tasks"
# Punctuation: a timer sends one tick per owned partition so aggregation windows are
# flushed inside an event of that partition (Faust tables can only be written there).
TICKS = "ticks"
RECEIPTS = "receipts"
DLQ_EVENTS = "dlq.events"
# Deliveries that failed transiently wait here until due, then go back on their topic.
RETRIES = "deliveries.retry"
# Deliveries that failed for good (permanent error, or the last retry), with the reason.
DLQ_DELIVERIES = "dlq.deliveries"
# Pending escalation steps of critical notifications, and the clients' confirmations.
ESCALATIONS = "escalations"
CONFIRMATIONS = "confirmations"
# Outcomes providers report later (bounces, spam reports), from their webhooks.
FEEDBACK = "provider.feedback"
# Gateways' connect/disconnect records and leases (see logic/presence.py), compacted per
# "<user>\x1f<gateway>" so the last word on each connection is kept.
PRESENCE = "presence"
# In-app items for the users connected to a gateway: each gateway reads the one partition
# logic.presence.gateway_partition gives its id. Not user-keyed, so its own partition count
# (give it more partitions than there are gateways, or two gateways share one).
GATEWAY_DELIVERIES = "gateway.deliveries"
GATEWAY_PARTITIONS = 16


# The largest record the dev broker accepts (devenv/kafka.py message.max.bytes), the default
# of CLARION_MAX_RECORD_BYTES; a dead letter is that record plus headers and framing.
DEFAULT_MAX_RECORD_BYTES = 2_097_152
DLQ_HEADROOM_BYTES = 64 * 1024


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    retention_ms: int | None = None
    # None: the app-wide CLARION_PARTITIONS (every user-keyed topic must use it).
    partitions: int | None = None
    extra_config: tuple[tuple[str, str], ...] = ()


def all_topics(
    dead_letter_max_bytes: int = DEFAULT_MAX_RECORD_BYTES + DLQ_HEADROOM_BYTES,
) -> list[TopicSpec]:
    """Every topic the worker creates at start, all with the same partition count
    (the co-partitioning rule: user-keyed topics and tables line up partition by partition).
    The dead-letter topics take `dead_letter_max_bytes` records (Settings.dead_letter_max_bytes),
    so the largest ingress record fits in them whole with its headers."""
    specs = [TopicSpec(name) for name in INGRESS]
    specs += [TopicSpec(PREFERENCES, compacted=True), TopicSpec(CONTACTS, compacted=True)]
    # Not compacted: preferences and contacts copies share user-id keys. Read once by the
    # owner's agent, whose table changelog then holds the state.
    specs += [
        TopicSpec(EVENTS_REKEYED, retention_ms=7 * 24 * 3600 * 1000),
        TopicSpec(PROFILES_REKEYED, retention_ms=7 * 24 * 3600 * 1000),
    ]
    specs += [TopicSpec(lane_topic(lane)) for lane in Lane]
    specs += [TopicSpec(delivery_topic(ch, lane)) for ch in Channel for lane in Lane]
    specs += [TopicSpec(BROADCASTS), TopicSpec(RECEIPTS)]
    specs += [TopicSpec(FOLLOWS, compacted=True), TopicSpec(FANOUT_TASKS)]
    specs += [TopicSpec(name) for name in (RETRIES, ESCALATIONS, CONFIRMATIONS, FEEDBACK)]
    specs.append(TopicSpec(PRESENCE, compacted=True))
    # Live traffic only: a gateway reads from the end, and the inbox has the rest.
    specs.append(
        TopicSpec(GATEWAY_DELIVERIES, retention_ms=3600 * 1000, partitions=GATEWAY_PARTITIONS)
    )
    specs.append(TopicSpec(TICKS, retention_ms=3600 * 1000))
    # Dead letters are kept for 30 days so an operator can inspect and replay them.
    dlq_config = (("max.message.bytes", str(dead_letter_max_bytes)),)
    for name in (DLQ_EVENTS, DLQ_DELIVERIES):
        specs.append(TopicSpec(name, retention_ms=30 * 24 * 3600 * 1000, extra_config=dlq_config))
    return specs
