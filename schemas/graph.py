"""The social graph Clarion keeps for broadcasts, and the fan-out's work items and progress."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.common import Id
from schemas.events import LiveStartedEvent


class FollowEdge(BaseModel):
    """One record of the compacted `follows` topic, keyed "<actor_id>/<follower_id>".

    An unfollow is a tombstone (null value) on the same key, so compaction keeps exactly
    one record per edge.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    actor_id: Id
    follower_id: Id
    followed_at: AwareDatetime | None = None


class FanoutTask(BaseModel):
    """One page of one broadcast's audience on one partition.

    Each task sends a page of notifications and then the next task to the same partition,
    so no event is held for the length of a 50-million-follower fan-out and a restart
    resumes at the last page (see agents/fanout.py).
    """

    model_config = ConfigDict(frozen=True)

    broadcast: LiveStartedEvent
    partition: int = Field(ge=0)
    page: int = Field(default=0, ge=0)
    # The last follower key of the previous page ("actor/follower"); None on the first page.
    after: str | None = None


class FanoutProgress(BaseModel):
    """Checkpoint of one broadcast on one partition (table `fanout`, key "<event id>/<p>")."""

    model_config = ConfigDict(frozen=True)

    # The broadcast itself, so a stalled fan-out can be restarted from the checkpoint alone.
    broadcast: LiveStartedEvent
    partition: int
    pages_done: int = 0
    sent: int = 0
    after: str | None = None
    done: bool = False
    started_at: float
    updated_at: float
