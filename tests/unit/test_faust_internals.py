"""streams/faust_internals.py is the one module that names Faust's private attributes, and
every name it relies on exists in the installed faust-streaming: an upgrade that renames
one fails here, not in a worker.

Attributes set in `__init__` have no class attribute to look up. They are checked on real
objects, built as a worker builds them (an App's consumer, a Table's RocksDB store):
constructing connects to nothing, and it checks what Clarion actually reads, wherever
Faust sets it (reading `__init__`'s source instead would miss an attribute moved into a
helper or a base class, and pass one assigned in dead code).
"""

from __future__ import annotations

import abc
import ast
import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import faust
import pytest
from faust.types import TP

from streams import faust_internals
from streams.faust_internals import OVERRIDES, REQUIRED, Private

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("schemas", "logic", "streams", "tables", "agents", "sinks")


def _owner(p: Private) -> Any:
    """The class that has the name, or the module for a module-level one (no owner)."""
    module = importlib.import_module(p.module)
    return getattr(module, p.owner) if p.owner else module


@pytest.fixture
def app(tmp_path: Path) -> Iterator[faust.App]:
    yield faust.App(
        "faust-internals-test",
        broker="kafka://localhost:1",  # never connected to
        store="rocksdb://",
        datadir=str(tmp_path),
        web_enabled=False,
    )


@pytest.fixture
def table(app: faust.App) -> Any:
    return app.Table("t", partitions=1)  # values: the app's default (json) serializer


def _instances(app: faust.App, table: Any) -> dict[tuple[str, str], Any]:
    """One object per class whose instance attributes REQUIRED names."""
    consumer = app.consumer
    return {
        ("faust.transport.consumer", "Consumer"): consumer,
        ("faust.transport.consumer", "ThreadDelegateConsumer"): consumer,
        ("faust.stores.rocksdb", "Store"): table.data,
        ("faust.assignor.partition_assignor", "PartitionAssignor"): app.assignor,
    }


@pytest.mark.parametrize("p", [p for p in REQUIRED if not p.instance], ids=str)
def test_each_class_level_private_name_exists(p: Private) -> None:
    assert hasattr(_owner(p), p.name), f"{p.module}.{p.owner} has no {p.name}"


async def test_each_instance_private_name_exists(app: faust.App, table: Any) -> None:
    instances = _instances(app, table)
    missing = []
    for p in (p for p in REQUIRED if p.instance):
        obj = instances[(p.module, p.owner)]  # a KeyError: add the class to _instances
        assert isinstance(obj, _owner(p))
        if not hasattr(obj, p.name):
            missing.append(f"{p.module}.{p.owner}().{p.name}")
    assert not missing


@pytest.mark.parametrize("o", OVERRIDES, ids=lambda o: f"{o.by}.{o.faust.name}")
def test_each_override_overrides_faust_with_its_signature(o: faust_internals.Override) -> None:
    module, _, name = o.by.partition(":")
    cls: type = getattr(importlib.import_module(module), name)
    assert issubclass(cls, _owner(o.faust))
    assert o.faust.name in vars(cls), f"{o.by} no longer overrides {o.faust.name}"
    base = getattr(cls.__mro__[1], o.faust.name)  # what super() calls

    def params(f: Callable[..., Any]) -> list[tuple[Any, str]]:
        # Faust calls some by keyword (`_getmany(active_partitions=..., timeout=...)`): the
        # names count. It calls codecs positionally, and its own codecs name them variously.
        named = o.faust.owner != "Codec"
        return [(p.kind, p.name if named else "") for p in inspect.signature(f).parameters.values()]

    assert params(getattr(cls, o.faust.name)) == params(base)


def test_every_private_override_of_a_clarion_subclass_is_listed() -> None:
    listed = {(o.by, o.faust.name) for o in OVERRIDES}
    unlisted = []
    for by in {o.by for o in OVERRIDES}:
        module, _, name = by.partition(":")
        cls: type = getattr(importlib.import_module(module), name)
        for attr in vars(cls).keys() - vars(abc.ABC).keys():  # not ABCMeta's _abc_impl
            private = attr.startswith("_") and not attr.startswith("__")
            if private and hasattr(cls.__mro__[1], attr) and (by, attr) not in listed:
                unlisted.append(f"{by}.{attr}")
    assert not unlisted, "list them in streams/faust_internals.OVERRIDES"


def test_no_other_runtime_module_names_a_faust_private_name() -> None:
    names = {p.name for p in REQUIRED}
    # An override keeps Faust's name in its own class's module (`def _x`, `super()._x`).
    allowed = {(o.by.partition(":")[0], o.faust.name) for o in OVERRIDES}
    found = []
    for package in RUNTIME_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if module == "streams.faust_internals":
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Attribute):
                    name = node.attr
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    name = node.name
                else:
                    continue
                if name in names and (module, name) not in allowed:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not found, "go through streams/faust_internals.py"


# -- the helpers, on the real objects ----------------------------------------------------------


async def test_consumer_helpers_read_and_write_fausts_bookkeeping(app: faust.App) -> None:
    consumer = app.consumer
    tp = TP("t", 0)
    assert faust_internals.committed_offset(consumer, tp) is None
    consumer._committed_offset[tp] = 7
    assert faust_internals.committed_offset(consumer, tp) == 7

    faust_internals.set_acked(consumer, tp, [8, 9])
    assert consumer._acked[tp] == [8, 9]
    assert faust_internals.acked_index(consumer, tp) == {8, 9}
    assert faust_internals.acked_index(consumer, tp) is consumer._acked_index[tp]
    consumer._gap[tp]  # a defaultdict: creates the entry
    faust_internals.drop_gap(consumer, tp)
    assert tp not in consumer._gap

    consumer._gap[tp]
    faust_internals.forget_acks(consumer, tp)
    assert tp not in consumer._acked and tp not in consumer._acked_index
    assert tp not in consumer._gap

    with mock.patch.object(consumer._thread, "seek_to_beginning") as seek:
        await faust_internals.seek_to_beginning(consumer, tp, TP("t", 1))
    seek.assert_awaited_once_with(tp, TP("t", 1))


async def test_mark_done_uncounted_acks_without_counting(app: faust.App) -> None:
    consumer = app.consumer
    message = mock.Mock(acked=False)
    consumer._unacked_messages.add(message)
    faust_internals.mark_done_uncounted(consumer, message)
    assert message.acked
    assert message not in consumer._unacked_messages
    assert not consumer._acked  # not counted toward a commit
    faust_internals.mark_done_uncounted(consumer, message)  # twice: nothing more


def test_active_partitions_follow_the_assignment_and_the_generation(app: faust.App) -> None:
    from faust.assignor.client_assignment import ClientAssignment

    assignor = app.assignor
    assert faust_internals.active_partitions(app, "t") == frozenset()
    assignor._assignment = ClientAssignment(actives={"t": {0, 2}, "u": {1}}, standbys={"v": {3}})
    assert faust_internals.active_partitions(app, "t") == {0, 2}
    assert faust_internals.active_partitions(app, "v") == frozenset()  # standby: not active
    assert faust_internals.active_partitions(app, "t") == {
        tp.partition for tp in assignor.assigned_actives() if tp.topic == "t"
    }
    # A rebalance: Faust's assignor holds a new assignment object.
    assignor._assignment = ClientAssignment(actives={"t": {1}}, standbys={})
    assert faust_internals.active_partitions(app, "t") == {1}
    # The same object changed in place under a new generation is read again too.
    assignor._assignment.actives["t"] = {3}
    app.consumer_generation_id += 1
    assert faust_internals.active_partitions(app, "t") == {3}


def test_store_helpers_read_a_partition_and_decode_with_the_tables_serializer(
    table: Any,
) -> None:
    db = faust_internals.store_db(table, 0)
    db[b"k"] = b'{"a": 1}'
    assert faust_internals.store_db(table, 0) is db  # opened once, kept by the store
    assert faust_internals.decode_store_value(table, db[b"k"]) == {"a": 1}
    db.close()


def test_the_store_revoke_collects_only_when_a_db_was_closed() -> None:
    changelog = "app-t-changelog"
    table = mock.Mock()
    table.changelog_topic.topics = {changelog}
    store = mock.Mock(_dbs={0: object()})
    revoke = faust_internals.store_revoke_partitions
    with mock.patch.object(faust_internals.gc, "collect") as collect:
        revoke(store, table, {TP(changelog, 1), TP("other", 0)})
        collect.assert_not_called()
        revoke(store, table, {TP(changelog, 0)})
        collect.assert_called_once_with()
    assert store._dbs == {}


def test_the_store_revoke_patch_fits_fausts_and_is_installed_by_the_app_module() -> None:
    from faust.stores import rocksdb

    import streams.clarion_app  # noqa: F401  (installs it on import)

    def params(f: Callable[..., Any]) -> list[str]:
        return list(inspect.signature(f).parameters)

    assert rocksdb.Store.revoke_partitions is faust_internals.store_revoke_partitions
    assert params(faust_internals.FAUST_STORE_REVOKE) == params(
        faust_internals.store_revoke_partitions
    )
