"""Run `clarion worker` as a child process (tests, benchmarks, the demo) and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


class WorkerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_env(
    bootstrap: str,
    *,
    prefix: str,
    app_id: str,
    partitions: int,
    workdir: Path,
    web_port: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one `clarion worker`: its broker, topic prefix and consumer group,
    and under `workdir` its own RocksDB folder and outbox. `extra` adds CLARION_* settings."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CLARION_TOPIC_PREFIX": prefix,
        "CLARION_APP_ID": app_id,
        "CLARION_PARTITIONS": str(partitions),
        "CLARION_DATA_DIR": str(workdir / "data"),
        "CLARION_WEB_PORT": str(web_port or free_port()),
        "CLARION_OUTBOX_PATH": str(workdir / "outbox.jsonl"),
        **(extra or {}),
    }


class WorkerProcess:
    """One `clarion worker` subprocess with its own environment, log file and web port."""

    def __init__(self, env: dict[str, str], log_path: Path, loglevel: str = "info") -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.loglevel = loglevel
        self.web_port = int(env["CLARION_WEB_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.cli",
                "worker",
                "-l",
                self.loglevel,
                "--web-port",
                str(self.web_port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until /health says ready (tables recovered, partitions assigned)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise WorkerFailed(f"worker exited early; log tail:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise WorkerFailed(f"worker not ready after {timeout_s}s; log tail:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop (SIGTERM → Faust commits and closes), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: no commit, no flush, no goodbye (crash tests)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
