"""Run `clarion gateway` as a child process (tests, benchmarks) and stop it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from devenv.worker import ClarionProcess, free_port


class GatewayProcess(ClarionProcess):
    """One `clarion gateway` subprocess. `env` is a worker's environment (same broker, topic
    prefix and token secret); the gateway's id and port are added here. SIGTERM revokes its
    presence lease; kill -9 leaves its users online until the lease runs out."""

    kind = "gateway"
    poll_s = 0.2

    def __init__(
        self, env: dict[str, str], log_path: Path, gateway_id: str, port: int | None = None
    ) -> None:
        port = port or free_port()
        env = {**env, "CLARION_GATEWAY_ID": gateway_id, "CLARION_GATEWAY_PORT": str(port)}
        super().__init__(env, log_path, port)
        self.gateway_id = gateway_id

    def command(self) -> list[str]:
        return ["gateway"]

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.base_url}/health", timeout=5).json())

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        super().wait_ready(timeout_s)

    def stop(self, timeout_s: float = 20.0) -> None:
        super().stop(timeout_s)

    def __enter__(self) -> GatewayProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self
