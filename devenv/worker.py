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
from typing import Self

import httpx


class WorkerFailed(RuntimeError):
    pass


def failure_excerpt(log: str, *, head: int = 30, tail: int = 40) -> str:
    """What explains a worker's failure in its log: the first traceback or crash line with
    the `head` lines after it (a crash at start-up is followed by shutdown noise, such as
    "Event loop is closed", that pushes the cause out of a plain tail), then the last
    `tail` lines."""
    lines = log.splitlines()
    first = next(
        (i for i, line in enumerate(lines) if "Traceback" in line or "crashed" in line), None
    )
    if first is None or first >= len(lines) - tail:
        return "\n".join(lines[-tail:])
    cause = lines[first : first + head]
    rest = lines[max(first + head, len(lines) - tail) :]
    return "\n".join([*cause, "[...]", *rest] if rest else cause)


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


class ClarionProcess:
    """A `clarion …` child process in its own session, with a log file and an HTTP port
    whose /health answers 200 once it is ready. Subclasses give the command line."""

    kind = "process"
    poll_s = 0.3

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *self.command()],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until /health says ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise WorkerFailed(f"{self.kind} exited early; log:\n{self.failure_log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(self.poll_s)
        raise WorkerFailed(f"{self.kind} not ready after {timeout_s}s; log:\n{self.failure_log()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (a clean stop), SIGKILL if it hangs."""
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
        text = self._log_text()
        return "(no log)" if text is None else "\n".join(text.splitlines()[-lines:])

    def failure_log(self) -> str:
        text = self._log_text()
        return "(no log)" if text is None else failure_excerpt(text)

    def _log_text(self) -> str | None:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerProcess(ClarionProcess):
    """One `clarion worker` subprocess with its own environment, log file and web port.
    Ready once its tables are recovered and it has partitions; SIGTERM makes Faust commit."""

    kind = "worker"

    def __init__(self, env: dict[str, str], log_path: Path, loglevel: str = "info") -> None:
        super().__init__(env, log_path, int(env["CLARION_WEB_PORT"]))
        self.loglevel = loglevel

    @property
    def web_port(self) -> int:
        return self.port

    def command(self) -> list[str]:
        return ["worker", "-l", self.loglevel, "--web-port", str(self.port)]
