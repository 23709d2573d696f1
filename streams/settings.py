"""Every setting Clarion reads, from environment variables only (pydantic-settings).

`KAFKA_BOOTSTRAP_SERVERS` keeps its conventional name; everything else is `CLARION_*`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.common import Lane
from streams.catalog import DEFAULT_MAX_RECORD_BYTES, DLQ_HEADROOM_BYTES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLARION_", extra="ignore")

    bootstrap_servers: str = Field(
        default="localhost:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "CLARION_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers, comma separated host:port.",
    )
    app_id: str = Field(default="clarion", description="Faust app id = consumer group id.")
    lanes: str = Field(
        default="all",
        description=(
            "Lanes this worker serves: 'all', 'none' (e.g. a fan-out-only worker), or a comma "
            "list such as 'critical' or 'high,social,bulk'. Give each set its own "
            "CLARION_APP_ID (consumer group) so a burst on one lane cannot hold up another's "
            "consumer."
        ),
    )
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name (isolates tests and tenants)."
    )
    partitions: int = Field(default=8, ge=1, description="Partitions of every user-keyed topic.")
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Field(default=Path("var/data"), description="RocksDB tables live here.")
    web_host: str = Field(
        default="127.0.0.1", description="Bind address of the worker's web server."
    )
    web_port: int = Field(default=6066, ge=1, le=65535)
    # Public URL other workers (and redirected SSE clients) use to reach this worker.
    web_advertised_url: str | None = None
    producer_linger_ms: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description=(
            "Producer batching delay (adds to latency). Unset: 0 on a worker that serves "
            "only the critical lane (little traffic, every ms counts), else 5."
        ),
    )
    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description=(
            "The worker's first garbage-collector threshold (CPython's is 700). A worker "
            "makes and drops many short-lived objects per record: with 700, collections took "
            "about 3 % of its CPU in the full-pipeline benchmark. 0 keeps CPython's."
        ),
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description=(
            "The worker's event loop: uvloop (libuv, its loop and transports in C) or "
            "asyncio's own. uvloop made a bare Faust hop 12-15 % cheaper, the full pipeline "
            "about 2 %, and the provider sinks 10-40 % faster in 4 of 5 channels."
        ),
    )
    rocksdb_block_cache_mb: int = Field(default=64, ge=8, description="Per-table block cache.")
    max_record_bytes: int = Field(
        default=DEFAULT_MAX_RECORD_BYTES,
        ge=1_000_000,
        description=(
            "Largest record the ingress topics can hand the worker (the broker's "
            "message.max.bytes; the dev broker's is 2 MiB). The producer's request limit "
            "and the dead-letter topics' max.message.bytes are this plus room for the DLQ "
            "headers, so any record can be dead-lettered whole."
        ),
    )
    broker_session_timeout_s: float = Field(
        default=6.0,
        ge=1.0,
        le=300.0,
        description=(
            "Consumer group session timeout: how long a killed worker's partitions wait "
            "before the group gives them to a live worker (Faust's default is 60 s; with "
            "6 s the critical lane's gap after a kill -9 was about 7 s). The broker refuses "
            "values below its group.min.session.timeout.ms (6 s by default)."
        ),
    )
    broker_heartbeat_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Consumer heartbeat interval; keep it at most a third of the session timeout.",
    )

    max_event_bytes: int = Field(default=65536, ge=1024, description="Larger events are DLQ'd.")
    fault_injection: str = Field(
        default="",
        description=(
            "Drills only: comma-separated `<stage>=<record key>` pairs; that stage raises on "
            "records with that key, to show the record is dead-lettered and the stage goes on "
            "(streams/guard.py). Empty (the default) in every real deployment."
        ),
    )
    max_future_skew_s: float = Field(
        default=300.0,
        ge=0,
        description=(
            "How far ahead of ingest's clock an event's occurred_at may be (a producer's "
            "fast clock); later ones are DLQ'd as occurred_at_in_future."
        ),
    )
    dedupe_horizon_s: int = Field(default=86_400, ge=60, description="How long event ids are kept.")
    rules_path: Path | None = Field(default=None, description="Override the packaged rules.toml.")
    tick_interval_s: float = Field(
        default=0.5, gt=0, le=5, description="How often due aggregation windows are flushed."
    )
    bulk_shed_lag: int = Field(
        default=100_000, ge=1, description="Bulk backlog per partition above which bulk is shed."
    )

    inapp_token_secret: SecretStr = Field(
        default=SecretStr("dev-only-secret-change-me-before-production"),
        min_length=32,
        description="HMAC secret that signs in-app client tokens (HS256 JWT).",
    )
    inapp_token_ttl_s: int = Field(default=3600, ge=60)
    admin_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token of the operator views under /admin (table views, open windows, "
            "lane lags). Unset: those views answer 403. Give every worker the same one."
        ),
    )
    inbox_size: int = Field(default=20, ge=1, le=500, description="In-app items kept per user.")
    outbox_path: Path = Field(
        default=Path("var/outbox.jsonl"),
        description="Console/file outbox for channels without a provider yet.",
    )
    outbox_console: bool = Field(default=True, description="Also log each outbox delivery.")

    # Delivery (issue 4): concurrency, retries, idempotency.
    sink_concurrency: int = Field(
        default=256, ge=1, le=10_000, description="Provider sends in flight per sink agent."
    )
    delay_queue_limit: int = Field(
        default=10_000, ge=1, description="Retries/escalations waiting in memory per agent."
    )
    retry_max_attempts: int = Field(default=12, ge=1, le=50, description="Tries per delivery.")
    retry_base_s: float = Field(default=1.0, gt=0, description="Backoff of the first retry.")
    retry_cap_s: float = Field(default=300.0, gt=0, description="Longest wait between tries.")
    ledger_horizon_s: int = Field(
        default=7 * 86_400, ge=60, description="How long sent deliveries are remembered."
    )
    # Provider pacing: each provider's global rate (CLARION_PACE_<PROVIDER>_PER_S) is its own
    # setting (sinks/providers/<name>.py); how it is split over workers is the app's.
    pace_scope: Literal["group", "worker"] = Field(
        default="group",
        description=(
            "What CLARION_PACE_<PROVIDER>_PER_S means. 'group': the provider's rate for the "
            "whole deployment; each worker paces its share, by the provider's delivery "
            "partitions it owns (sinks/pacers.py). 'worker': every worker process paces the "
            "whole rate (N workers send up to N times it; Clarion before issue 13)."
        ),
    )
    pace_group_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description=(
            "With lanes split over consumer groups (CLARION_LANES, one CLARION_APP_ID each): "
            "this group's part of every provider's rate. Default: its lanes' part, served "
            "lanes / 4 (all lanes: 1; 'critical': 0.25). Set on every group so that the "
            "parts add up to at most 1."
        ),
    )

    # Celebrity fan-out (issue 5).
    fanout: bool | None = Field(
        default=None,
        description=(
            "Run the follow graph and the broadcast fan-out in this worker (default: where "
            "the bulk lane is served). A fan-out-only worker: CLARION_LANES=none, "
            "CLARION_FANOUT=true, its own CLARION_APP_ID."
        ),
    )
    fanout_page_size: int = Field(
        default=1000, ge=1, le=100_000, description="Followers read and notified per page."
    )
    fanout_per_s: float = Field(
        default=1_000.0,
        gt=0,
        description=(
            "Broadcast notifications per second per worker: keep it under the bulk lane's "
            "throughput and the push provider's quota, so a broadcast never sheds bulk."
        ),
    )

    # Gateway role (`clarion gateway`, issue 5): holds in-app connections only.
    gateway_id: str = Field(
        default="gateway-1",
        description="Stable name of this gateway; picks its gateway.deliveries partition.",
    )
    gateway_host: str = Field(default="127.0.0.1", description="Gateway bind address.")
    gateway_port: int = Field(default=6080, ge=1, le=65535)
    gateway_lease_s: float = Field(
        default=30.0,
        ge=1,
        description="A gateway that stops renewing (every third of this) takes its users offline.",
    )
    gateway_sync_timeout_s: float = Field(
        default=20.0, gt=0, description="Stream without a replay if no worker answers a connect."
    )
    fanout_stall_s: float = Field(
        default=120.0,
        gt=0,
        description="A fan-out with no page for this long is resumed from its checkpoint.",
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def dead_letter_max_bytes(self) -> int:
        """The producer's request limit and the dead-letter topics' max.message.bytes: the
        largest ingress record plus its DLQ headers and framing."""
        return self.max_record_bytes + DLQ_HEADROOM_BYTES

    @property
    def served_lanes(self) -> frozenset[Lane]:
        if self.lanes.strip() == "all":
            return frozenset(Lane)
        if self.lanes.strip() == "none":
            return frozenset()
        return frozenset(Lane(part.strip()) for part in self.lanes.split(",") if part.strip())

    @property
    def producer_linger_s(self) -> float:
        if self.producer_linger_ms is not None:
            return self.producer_linger_ms / 1000.0
        return 0.0 if self.served_lanes == {Lane.CRITICAL} else 0.005

    @property
    def runs_fanout(self) -> bool:
        return Lane.BULK in self.served_lanes if self.fanout is None else self.fanout

    @field_validator("lanes")
    @classmethod
    def _known_lanes(cls, value: str) -> str:
        if value.strip() not in ("all", "none"):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            unknown = [p for p in parts if p not in {lane.value for lane in Lane}]
            if unknown or not parts:
                raise ValueError(f"unknown lanes {unknown}; use 'all' or {[x.value for x in Lane]}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
