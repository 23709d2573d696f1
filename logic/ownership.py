"""Which consumer group acts on a shared control record in a lane-split deployment.

Every worker runs the retry, escalate, confirm and feedback agents, and each consumer group
(CLARION_APP_ID) reads every record of their topics. With the lanes split over groups
(CLARION_LANES, e.g. `critical` and `high,social,bulk`), exactly one group must act on each
record, or a retry is republished once per group and an escalation step doubles at every
rung. A record that names a lane is owned by the group that serves that lane (the one whose
sinks consume the lane's delivery topics); a record without one by the group serving
HOME_LANE. A deployment must give each lane to exactly one group for this to hold.
"""

from __future__ import annotations

from collections.abc import Set

from schemas.common import Lane

# Owner of records that name no lane (provider feedback, confirmations of ids no inbox of
# this group has): the default, non-critical group, so the critical group stays lean.
HOME_LANE = Lane.HIGH


def owns_lane(served: Set[Lane], lane: Lane) -> bool:
    """This group acts on records of `lane`."""
    return lane in served


def owns_laneless(served: Set[Lane]) -> bool:
    """This group acts on records that name no lane."""
    return HOME_LANE in served


def serves_every_lane(served: Set[Lane]) -> bool:
    """No other group can hold state of a lane: this group's view of it is the whole view."""
    return set(Lane) <= set(served)
