"""Create Clarion's topics before the worker subscribes (Faust creates only its internal ones)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from streams.catalog import TopicSpec

log = logging.getLogger("clarion.admin")
MAX_MESSAGE_BYTES = "max.message.bytes"
# DescribeConfigs' config_source of a value set on the topic itself.
_DYNAMIC_TOPIC_CONFIG = 1


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count that breaks co-partitioning."""


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = []
    for entry in getattr(response, "topic_errors", []):
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        errors.append((topic, code, message))
    return errors


async def _wait_visible(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30
) -> None:
    """Creation is asynchronous: wait until every partition has a leader in the metadata,
    or the consumer would subscribe to topics it cannot see yet and ignore them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        ready = {
            d["topic"]
            for d in described
            if d["error_code"] == 0
            and d["partitions"]
            and all(p["leader"] >= 0 for p in d["partitions"])
        }
        if ready >= set(names):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicLayoutError(f"topics not visible after {timeout_s}s: {set(names) - ready}")
        await asyncio.sleep(0.2)


def _config(spec: TopicSpec) -> dict[str, str]:
    config = {"cleanup.policy": "compact" if spec.compacted else "delete"}
    if spec.retention_ms is not None:
        config["retention.ms"] = str(spec.retention_ms)
    config.update(spec.extra_config)
    return config


def raised_limit(entries: Iterable[tuple[object, ...]], wanted: int) -> dict[str, str] | None:
    """From a topic's DescribeConfigs entries (name, value, read_only, source, ...): the
    topic-level config to write so its max.message.bytes is at least `wanted`, or None if
    it is already. AlterConfigs replaces the topic's whole override set, so the overrides it
    has (retention, cleanup policy, ...) are carried over."""
    current, overrides = None, {}
    for entry in entries:
        name, value, source = str(entry[0]), entry[1], entry[3]
        if name == MAX_MESSAGE_BYTES and value is not None:
            current = int(str(value))
        if source == _DYNAMIC_TOPIC_CONFIG and value is not None:
            overrides[name] = str(value)
    if current is not None and current >= wanted:
        return None
    return overrides | {MAX_MESSAGE_BYTES: str(wanted)}


async def _raise_message_limits(admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec]) -> None:
    """Topics created before their spec asked for a larger max.message.bytes (the dead-letter
    topics, from an earlier version or a smaller CLARION_MAX_RECORD_BYTES) get it now: a
    dead letter the topic refuses would stop its partition."""
    wanted = {
        name: int(dict(spec.extra_config)[MAX_MESSAGE_BYTES])
        for name, spec in specs.items()
        if MAX_MESSAGE_BYTES in dict(spec.extra_config)
    }
    if not wanted:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
    changes = []
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            config = raised_limit(entries, wanted[name])
            if config is not None:
                changes.append(ConfigResource(ConfigResourceType.TOPIC, name, configs=config))
    if changes:
        for response in await admin.alter_configs(changes):
            for resource in response.resources:
                if resource[0] != 0:
                    raise TopicLayoutError(f"cannot raise {MAX_MESSAGE_BYTES} of {resource}")
        log.info("raised %s of %s", MAX_MESSAGE_BYTES, [c.name for c in changes])


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    prefix: str,
    partitions: int,
    replication_factor: int,
) -> list[str]:
    """Create the missing topics; fail loudly if an existing one has the wrong partition count.

    Returns the names that were created.
    """
    wanted = {prefix + spec.name: spec for spec in specs}
    expected = {name: spec.partitions or partitions for name, spec in wanted.items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [name for name in wanted if name in existing]
        if present:
            described = await admin.describe_topics(present)
            wrong = {
                d["topic"]: len(d["partitions"])
                for d in described
                if len(d["partitions"]) != expected[d["topic"]]
            }
            if wrong:
                raise TopicLayoutError(
                    f"topics must all have {partitions} partitions (CLARION_PARTITIONS) to stay "
                    f"co-partitioned, but these differ: {wrong}"
                )
            await _raise_message_limits(admin, {name: wanted[name] for name in present})
        missing = [
            NewTopic(name, expected[name], replication_factor, topic_configs=_config(spec))
            for name, spec in wanted.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, message in _topic_errors(response):
                # Another worker may have created it between our list and create.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise TopicLayoutError(f"cannot create topic {topic}: [{code}] {message}")
            await _wait_visible(admin, [t.name for t in missing])
            log.info("created %d topics (prefix %r)", len(missing), prefix)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def cluster_id(bootstrap_servers: str) -> str:
    """The Kafka cluster's id (the data directory records it, streams/datadir.py)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()
