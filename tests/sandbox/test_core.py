import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from devenv.sandbox import Sandbox


def mail(to: str = "a@example.com") -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": "clarion@example.com"},
        "subject": "hi",
        "content": [{"type": "text/plain", "value": "hello"}],
    }


def post_mail(sb: Sandbox, to: str = "a@example.com", **kw: object) -> httpx.Response:
    return httpx.post(
        f"{sb.sendgrid_url}/v3/mail/send",
        json=mail(to),
        headers={"Authorization": "Bearer SG.x", "Idempotency-Key": f"k-{to}"},
        **kw,  # type: ignore[arg-type]
    )


async def test_async_context_gives_a_live_server_and_stops_it() -> None:
    async with Sandbox() as sb:
        url = sb.base_url
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/_sandbox/sends")).json() == {"sends": []}
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/_sandbox/sends")


def test_accepted_sends_are_recorded_in_process_and_over_http(sandbox: Sandbox) -> None:
    assert post_mail(sandbox, "a@example.com").status_code == 202
    assert post_mail(sandbox, "b@example.com").status_code == 202
    [rec] = sandbox.sends("sendgrid", target="b@example.com")
    assert rec.idempotency_key == "k-b@example.com"
    assert rec.payload["subject"] == "hi"
    got = httpx.get(f"{sandbox.base_url}/_sandbox/sends", params={"provider": "sendgrid"}).json()
    assert [s["target"] for s in got["sends"]] == ["a@example.com", "b@example.com"]
    assert got["sends"][0]["idempotency_key"] == "k-a@example.com"
    assert httpx.get(f"{sandbox.base_url}/_sandbox/sends?provider=fcm").json() == {"sends": []}


def test_fault_applies_n_times_then_stops_and_failures_are_not_recorded(
    sandbox: Sandbox,
) -> None:
    r = httpx.post(
        f"{sandbox.base_url}/_sandbox/faults",
        json={"provider": "sendgrid", "status": 503, "times": 2},
    )
    assert r.status_code == 201
    assert [post_mail(sandbox).status_code for _ in range(3)] == [503, 503, 202]
    assert len(sandbox.sends("sendgrid")) == 1


def test_target_rule_wins_and_others_are_untouched(sandbox: Sandbox) -> None:
    sandbox.inject("sendgrid", target="bad@example.com", status=400)
    assert post_mail(sandbox, "bad@example.com").status_code == 400
    assert post_mail(sandbox, "good@example.com").status_code == 202


def test_faults_can_be_listed_and_cleared(sandbox: Sandbox) -> None:
    sandbox.inject("sendgrid", status=500)
    assert len(httpx.get(f"{sandbox.base_url}/_sandbox/faults").json()["faults"]) == 1
    assert httpx.delete(f"{sandbox.base_url}/_sandbox/faults").status_code == 204
    assert post_mail(sandbox).status_code == 202


def test_bad_fault_is_refused(sandbox: Sandbox) -> None:
    for bad in ({"provider": "sendgird"}, {"provider": "fcm", "stauts": 500}):
        assert httpx.post(f"{sandbox.base_url}/_sandbox/faults", json=bad).status_code == 400


def test_latency_delays_a_successful_send(sandbox: Sandbox) -> None:
    sandbox.inject("sendgrid", latency_ms=300, times=1)
    start = time.monotonic()
    assert post_mail(sandbox).status_code == 202
    assert time.monotonic() - start >= 0.3
    assert len(sandbox.sends()) == 1


def test_timeout_fault_hangs_until_client_gives_up_and_does_not_block_stop() -> None:
    sb = Sandbox()
    sb.start()
    try:
        sb.inject("sendgrid", timeout=True)
        with pytest.raises(httpx.ReadTimeout):
            post_mail(sb, timeout=0.5)
        # A request still hanging inside the server must not stall shutdown.
        hung = threading.Thread(target=lambda: post_mail(sb, timeout=30), daemon=True)
        hung.start()
        time.sleep(0.2)
    finally:
        start = time.monotonic()
        sb.stop()
    assert time.monotonic() - start < 5
    assert sb.sends() == []


def test_module_entry_point_prints_urls_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "devenv.sandbox"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            urls = json.loads(proc.stdout.readline())
            assert httpx.get(f"{urls['control']}/sends").json() == {"sends": []}
            assert Path(urls["apns_ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert not Path(urls["apns_ca_file"]).exists()
        finally:
            if proc.poll() is None:
                proc.kill()
