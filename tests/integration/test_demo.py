"""The README's main command (`clarion demo`) works: traffic in, notifications out, and every
channel reaches its provider early, by design (devenv/traffic.py SHOWCASE), not by luck."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devenv.demo import CHANNELS_WITHIN_S, PROVIDERS

pytestmark = pytest.mark.integration

# Long enough that the demo is still producing when the last channel is due.
DURATION_S = CHANNELS_WITHIN_S + 5


def test_demo_delivers_sample_traffic_and_stops_cleanly(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CLARION_TOPIC_PREFIX": f"demo{run}.",
        "CLARION_APP_ID": f"clarion-demo-{run}",
        "CLARION_PARTITIONS": "4",
    }
    command = ["demo", "--duration", str(DURATION_S), "--rate", "40"]
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Clarion is running" in out
    assert "curl -N 'http://127.0.0.1:" in out
    assert "/inbox?token=" in out  # alice's inbox page
    assert "profiles not in the tables yet" not in out, out[-3000:]
    # alice's feed is shown through the real SSE endpoint (the showcase messages her)…
    assert out.count("alice · in-app") >= 1
    # …and every other channel reached its provider (the sandbox) through the real SDKs,
    # each within the demo's promise after the first events.
    first = {
        m["provider"]: float(m["s"])
        for m in re.finditer(r"^first (?P<provider>\w+) send (?P<s>[\d.]+) s after", out, re.M)
    }
    late = {p: first.get(p) for p in PROVIDERS if first.get(p, 1e9) > CHANNELS_WITHIN_S}
    assert not late, f"not sent within {CHANNELS_WITHIN_S} s: {late}\n{out[-3000:]}"
    assert "every channel reached its provider within" in out
    summary = next(
        line for line in out.splitlines() if line.startswith("providers accepted in all:")
    )
    for provider in PROVIDERS:
        assert f"'{provider}'" in summary, summary
    # The worker it started has exited (it logs its own shutdown last).
    assert "Stopping" in (tmp_path / "var/demo/worker.log").read_text()[-20000:]
