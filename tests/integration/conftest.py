"""Integration fixtures: one real Kafka broker per test session, real `clarion worker`
subprocesses isolated by their own topic prefix and app id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devenv.kafka import kafka_broker
from devenv.sandbox import Sandbox
from devenv.worker import WorkerProcess, worker_env

TEST_SECRET = "integration-test-secret-0123456789abcdef"
# The packaged rules with 3-5 s aggregation windows and limits no test reaches by accident.
FAST_RULES = Path(__file__).parent / "rules_fast.toml"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with kafka_broker() as bootstrap:
        yield bootstrap


@dataclass
class Pipeline:
    bootstrap: str
    prefix: str
    app_id: str
    worker: WorkerProcess
    outbox: Path

    def topic(self, name: str) -> str:
        return self.prefix + name

    @property
    def url(self) -> str:
        return self.worker.base_url


def start_pipeline(
    bootstrap: str,
    tmp: Path,
    partitions: int = 4,
    prefix: str | None = None,
    app_id: str | None = None,
    **extra_env: str,
) -> Pipeline:
    run = uuid.uuid4().hex[:8]
    prefix, app_id = prefix or f"t{run}.", app_id or f"clarion-t{run}"
    env = worker_env(
        bootstrap,
        prefix=prefix,
        app_id=app_id,
        partitions=partitions,
        workdir=tmp,
        extra={
            "CLARION_INAPP_TOKEN_SECRET": TEST_SECRET,
            "CLARION_RULES_PATH": str(FAST_RULES),
            **extra_env,
        },
    )
    worker = WorkerProcess(env, tmp / "worker.log").start()
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return Pipeline(bootstrap, prefix, app_id, worker, Path(env["CLARION_OUTBOX_PATH"]))


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One worker shared by a test module; tests keep apart by using their own user ids."""
    p = start_pipeline(kafka_bootstrap, tmp_path_factory.mktemp("pipeline"))
    try:
        yield p
    finally:
        p.worker.stop()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The provider sandbox, one per delivery test module (see delivery_env.py)."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def uid() -> str:
    """A user id no other test uses."""
    return f"u-{uuid.uuid4().hex[:10]}"
