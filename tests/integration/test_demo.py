"""The README's main command (`clarion demo`) works: traffic in, notifications out."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


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
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--duration", "25", "--rate", "40"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Clarion is running" in done.stdout
    assert "curl -N 'http://127.0.0.1:" in done.stdout
    assert "/inbox?token=" in done.stdout  # alice's inbox page
    # alice's feed is shown through the real SSE endpoint…
    assert done.stdout.count("alice · in-app") >= 1
    # …and every other channel reached its provider (the sandbox) through the real SDKs.
    summary = next(
        line for line in done.stdout.splitlines() if line.startswith("providers accepted in all:")
    )
    for provider in ("fcm", "apns", "sendgrid", "twilio", "webhook"):
        assert f"'{provider}'" in summary, summary
    # The worker it started has exited (it logs its own shutdown last).
    assert "Stopping" in (tmp_path / "var/demo/worker.log").read_text()[-20000:]
