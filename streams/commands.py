"""Clarion's own subcommands on the Faust CLI: `clarion token`, `gateway`, `demo`, `replay`.

They need the settings only, never the worker's app: each is a Faust `Command` (not an
`AppCommand`), registered on Faust's CLI when this module is imported, and streams/cli.py
runs them without building the app (no agents, sinks or provider SDKs are loaded)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import click
from faust.cli import Command, argument, option

from logic.replay import Mode, RangeRequest, ReplayError, parse_time
from logic.tokens import issue_token
from streams.replay import ReplayOptions
from streams.settings import get_settings

# Run by streams/cli.py without the app.
APP_FREE = frozenset({"token", "gateway", "demo", "replay"})


class ClarionCommand(Command):  # type: ignore[misc]
    """Base of the commands below; being abstract, this class is not a command itself (Faust
    registers only the subclasses of a subclass of Command)."""

    abstract: ClassVar[bool] = True


def command(*options: Any) -> Callable[[Callable[..., Awaitable[None]]], type[Command]]:
    """What `@app.command(*options)` does (faust AppCommand.from_handler), without the app."""

    def _inner(fun: Callable[..., Awaitable[None]]) -> type[Command]:
        fields = {
            "run": fun,
            "__doc__": fun.__doc__,
            "__name__": fun.__name__,
            "__qualname__": fun.__qualname__,
            "__module__": fun.__module__,
            "__wrapped__": fun,
            "options": options,
        }
        return type(fun.__name__, (ClarionCommand,), fields)

    return _inner


@command(argument("user_id"), option("--ttl", type=int, default=None, help="seconds"))
async def token(self: Command, user_id: str, ttl: int | None) -> None:
    """Print a signed in-app token for USER_ID (for curl, the demo, or a test client)."""
    s = get_settings()
    lifetime = timedelta(seconds=ttl or s.inapp_token_ttl_s)
    print(
        issue_token(user_id, s.inapp_token_secret.get_secret_value(), lifetime, datetime.now(UTC))
    )


@command(
    option("--host", default=None, help="bind address (default CLARION_GATEWAY_HOST)"),
    option("--port", type=int, default=None, help="port (default CLARION_GATEWAY_PORT)"),
    option("--id", "gateway_id", default=None, help="stable name (default CLARION_GATEWAY_ID)"),
)
async def gateway(
    self: Command, host: str | None, port: int | None, gateway_id: str | None
) -> None:
    """Hold in-app client connections (SSE) only: no processing, no consumer group. Tells
    the workers who is connected (presence) and streams them their in-app items."""
    from sinks.gateway import serve

    s = get_settings()
    await serve(s, host or s.gateway_host, port or s.gateway_port, gateway_id or s.gateway_id)


@command(
    option("--duration", type=float, default=None, help="stop after N seconds (default: Ctrl-C)"),
    option("--rate", type=float, default=20.0, help="sample events per second"),
)
async def demo(self: Command, duration: float | None, rate: float) -> None:
    """Run everything locally: a Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set),
    one worker, and sample traffic; print how to watch notifications arrive."""
    from devenv.demo import run_demo

    await run_demo(duration=duration, rate=rate)


@command(
    argument("topic"),
    option(
        "--mode",
        type=click.Choice([m.value for m in Mode]),
        default=Mode.DRY_RUN.value,
        show_default=True,
        help="dry-run: count only; state-only: rebuild tables; redeliver: run the pipeline",
    ),
    option("--partition", "partitions", type=int, multiple=True, help="repeatable; default all"),
    option("--from-offset", type=int, default=None, help="first offset (inclusive)"),
    option("--to-offset", type=int, default=None, help="end offset (exclusive)"),
    option("--since", default=None, help="ISO 8601 time (no zone = UTC): first record at/after"),
    option("--until", default=None, help="ISO 8601 time: stop before records at/after it"),
    option("--rate", type=float, default=None, help="at most N records/s (default: no limit)"),
    option("--restart", is_flag=True, default=False, help="ignore the checkpoint, start over"),
    option("--json", "as_json", is_flag=True, default=False, help="print the summary as JSON"),
    option("--no-progress", is_flag=True, default=False, help="no progress bar"),
)
async def replay(
    self: Command,
    topic: str,
    mode: str,
    partitions: tuple[int, ...],
    from_offset: int | None,
    to_offset: int | None,
    since: str | None,
    until: str | None,
    rate: float | None,
    restart: bool,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Re-read TOPIC (a catalog name: events.*, dlq.events, preferences, contacts) into the
    pipeline. Re-running the same command resumes an interrupted replay."""
    from streams.replay import run_replay

    try:
        options = ReplayOptions(
            topic=topic,
            mode=Mode(mode),
            partitions=partitions,
            range=RangeRequest(
                from_offset,
                to_offset,
                None if since is None else parse_time(since),
                None if until is None else parse_time(until),
            ),
            restart=restart,
            rate=rate,
            progress=not no_progress,
        )
    except ReplayError as exc:
        print(f"clarion replay: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    code = await run_replay(get_settings(), options, as_json)
    if code:
        raise SystemExit(code)
