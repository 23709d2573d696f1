"""The one module that names faust-streaming's (and mode's) private attributes.

Clarion's data-loss guards need state Faust keeps to itself: the consumer's offset
bookkeeping (streams/consumer.py, logic/commits.py), a partition's RocksDB store for range
scans (tables/scan.py), the store's revoke (replaced below), and the aiokafka producer
under Faust's (streams/record_batches.py). Every other module goes
through the typed functions here, and every private name they (or Clarion's subclasses)
rely on is listed in `REQUIRED`, which tests/unit/test_faust_internals.py checks against
the installed faust-streaming: an upgrade that renames one fails a unit test, not a worker.

Private methods that a Clarion subclass must override keep their Faust name in the
subclass (that is how an override works); `OVERRIDES` lists each with the reason:

- `Consumer._getmany` (streams/consumer.py, ClarionConsumer): the raw fetch, the one place
  that sees every record the client fetched (compacted gaps, transaction markers), before
  Faust drops any; the commit frontier needs it.
- `Consumer._new_offset` (ClarionConsumer): Faust's commit check lets a commit pass a record
  not processed (logic/commits.py); Clarion's frontier decides the offset instead.
- `App._new_transport` (streams/clarion_app.py, ClarionApp): the only way to install the
  consumer class above.
- `Service._crash` (ClarionApp): where mode reports the ConsistencyError of table recovery;
  Clarion turns it into one line that says which directory to remove.
- `Topic._clone_args` (streams/topics.py, DeadLetteringTopic): Faust clones topics (for
  every stream) from these arguments; without it the dead-letter hook is lost.
- `Codec._dumps` / `Codec._loads` (streams/codec.py, tables/state.py): Faust's documented
  way to write a codec, underscore or not.
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, cast

import faust.streams as _faust_streams
from faust.stores import rocksdb as _faust_rocksdb
from faust.streams import current_event
from faust.transport.drivers import aiokafka as _faust_aiokafka
from faust.types import TP, Message
from faust.types.transports import ConsumerT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify


class Private(NamedTuple):
    """A private attribute of a Faust (or mode) class: `module.owner.name`."""

    module: str
    owner: str
    name: str
    # Set in __init__ (no class attribute to look up): the test checks a constructed object.
    instance: bool = False


_CONSUMER = ("faust.transport.consumer", "Consumer")
_STORE = ("faust.stores.rocksdb", "Store")

# Read or written by the functions below.
CONSUMER_STATE = (
    Private(*_CONSUMER, "_committed_offset", instance=True),
    Private(*_CONSUMER, "_acked", instance=True),
    Private(*_CONSUMER, "_acked_index", instance=True),
    Private(*_CONSUMER, "_gap", instance=True),
    Private(*_CONSUMER, "_unacked_messages", instance=True),
    Private(*_CONSUMER, "_waiting_for_ack", instance=True),
    Private("faust.transport.consumer", "ThreadDelegateConsumer", "_thread", instance=True),
)
# streams/topic_loader.as_current_event: a record read outside Faust's streams processed as
# Faust's current event (a module-level context variable: no owner class).
EVENT_STATE = (Private("faust.streams", "", "_current_event"),)
STORE_STATE = (
    Private(*_STORE, "_dbs", instance=True),
    Private(*_STORE, "_db_for_partition"),
    # tables/changelog.py: a row written to a partition without Faust's changelog
    # machinery (that module sends the changelog record itself); `_set` does the same for
    # the current event's partition, noting the key's partition in `_key_index`.
    Private(*_STORE, "_key_index", instance=True),
    Private(*_STORE, "_del"),
)


class Override(NamedTuple):
    """A private method of Faust's that a Clarion class overrides (the module docstring
    says why for each)."""

    faust: Private
    by: str  # "module:Class" of the Clarion subclass


OVERRIDES = (
    Override(Private(*_CONSUMER, "_getmany"), "streams.consumer:ClarionConsumer"),
    Override(Private(*_CONSUMER, "_new_offset"), "streams.consumer:ClarionConsumer"),
    Override(Private("faust.app.base", "App", "_new_transport"), "streams.clarion_app:ClarionApp"),
    Override(Private("mode.services", "Service", "_crash"), "streams.clarion_app:ClarionApp"),
    Override(Private("faust.topics", "Topic", "_clone_args"), "streams.topics:DeadLetteringTopic"),
    Override(Private("faust.serializers.codecs", "Codec", "_dumps"), "streams.codec:PydanticCodec"),
    Override(Private("faust.serializers.codecs", "Codec", "_loads"), "streams.codec:PydanticCodec"),
    Override(Private("faust.serializers.codecs", "Codec", "_dumps"), "streams.codec:MsgspecCodec"),
    Override(Private("faust.serializers.codecs", "Codec", "_loads"), "streams.codec:MsgspecCodec"),
    Override(Private("faust.serializers.codecs", "Codec", "_dumps"), "tables.state:DigestsCodec"),
    Override(Private("faust.serializers.codecs", "Codec", "_loads"), "tables.state:DigestsCodec"),
)

# streams/record_batches.py: the aiokafka producer under Faust's, for whole record batches.
PRODUCER_STATE = (Private("faust.transport.drivers.aiokafka", "Producer", "_ensure_producer"),)
# `active_partitions`: the assignment object, replaced (not changed) at every rebalance.
ASSIGNOR_STATE = (
    Private("faust.assignor.partition_assignor", "PartitionAssignor", "_assignment", instance=True),
)

# Every private name Clarion relies on.
REQUIRED: tuple[Private, ...] = (
    *CONSUMER_STATE,
    *EVENT_STATE,
    *STORE_STATE,
    *PRODUCER_STATE,
    *ASSIGNOR_STATE,
    *dict.fromkeys(o.faust for o in OVERRIDES),
)


# -- the assignment --------------------------------------------------------------------------


class _Actives(NamedTuple):
    assignment: Any  # the assignor's ClientAssignment these partitions were read from
    generation: int
    by_topic: dict[str, frozenset[int]]


_ACTIVES: weakref.WeakKeyDictionary[Any, _Actives] = weakref.WeakKeyDictionary()


def active_partitions(app: Any, topic: str) -> frozenset[int]:
    """The partitions of `topic` this worker owns actively. Faust's `assigned_actives()`
    builds a set of every assigned partition on each call; the loaders, the window index
    and the positions asked it several hundred times a second per worker (a sixth of an
    idle worker's CPU), so the answer is kept until the assignor holds another assignment
    (Faust's assignor replaces the object at every rebalance) or the generation moves."""
    assignor = app.assignor
    assignment, generation = assignor._assignment, app.consumer_generation_id
    memo = _ACTIVES.get(assignor)
    if memo is None or memo.assignment is not assignment or memo.generation != generation:
        by_topic = {t: frozenset(ps) for t, ps in assignment.actives.items()}
        memo = _ACTIVES[assignor] = _Actives(assignment, generation, by_topic)
    return memo.by_topic.get(topic, frozenset())


# -- the consumer's offset bookkeeping (streams/consumer.py) -----------------------------------


def _consumer(consumer: ConsumerT) -> Any:
    # ConsumerT declares none of the private state: one cast, here.
    return cast(Any, consumer)


def committed_offset(consumer: ConsumerT, tp: TP) -> int | None:
    """The offset the consumer last committed for `tp`, or resumed from on assignment
    (None before the group's first commit, or when `tp` is not assigned here)."""
    committed: int | None = _consumer(consumer)._committed_offset.get(tp)
    return committed


def forget_acks(consumer: ConsumerT, tp: TP) -> None:
    """Drop the acks (and read gaps) Faust kept for `tp`."""
    c = _consumer(consumer)
    c._acked.pop(tp, None)
    c._acked_index.pop(tp, None)
    c._gap.pop(tp, None)


def acked_index(consumer: ConsumerT, tp: TP) -> set[int]:
    """The offsets acked for `tp` since its last commit (Faust's own set, not a copy)."""
    index: set[int] = _consumer(consumer)._acked_index[tp]
    return index


def drop_gap(consumer: ConsumerT, tp: TP) -> None:
    """Forget Faust's read gaps of `tp`."""
    _consumer(consumer)._gap.pop(tp, None)


def set_acked(consumer: ConsumerT, tp: TP, offsets: list[int]) -> None:
    """Replace the acks Faust keeps for `tp` with `offsets` (sorted)."""
    c = _consumer(consumer)
    c._acked[tp] = offsets
    c._acked_index[tp] = set(offsets)


def mark_done_uncounted(consumer: ConsumerT, message: Message) -> None:
    """Mark `message` acked without counting it toward a commit, as Faust's ack does for the
    waiting side: so that waiting for the streams to empty ends."""
    c = _consumer(consumer)
    with ack_lock:
        if message.acked:
            return
        message.acked = True
        c._unacked_messages.discard(message)
    notify(c._waiting_for_ack)


async def seek_to_beginning(consumer: ConsumerT, *tps: TP) -> None:
    """Seek `tps` to the start of their logs (Faust's consumer has no public call for it)."""
    await _consumer(consumer)._thread.seek_to_beginning(*tps)


# -- the producer (streams/record_batches.py) ---------------------------------------------------


def kafka_producer(producer: Any) -> Any | None:
    """The aiokafka producer Faust's aiokafka driver sends through (started with the app),
    or None for any other producer (the stage tests' capturing one)."""
    if isinstance(producer, _faust_aiokafka.Producer):
        return producer._ensure_producer()
    return None


# -- the RocksDB store (tables/scan.py) --------------------------------------------------------


def store_db(table: Any, partition: int) -> Any:
    """The `rocksdict.Rdict` of serialized keys and values of `table`'s `partition` (opened
    if it was not)."""
    return table.data._db_for_partition(partition)


def store_get(table: Any, key: Any) -> Any | None:
    """`table.get(key)` on the current event's partition with one store read: Faust's
    `get` asks the store whether the key is there and then reads it (two RocksDB reads, four
    mapping layers and a sensor call). Outside an event (the admin views), Faust's own."""
    store = table.data
    event = current_event()
    if event is None or not isinstance(store, _faust_rocksdb.Store):
        return table.get(key)
    serializers = table.app.serializers
    raw_key = serializers.dumps_key(table.key_type, key, serializer=table.key_serializer)
    raw = store._db_for_partition(event.message.partition).get(raw_key)
    return None if raw is None else decode_store_value(table, raw)


def store_set(
    table: Any, partition: int, key: Any, raw_key: bytes, raw_value: bytes | None
) -> None:
    """Write one row of `table` into `partition` of its store, with no changelog record
    (`raw_value` None deletes it). A RocksDB store keeps bytes; Faust's memory store (the
    stage tests) keeps the decoded key and value. Faust's own `_set` takes the partition
    from the current event; this is the same write for a writer with no event
    (streams/topic_loader.py)."""
    store = table.data
    if isinstance(store, _faust_rocksdb.Store):
        if raw_value is None:
            store._del(raw_key)
        else:
            store._key_index[raw_key] = partition
            store._db_for_partition(partition).put(raw_key, raw_value)
    elif raw_value is None:
        store.pop(key, None)
    else:
        store[key] = decode_store_value(table, raw_value)


def decode_store_value(table: Any, raw: bytes) -> Any:
    """A serialized value read from `store_db` (or a changelog record), decoded by the
    table's own serializer, as its store does (Faust's public serializer registry)."""
    return table.app.serializers.loads_value(
        table.value_type, raw, serializer=table.value_serializer
    )


# Faust's own, kept for the test that checks our replacement still fits its signature.
FAUST_STORE_REVOKE: Callable[..., None] = _faust_rocksdb.Store.revoke_partitions


def store_revoke_partitions(self: Any, table: Any, tps: set[TP]) -> None:
    """Faust's RocksDB store runs gc.collect() on every rebalance for each table, revoked
    partitions or not (so a closed DB's handle and lock are freed before it may be reopened).
    With a dozen tables that held the event loop for seconds in every rebalance, on the
    worker taking over a killed one's partitions too. Collect only when a DB was closed."""
    closed = False
    for tp in tps:
        if tp.topic in table.changelog_topic.topics:
            if self._dbs.pop(tp.partition, None) is not None:
                self.logger.info(f"closing db {tp.topic} partition {tp.partition}")
                closed = True
    if closed:
        gc.collect()


def install_store_revoke_patch() -> None:
    """Replace Faust's `Store.revoke_partitions` with `store_revoke_partitions` (idempotent)."""
    _faust_rocksdb.Store.revoke_partitions = store_revoke_partitions  # type: ignore[method-assign]


# -- the current event (streams/topic_loader.py) -----------------------------------------------


@contextlib.contextmanager
def current_event_set(event: Any) -> Iterator[None]:
    """`faust.current_event()` returns `event` inside the block (Faust keeps a weak reference
    in a context variable, set by its streams for each event they hand on)."""
    token = _faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _faust_streams._current_event.reset(token)
