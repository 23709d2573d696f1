"""One assembly point (streams/app.py build_app): every app is built from its settings, shares
no state with another, and nothing is registered or configured when a module is imported.
The commands that need no worker (`clarion token`, …) never build it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from logic.tokens import verify_token
from schemas.common import Channel, Lane
from streams.app import ClarionApp, build_app
from streams.settings import Settings
from streams.topic_loader import loaders_of

ROOT = Path(__file__).resolve().parents[2]
# What the worker loads and a command must not: the stages and the providers' SDKs.
WORKER_ONLY = ("agents", "sinks.deliver", "sinks.providers.factory", "streams.topics")
PROVIDER_SDKS = ("firebase_admin", "aioapns", "sendgrid", "twilio")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLARION_", "KAFKA_")) and k != "PYTHONPATH"
    }
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _shape(app: ClarionApp) -> dict[str, Any]:
    return {
        "agents": sorted(app.agents),
        "loaders": sorted(lo.group_id for lo in loaders_of(app)),
        "topics": sorted(t for a in app.agents.values() for t in a.channel.topics),
        "tables": sorted(app.tables),
        "views": sorted(app.web.views),
    }


def test_two_apps_are_independent_and_alike(tmp_path: Path) -> None:
    a = build_app(Settings(data_dir=tmp_path / "a"))
    b = build_app(Settings(data_dir=tmp_path / "b"))
    assert a is not b
    assert _shape(a) == _shape(b)
    assert len(a.agents) > 10 and "route.critical" in a.agents
    # The ingress topics are read by topic loaders: one per lane, one for the re-keyed copies.
    ingest = [lo for lo in loaders_of(a) if "-ingest-" in lo.group_id]
    assert sorted(g.group_id.rsplit("-", 1)[1] for g in ingest) == sorted(
        ["critical", "high", "social", "bulk", "rekeyed"]
    )
    assert not any(t.startswith("events.") for ag in a.agents.values() for t in ag.channel.topics)
    # Every agent reads a topic of its own app, and each app has its own tables and state.
    assert all(agent.channel.app is a for agent in a.agents.values())
    assert all(agent.channel.app is b for agent in b.agents.values())
    assert all(a.tables[name] is not b.tables[name] for name in a.tables)
    for service in ("topics", "tables", "guard", "positions", "windows", "hub", "pending"):
        assert getattr(a.ctx, service) is not getattr(b.ctx, service), service
    assert a.ctx.windows.app is a and b.ctx.windows.app is b
    a.ctx.windows.stale = False
    assert b.ctx.windows.stale


def test_each_app_follows_its_own_settings(tmp_path: Path) -> None:
    critical = build_app(Settings(data_dir=tmp_path / "c", lanes="critical", topic_prefix="x."))
    everything = build_app(Settings(data_dir=tmp_path / "e"))
    assert "route.critical" in critical.agents and "route.bulk" not in critical.agents
    assert "digest.ticks" not in critical.agents and "fanout.plan" not in critical.agents
    assert {"route.bulk", "digest.ticks", "fanout.plan"} <= set(everything.agents)
    assert list(critical.agents["route.critical"].channel.topics) == ["x.notifications.critical"]
    # A critical-only worker sends at once; the others batch for a few ms; a setting wins.
    assert (critical.conf.producer_linger, everything.conf.producer_linger) == (0.0, 0.005)
    assert Settings(lanes="critical", producer_linger_ms=2).producer_linger_s == 0.002
    # Only a worker serving the critical lane makes its in-app deliveries in place.
    assert critical.ctx.in_place.get(Channel.IN_APP, Lane.CRITICAL) is not None
    assert everything.ctx.in_place.get(Channel.IN_APP, Lane.SOCIAL) is None
    main = build_app(Settings(data_dir=tmp_path / "m", lanes="high,social,bulk"))
    assert main.ctx.in_place.get(Channel.IN_APP, Lane.CRITICAL) is None


def test_the_module_attribute_is_built_once_on_first_use() -> None:
    code = (
        "import streams.app as m\n"
        "assert '_built' in vars(m) and m._built is None\n"
        "first = m.app\n"
        "assert m.app is first and m._built is first\n"
        "from faust.cli.base import find_app\n"
        "assert find_app('streams.app') is first\n"  # how `faust -A streams.app` finds it
        "print(first.conf.id, sorted(first.agents)[0])\n"
    )
    done = _run(code, CLARION_APP_ID="lazy-app", CLARION_DATA_DIR="/tmp/wt-app-lazy")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["lazy-app", "confirm"]


def test_the_token_command_builds_no_app_and_loads_no_stage_or_sdk() -> None:
    code = (
        "import atexit, json, sys\n"
        "def loaded():\n"
        "    names = sorted(sys.modules)\n"
        "    print('MODULES ' + json.dumps(names), file=sys.stderr, flush=True)\n"
        "atexit.register(loaded)\n"
        "sys.argv = ['clarion', 'token', 'alice', '--ttl', '60']\n"
        "from streams.cli import main\n"
        "main()\n"
    )
    secret = "s" * 40
    done = _run(code, CLARION_INAPP_TOKEN_SECRET=secret)
    assert done.returncode == 0, done.stderr
    assert verify_token(done.stdout.strip(), secret) == "alice"
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("MODULES "))
    modules = json.loads(line.removeprefix("MODULES "))
    assert "streams.commands" in modules  # the command did run from there
    for name in (*WORKER_ONLY, *PROVIDER_SDKS, "streams.app"):
        assert not [m for m in modules if m == name or m.startswith(name + ".")], name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["token", "alice"], "token"),
        (["-l", "info", "worker", "--web-port", "1"], "worker"),
        (["--loglevel=info", "replay", "events.social"], "replay"),
        (["--debug", "--json", "gateway"], "gateway"),
        (["-A", "streams.app", "agents"], "agents"),
        (["--help"], None),
    ],
)
def test_the_command_name_is_found_past_the_global_options(
    argv: list[str], expected: str | None
) -> None:
    from streams.cli import subcommand

    assert subcommand(argv) == expected


def test_importing_a_module_reads_no_settings_and_registers_nothing() -> None:
    """Every module of the stages' packages imported in a process with no Clarion environment:
    no settings object (Clarion's or the providers') is made, no module holds an app or
    settings, and no app was built."""
    code = r"""
import importlib, json, pkgutil, sys
import pydantic_settings

made = []
original = pydantic_settings.BaseSettings.__init__
def spy(self, *args, **kwargs):
    made.append(type(self).__name__)
    original(self, *args, **kwargs)
pydantic_settings.BaseSettings.__init__ = spy

names = []
for package in ("agents", "sinks", "tables", "streams"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
for name in names:
    importlib.import_module(name)
holders = []
for name in names:
    attrs = vars(sys.modules[name])
    found = [a for a in ("app", "_settings", "settings", "senders", "index", "hub") if a in attrs]
    if found:
        holders.append([name, found])
import streams.app
print(json.dumps({"made": made, "holders": holders, "count": len(names),
                  "built": streams.app._built is not None}))
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["count"] > 40
    assert result["made"] == []
    assert result["holders"] == []
    assert result["built"] is False
