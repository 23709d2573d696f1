"""Operator views under /admin: every table by key, the open aggregation windows and the lane
lags, as JSON, with an OpenAPI description at /admin/openapi.json.

- Guarded by `Authorization: Bearer <CLARION_ADMIN_TOKEN>` (unset: 403), and the web server
  binds to CLARION_WEB_HOST (127.0.0.1 by default). Contact points are masked.
- A table's rows for a user live in the partition of the user id, also the composite ones
  ("recipient\\x1f…"): Faust writes a row to the changelog partition of the event being
  processed, which is keyed by the recipient. So a view takes the user id, Faust's
  `table_route` forwards the request to the worker that owns that partition, and there the
  view reads the partition's own RocksDB store (a prefix scan for composite keys).
- followers and fanout rows for one key are spread over every partition: each worker scans
  the partitions it owns and the worker asked merges the answers, as for windows and lags.

Adding a table is one line in TABLE_VIEWS.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import faust
from aiohttp import ClientTimeout, web
from faust.types import TP
from faust.web import View
from multidict import CIMultiDict
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from logic import admin_render as render
from logic import lag as lanes_lag
from logic.admin_auth import check_admin
from logic.openapi import Param, Route, build
from logic.partitioning import partition_of
from schemas.admin import (
    ClusterRows,
    ErrorBody,
    LagsResponse,
    OpenAPIDocument,
    TableRows,
    WindowsResponse,
)
from schemas.common import Id
from schemas.digests import DigestWindow
from streams.faust_internals import active_partitions, committed_offset
from streams.topic_loader import loaders_of
from tables import keys, scan

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext

log = logging.getLogger("clarion.admin")

# Counts the forwards of one request: workers that disagree on an owner (mid-rebalance)
# would otherwise bounce it between them (table_route has no such limit).
HOPS_HEADER = "X-Clarion-Admin-Hops"
_MAX_HOPS = 2
_PEER_TIMEOUT = ClientTimeout(total=10)
# Rows read per partition by the windows list: a bound on the time the event loop is held.
_MAX_SCAN = 50_000
_ids: TypeAdapter[str] = TypeAdapter(Id)


class Scope(Enum):
    USER = "the user id's row"  # key = user id
    USER_ROWS = "rows '<user id>\\x1f…' in the user id's partition"
    EVERY_PARTITION = "rows '<key>/…' in every partition, merged across workers"


@dataclass(frozen=True)
class TableView:
    table: faust.Table
    scope: Scope
    render: Callable[[Any], Any]
    about: str
    prefix: Callable[[str], bytes] | None = None  # None: the key is the row's whole key


def _model(value: Any) -> Any:
    return to_jsonable_python(value)


def _contacts(value: Any) -> Any:
    return render.mask_contact_points(to_jsonable_python(value))


def install(app: ClarionApp, ctx: StageContext) -> None:
    _settings, tables = ctx.settings, ctx.tables
    preferences, contacts, inbox, presence = (
        tables.preferences,
        tables.contacts,
        tables.inbox,
        tables.presence,
    )
    digests, buckets, ledger, confirmed = (
        tables.digests,
        tables.buckets,
        tables.ledger,
        tables.confirmed,
    )
    followers, fanout = tables.followers, tables.fanout

    # table name -> how its rows for a key are found and shown. One line per table.
    _USER, _ROWS, _ALL = Scope.USER, Scope.USER_ROWS, Scope.EVERY_PARTITION
    _user_rows = keys.user_prefix
    TABLE_VIEWS: dict[str, TableView] = {
        "preferences": TableView(preferences, _USER, _model, "Preferences"),
        "contacts": TableView(contacts, _USER, _contacts, "contact points, masked"),
        "inbox": TableView(inbox, _USER, _model, "newest in-app items"),
        "presence": TableView(presence, _USER, _model, "gateway id -> epoch"),
        "digests": TableView(digests, _ROWS, _model, "open windows", _user_rows),
        "buckets": TableView(buckets, _ROWS, render.render_struct, "token buckets", _user_rows),
        "ledger": TableView(ledger, _ROWS, render.render_struct, "sent deliveries", _user_rows),
        "confirmed": TableView(
            confirmed, _ROWS, render.render_confirmed, "confirmations", _user_rows
        ),
        "followers": TableView(
            followers, _ALL, render.render_followed, "followers", keys.audience_prefix
        ),
        "fanout": TableView(fanout, _ALL, _model, "fan-out progress", keys.fanout_prefix),
    }

    # -- the guard, shared by every admin view ---------------------------------------------------
    def _error(status: int, reason: str) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="clarion-admin"'} if status == 401 else None
        return web.json_response({"error": reason}, status=status, headers=headers)

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

    async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Token first (nothing is forwarded for an unauthenticated request), then the hop limit,
        then the view with the hop count raised for whatever it forwards."""
        token = _settings.admin_token
        denied = check_admin(
            request.headers.get("Authorization"), token.get_secret_value() if token else None
        )
        if denied is not None:
            return _error(denied.status, denied.reason)
        try:
            hops = int(request.headers.get(HOPS_HEADER, "0"))
        except ValueError:
            hops = _MAX_HOPS
        if hops >= _MAX_HOPS:
            return _error(508, "forwarded too often: the workers disagree on the owner; retry")
        if app.rebalancing or not app.consumer.assignment():
            return _error(503, "worker is starting or rebalancing; retry")
        headers = CIMultiDict(request.headers)
        headers[HOPS_HEADER] = str(hops + 1)
        return await handler(request.clone(headers=headers))

    def _own_url() -> str:
        return str(app.conf.canonical_url).rstrip("/")

    def _owned(table: faust.Table) -> list[int]:
        topic = table.changelog_topic.get_topic_name()
        return sorted(active_partitions(app, topic))

    def _limit(request: web.Request) -> int:
        return render.clamp_limit(request.query.get("limit"))

    def _key(raw: str) -> str:
        return _ids.validate_python(raw)

    # -- table views -----------------------------------------------------------------------------
    def _rows_here(spec: TableView, key: str, partition: int, limit: int) -> tuple[list[Any], bool]:
        """The key's rows in one partition this worker owns: [(row key, rendered value)]."""
        if spec.prefix is None:
            value = spec.table.get(keys.user_key(key))
            return ([] if value is None else [(key, spec.render(value))]), False
        prefix = spec.prefix(key)
        found = scan.items_with_prefix(spec.table, partition, prefix, limit + 1)
        rows = [
            (
                keys.rest_of(k, prefix),
                spec.render(scan.decode_value(spec.table, v)),
            )
            for k, v in found[:limit]
        ]
        return rows, len(found) > limit

    async def _routed_rows(
        name: str, spec: TableView, request: web.Request, key: str
    ) -> web.Response:
        """Runs on the worker that owns the key's partition (table_route sent it here)."""
        partition = partition_of(key, _settings.partitions)
        if partition not in _owned(spec.table):  # the assignor's map and ours disagree: never
            return _error(503, f"partition {partition} is not active on this worker now; retry")
        rows, truncated = _rows_here(spec, key, partition, _limit(request))
        body = TableRows(
            table=name,
            key=key,
            partition=partition,
            served_by=_own_url(),
            rows=[{"key": k, "value": v} for k, v in rows],  # type: ignore[misc]
            truncated=truncated,
        )
        return web.json_response(body.model_dump(mode="json"))

    def _routed_view(name: str, spec: TableView) -> None:
        async def here(view: View, request: web.Request, key: str) -> web.Response:
            return await _routed_rows(name, spec, request, key)

        # Faust's decorator: forwards to the owner of the key's partition, or calls `here`.
        to_owner: Any = app.table_route(table=spec.table, match_info="key")
        routed = to_owner(here)

        async def get(self: View, request: web.Request, key: str) -> web.StreamResponse:
            try:
                key = _key(key)
                _limit(request)
            except (ValidationError, ValueError) as exc:
                return _error(400, f"bad parameter: {_first_error(exc)}")
            return await _guarded(request, lambda req: routed(self, req, key=key))

        view = type(f"Admin_{name}", (View,), {"get": get, "__doc__": spec.about})
        app.page(f"/admin/tables/{name}/{{key}}", name=f"admin.tables.{name}")(view)

    def _cluster_view(name: str, spec: TableView) -> None:
        async def local(request: web.Request, key: str) -> dict[str, Any]:
            limit = _limit(request)
            partitions = _owned(spec.table)
            rows: list[dict[str, Any]] = []
            truncated = False
            for p in partitions:
                found, more = _rows_here(spec, key, p, limit)
                rows += [{"key": k, "value": v, "partition": p} for k, v in found]
                truncated |= more
            return {
                "table": name,
                "key": key,
                "workers": [{"url": _own_url(), "partitions": partitions}],
                "rows": rows,
                "truncated": truncated,
            }

        def merge(
            parts: list[dict[str, Any]], failed: list[dict[str, Any]], request: web.Request
        ) -> dict[str, Any]:
            limit = _limit(request)
            rows = sorted((r for p in parts for r in p["rows"]), key=lambda r: r["key"])
            return ClusterRows(
                table=name,
                key=parts[0]["key"],
                workers=[w for p in parts for w in p["workers"]] + failed,
                rows=rows[:limit],
                truncated=len(rows) > limit or any(p["truncated"] for p in parts),
            ).model_dump(mode="json")

        async def get(self: View, request: web.Request, key: str) -> web.StreamResponse:
            try:
                key = _key(key)
                _limit(request)
            except (ValidationError, ValueError) as exc:
                return _error(400, f"bad parameter: {_first_error(exc)}")
            return await _guarded(
                request, lambda req: _gathered(req, lambda r: local(r, key), merge)
            )

        view = type(f"Admin_{name}", (View,), {"get": get, "__doc__": spec.about})
        app.page(f"/admin/tables/{name}/{{key}}", name=f"admin.tables.{name}")(view)

    def _first_error(exc: Exception) -> str:
        if isinstance(exc, ValidationError):
            return str(exc.errors(include_input=False, include_url=False)[0]["msg"])
        return str(exc)

    # -- views merged across workers -------------------------------------------------------------
    def _peers() -> list[str]:
        """The other workers of the group, from the assignor's table metadata."""
        urls = {str(url).rstrip("/") for url in app.router.tables_metadata()}
        return sorted(urls - {_own_url()})

    async def _ask(url: str, request: web.Request) -> dict[str, Any]:
        """The same view on a peer, for its own partitions only (scope=local)."""
        headers = {
            "Authorization": request.headers.get("Authorization", ""),
            HOPS_HEADER: request.headers.get(HOPS_HEADER, "1"),
        }
        query = {**request.query, "scope": "local"}
        async with app.http_client.get(
            url + request.path, params=query, headers=headers, timeout=_PEER_TIMEOUT
        ) as response:
            if response.status != 200:
                text = await response.text()
                raise RuntimeError(f"HTTP {response.status}: {text[:200]}")
            return dict(await response.json())

    Merge = Callable[[list[dict[str, Any]], list[dict[str, Any]], web.Request], dict[str, Any]]

    async def _gathered(
        request: web.Request,
        local: Callable[[web.Request], Awaitable[dict[str, Any]]],
        merge: Merge,
    ) -> web.Response:
        """This worker's part, and with no `scope=local` the other workers' parts, merged. A
        worker that does not answer is listed with its error; the others still count."""
        here = await local(request)
        if request.query.get("scope") == "local":
            return web.json_response(here)
        parts, failed = [here], []
        peers = _peers()
        answers = await asyncio.gather(*(_ask(u, request) for u in peers), return_exceptions=True)
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning(
                    "admin view %s: worker %s did not answer: %s", request.path, url, answer
                )
                failed.append({"url": url, "partitions": [], "error": str(answer) or repr(answer)})
            else:
                parts.append(answer)
        return web.json_response(merge(parts, failed, request))

    async def _local_windows(request: web.Request) -> dict[str, Any]:
        limit = _limit(request)
        partitions = _owned(digests)
        found: list[dict[str, Any]] = []
        for p in partitions:
            for key, raw in scan.items_with_prefix(digests, p, b"", _MAX_SCAN):
                if keys.digest_progress_partition(key) is not None:  # not a window
                    continue
                value = scan.decode_value(digests, raw)
                if isinstance(value, DigestWindow):
                    found.append(render.window_summary(value, p))
            await asyncio.sleep(0)  # let the agents run between partitions
        return {
            "workers": [{"url": _own_url(), "partitions": partitions}],
            "total": len(found),
            "windows": heapq.nsmallest(limit, found, key=lambda w: w["deadline"]),
        }

    def _merge_windows(
        parts: list[dict[str, Any]], failed: list[dict[str, Any]], request: web.Request
    ) -> dict[str, Any]:
        windows = [w for p in parts for w in p["windows"]]
        return WindowsResponse.model_validate(
            {
                "workers": [w for p in parts for w in p["workers"]] + failed,
                "total": sum(p["total"] for p in parts),
                "windows": heapq.nsmallest(_limit(request), windows, key=lambda w: w["deadline"]),
            }
        ).model_dump(mode="json")

    async def _local_lags(request: web.Request) -> dict[str, Any]:
        consumer = app.consumer
        topics = lanes_lag.lane_topics(_settings.topic_prefix)
        rows: list[dict[str, Any]] = []

        def row(offsets: lanes_lag.PartitionOffsets, position: int | None) -> dict[str, Any]:
            return {
                **offsets._asdict(),
                "position": position,
                "lag": lanes_lag.partition_lag(offsets.highwater, offsets.committed),
                "served_by": _own_url(),
            }

        for tp in sorted(consumer.assignment()):
            if tp.topic in topics:
                # committed: Kafka's "next to read"
                offsets = lanes_lag.PartitionOffsets(
                    tp.topic, tp.partition, consumer.highwater(tp), committed_offset(consumer, tp)
                )
                rows.append(row(offsets, await _position(tp)))
        # The delivery topics read by topic loaders (every sink's), which Faust's consumer
        # does not read: their loaders' offsets (streams/topic_loader.py).
        for loader in loaders_of(app):
            for offsets in loader.offsets():
                if offsets.topic in topics:
                    rows.append(row(offsets, loader.position(offsets.topic, offsets.partition)[0]))
        partitions = sorted({tp.partition for tp in consumer.assignment() if tp.topic in topics})
        return {"workers": [{"url": _own_url(), "partitions": partitions}], "lags": rows}

    async def _position(tp: TP) -> int | None:
        try:
            return await asyncio.wait_for(app.consumer.position(tp), 2.0)  # type: ignore[no-any-return]
        except Exception:  # not fetched yet, or the partition just moved
            return None

    def _merge_lags(
        parts: list[dict[str, Any]], failed: list[dict[str, Any]], request: web.Request
    ) -> dict[str, Any]:
        rows = [r for p in parts for r in p["lags"]]
        return LagsResponse.model_validate(
            {
                "workers": [w for p in parts for w in p["workers"]] + failed,
                "lanes": lanes_lag.by_lane(rows, lanes_lag.lane_topics(_settings.topic_prefix)),
            }
        ).model_dump(mode="json")

    @app.page("/admin/windows", name="admin.windows")
    class OpenWindows(View):  # type: ignore[misc]
        """Open aggregation windows of every worker, soonest deadline first."""

        async def get(self, request: web.Request) -> web.StreamResponse:
            try:
                _limit(request)
            except ValueError as exc:
                return _error(400, f"bad parameter: {exc}")
            return await _guarded(
                request, lambda req: _gathered(req, _local_windows, _merge_windows)
            )

    @app.page("/admin/lags", name="admin.lags")
    class LaneLags(View):  # type: ignore[misc]
        """Consumer lag of every lane's topics, per partition, from every worker."""

        async def get(self, request: web.Request) -> web.StreamResponse:
            return await _guarded(request, lambda req: _gathered(req, _local_lags, _merge_lags))

    for _name, _spec in TABLE_VIEWS.items():
        if _spec.scope is Scope.EVERY_PARTITION:
            _cluster_view(_name, _spec)
        else:
            _routed_view(_name, _spec)

    # -- OpenAPI ---------------------------------------------------------------------------------
    _KEY_DOC = {
        Scope.USER: "User id (the Kafka key).",
        Scope.USER_ROWS: "User id (recipient): every row '<user id>\\x1f…' is returned.",
        Scope.EVERY_PARTITION: "The id before '/' in the row keys.",
    }
    _LIMIT = Param(
        "limit", "query", "Most rows returned (default 100, at most 1000).",
        {"type": "integer", "minimum": 1, "maximum": 1000},
    )  # fmt: skip
    _SCOPE = Param(
        "scope", "query", "`local`: only this worker's partitions (what workers ask each other).",
        {"type": "string", "enum": ["local"]},
    )  # fmt: skip

    def routes() -> list[Route]:
        out = [
            Route(
                f"/admin/tables/{name}/{{key}}",
                f"{name}: {spec.about}",
                f"Table `{name}`: {spec.scope.value}. "
                + (
                    "Routed to the worker that owns the key's partition."
                    if spec.scope is not Scope.EVERY_PARTITION
                    else "Gathered from every worker."
                ),
                ClusterRows if spec.scope is Scope.EVERY_PARTITION else TableRows,
                (
                    Param("key", "path", _KEY_DOC[spec.scope]),
                    _LIMIT,
                    *((_SCOPE,) if spec.scope is Scope.EVERY_PARTITION else ()),
                ),
            )
            for name, spec in TABLE_VIEWS.items()
        ]
        out.append(
            Route(
                "/admin/windows",
                "Open aggregation windows",
                "The digests table's open windows on every worker, soonest deadline first "
                "(each worker scans the partitions it owns; a worker that does not answer is "
                "listed with its error).",
                WindowsResponse,
                (_LIMIT, _SCOPE),
            )
        )
        out.append(
            Route(
                "/admin/lags",
                "Lane lags",
                "Per lane (notifications.<lane> and deliveries.<channel>.<lane>): each "
                "assigned partition's highwater, committed offset, fetch position and lag, "
                "from every worker.",
                LagsResponse,
                (_SCOPE,),
            )
        )
        out.append(
            Route(
                "/admin/openapi.json",
                "This description",
                "OpenAPI 3.1 description of the admin views. Not guarded: it holds no data.",
                OpenAPIDocument,
                secured=False,
            )
        )
        return out

    _document: dict[str, Any] | None = None

    @app.page("/admin/openapi.json", name="admin.openapi")
    class OpenAPI(View):  # type: ignore[misc]
        async def get(self, request: web.Request) -> web.Response:
            nonlocal _document
            if _document is None:
                _document = build(
                    "Clarion admin views",
                    "1",
                    "Operator views of a Clarion worker's tables, open windows and lane lags. "
                    "Send `Authorization: Bearer <CLARION_ADMIN_TOKEN>`; contact points are "
                    "masked.",
                    routes(),
                    ErrorBody,
                )
            return web.json_response(_document)
