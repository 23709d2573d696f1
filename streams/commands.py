"""Clarion's own subcommands on the Faust CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from faust.cli import AppCommand, argument, option

from logic.tokens import issue_token
from streams.app import app


@app.command(argument("user_id"), option("--ttl", type=int, default=None, help="seconds"))
async def token(self: AppCommand, user_id: str, ttl: int | None) -> None:
    """Print a signed in-app token for USER_ID (for curl, the demo, or a test client)."""
    s = app.settings
    lifetime = timedelta(seconds=ttl or s.inapp_token_ttl_s)
    print(
        issue_token(user_id, s.inapp_token_secret.get_secret_value(), lifetime, datetime.now(UTC))
    )


@app.command(
    option("--duration", type=float, default=None, help="stop after N seconds (default: Ctrl-C)"),
    option("--rate", type=float, default=20.0, help="sample events per second"),
)
async def demo(self: AppCommand, duration: float | None, rate: float) -> None:
    """Run everything locally: a Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set),
    one worker, and sample traffic; print how to watch notifications arrive."""
    from devenv.demo import run_demo

    await run_demo(duration=duration, rate=rate)
