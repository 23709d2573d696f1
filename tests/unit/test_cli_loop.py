"""streams/cli.use_loop: the worker's event loop chosen by CLARION_EVENT_LOOP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest
import uvloop

from streams.cli import use_loop
from streams.settings import Settings


@pytest.fixture
def restore_policy() -> Iterator[None]:
    saved = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(saved)


def test_uvloop_makes_the_loops_uvloop(restore_policy: None) -> None:
    use_loop("uvloop")
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_leaves_asyncios_loop(restore_policy: None) -> None:
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    use_loop("asyncio")
    loop = asyncio.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_default_is_uvloop_and_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLARION_EVENT_LOOP", raising=False)
    assert Settings().event_loop == "uvloop"
    monkeypatch.setenv("CLARION_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings()


def test_the_worker_app_runs_on_the_chosen_loop() -> None:
    # A fresh interpreter: the app's loop is made after use_loop, as in streams.cli.main.
    code = (
        "from streams.app import app; from streams.cli import use_loop; "
        "use_loop(app.settings.event_loop); print(type(app.loop).__module__)"
    )
    for name, module in (("uvloop", "uvloop"), ("asyncio", "asyncio.unix_events")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**_env(), "CLARION_EVENT_LOOP": name},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()[-1]
        assert out == module, (name, out)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
