"""Responses of the operator views under /admin (streams/admin_views.py). Their JSON schemas
make up the OpenAPI description (logic/openapi.py), so the document and the code agree."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import Lane


class ErrorBody(BaseModel):
    error: str = Field(description="What went wrong, for a human.")


class WorkerPart(BaseModel):
    url: str
    partitions: list[int] = Field(description="Partitions this worker owns (actives).")
    error: str | None = Field(default=None, description="Set when the worker did not answer.")


class TableRow(BaseModel):
    key: str = Field(
        description=(
            "The row's key: the user id for user-keyed tables, the part after "
            "'<user id>\\x1f' for composite keys, the event id for seen-events."
        )
    )
    value: Any = Field(description="The row, rendered as JSON; contact points are masked.")


class TableRows(BaseModel):
    table: str
    key: str = Field(description="The user id (Kafka key) the rows were looked up by.")
    partition: int = Field(description="The partition that holds the key's rows.")
    served_by: str = Field(description="URL of the worker that owns the partition.")
    rows: list[TableRow]
    truncated: bool = Field(description="More rows exist than `limit` allowed.")


class ClusterRow(TableRow):
    partition: int = Field(description="Where the row is (the table spreads over partitions).")


class ClusterRows(BaseModel):
    """Rows of a table whose rows for one key are spread over every partition (followers,
    fanout): each worker scans the partitions it owns, the answering worker merges."""

    table: str
    key: str = Field(description="The actor id (followers) or broadcast event id (fanout).")
    workers: list[WorkerPart]
    rows: list[ClusterRow]
    truncated: bool = Field(description="A worker had more rows than `limit` allowed.")


class OpenWindow(BaseModel):
    recipient_id: str
    group_key: str
    lane: Lane
    partition: int
    window_start: float = Field(description="Unix seconds.")
    window_end: float = Field(description="Unix seconds.")
    deadline: float = Field(description="When it may go out (later while held), unix seconds.")
    count: int = Field(description="Events folded in so far.")
    actors: int = Field(description="Distinct actors kept (the first few).")


class WindowsResponse(BaseModel):
    workers: list[WorkerPart]
    total: int = Field(description="Open windows found on the workers that answered.")
    windows: list[OpenWindow] = Field(description="Soonest deadline first, at most `limit`.")


class PartitionLag(BaseModel):
    topic: str
    partition: int
    highwater: int | None = Field(description="Next offset the broker will write (end offset).")
    committed: int | None = Field(description="Next offset the group will read after a restart.")
    position: int | None = Field(description="Next offset this worker will fetch.")
    lag: int | None = Field(description="highwater - committed (committed unknown: from 0).")
    served_by: str


class LaneLag(BaseModel):
    lane: Lane
    total_lag: int = Field(description="Sum of `lag` over the lane's partitions listed.")
    partitions: list[PartitionLag]


class LagsResponse(BaseModel):
    workers: list[WorkerPart]
    lanes: list[LaneLag]


class OpenAPIDocument(BaseModel):
    """An OpenAPI 3.1 document (GET /admin/openapi.json)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
