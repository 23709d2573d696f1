"""Escalation ladders: which deliveries of a critical notification go out now and which
wait, step by step, for the user not to have confirmed it."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.common import Channel
from schemas.notifications import Delivery


def split_for_escalation(
    deliveries: Sequence[Delivery], ladder: Sequence[Channel]
) -> tuple[list[Delivery], list[list[Delivery]]]:
    """(deliveries to send now, later steps in order).

    Channels outside the ladder go now. Of the ladder, the first channel that has any
    delivery (a target and no opt-out) goes now with them; every further channel with
    deliveries is one later step. A ladder channel without deliveries is skipped, so a user
    without a phone goes from push straight to email.
    """
    now = [d for d in deliveries if d.channel not in ladder]
    steps = [[d for d in deliveries if d.channel is channel] for channel in ladder]
    steps = [step for step in steps if step]
    if steps:
        now += steps.pop(0)
    return now, steps
