"""Where this worker's agents are in their partitions, and whether a partition is caught up.

A window may close by the wall clock only when nothing older can still arrive for it: the
lane partition *and* the ingress partitions that feed it (ingress is keyed by recipient, so
ingress partition p feeds lane partition p) have no backlog on this worker.
"""

from __future__ import annotations

from faust.types import TP

from streams.app import app

_processed_next: dict[TP, int] = {}


def observe(tp: TP, offset: int) -> None:
    _processed_next[tp] = offset + 1


def forget(tps: set[TP]) -> None:
    for tp in tps:
        _processed_next.pop(tp, None)


def caught_up(tp: TP) -> bool:
    try:
        highwater = app.consumer.highwater(tp)
    except AssertionError:  # assigned by the group, not yet by the consumer (start-up)
        return False
    if highwater is None:
        return False
    position = _processed_next.get(tp)
    if position is None:
        # Nothing processed since start: resume from the committed position, which Faust
        # keeps on the consumer after seeking there on assignment.
        committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
        position = committed or 0
    return bool(position >= highwater)


def owned(tp: TP) -> bool:
    return tp in app.assignor.assigned_actives()
