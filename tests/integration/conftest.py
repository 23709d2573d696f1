"""Integration fixtures: one real Kafka broker per test session, real `clarion worker`
subprocesses isolated by their own topic prefix and app id."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from devenv.kafka import kafka_broker
from devenv.sandbox import Sandbox
from devenv.worker import WorkerProcess, worker_env
from tests.integration.kafka_io import collect

TEST_SECRET = "integration-test-secret-0123456789abcdef"
# The packaged rules with 3-5 s aggregation windows and limits no test reaches by accident.
FAST_RULES = Path(__file__).parent / "rules_fast.toml"

# `make soak`: these run with a busy loop on every core beside them (CLARION_SOAK_HOG=1).
# Listed here, not marked in each module, so the set is seen in one place.
SOAK_TESTS = (
    "test_three_workers.py::test_kill_one_of_three_workers_and_add_a_fourth",
    "test_three_workers.py::test_windows_flush_when_partitions_come_back_to_their_first_worker",
    "test_delivery_crash.py::test_kill_9_with_deliveries_in_flight_loses_nothing",
    "test_delivery_crash.py::test_kill_9_one_of_two_workers_only_sends_in_flight_go_out_twice",
    "test_outage.py::test_everything_is_delivered_after_an_outage_in_order_where_promised",
    "test_aggregation.py::test_kill_9_mid_window_still_one_notification_with_the_full_count",
    "test_failover.py::test_critical_lane_gap_after_kill_9_with_a_standby",
)
SOAK_HOG_ENV = "CLARION_SOAK_HOG"
# The drills' size: `make test` runs them quick (the same kill, outage or move, a fifth of the
# records, shorter windows and outages) so the suite stays short; `make soak` runs them at
# full size (CLARION_DRILL_SCALE=full), where the guarantees' figures come from.
DRILL_SCALE_ENV = "CLARION_DRILL_SCALE"
DRILL_FULL = os.environ.get(DRILL_SCALE_ENV, "quick") == "full"
T = TypeVar("T")


def drill_size(full: T, quick: T) -> T:
    """`full` in `make soak` (CLARION_DRILL_SCALE=full), else `quick`."""
    return full if DRILL_FULL else quick


# A busy loop that ends by itself once its parent (pytest) is gone, even after a kill -9.
_HOG = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(2_000_000):\n"
    "        pass\n"
)


# The longest modules first: `make test` spreads whole modules over two pytest processes
# (pytest-xdist, --dist loadfile), and a long module started last would run alone at the end.
LONG_MODULES = (
    "test_three_workers.py",
    "test_delivery_crash.py",
    "test_aggregation.py",
    "test_demo.py",
    "test_fanout.py",
    "test_failover.py",
    "test_replay.py",
    "test_commit_guard.py",
    "test_outage.py",
    "test_foreign_producers.py",
    "test_lane_split_delivery.py",
    "test_global_pacing.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "soak: crash, outage and rebalance tests that `make soak` runs beside a CPU hog "
        f"({SOAK_HOG_ENV}=1)",
    )
    _share_one_broker(config)


def _share_one_broker(config: pytest.Config) -> None:
    """Under pytest-xdist (make test), the controlling process starts the one broker and the
    test processes it spawns find it in KAFKA_BOOTSTRAP_SERVERS (the session fixture then
    uses it as it would a broker of the environment). Without xdist the fixture starts it."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", default=None):
        return
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return
    stack = contextlib.ExitStack()
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = stack.enter_context(kafka_broker())

    def stop() -> None:
        os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        stack.close()

    config.add_cleanup(stop)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)  # every module here needs the broker
        if item.nodeid.endswith(SOAK_TESTS):
            item.add_marker(pytest.mark.soak)

    def weight(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        if "tests/integration/" not in item.nodeid:
            return len(LONG_MODULES) + 1
        return LONG_MODULES.index(module) if module in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=weight)  # stable: the order within a module stays


@pytest.fixture(autouse=True)
def cpu_hog(request: pytest.FixtureRequest) -> Iterator[int]:
    """With CLARION_SOAK_HOG=1, a soak test runs beside one busy-loop process per core, at
    normal priority (an honest busy machine: the workers get no better share than the hog).
    They are stopped in teardown, also when the test fails. Yields how many run."""
    if os.environ.get(SOAK_HOG_ENV) != "1" or request.node.get_closest_marker("soak") is None:
        yield 0
        return
    started = time.monotonic()
    hogs = [
        subprocess.Popen([sys.executable, "-c", _HOG], stdin=subprocess.DEVNULL)
        for _ in range(os.cpu_count() or 1)
    ]
    cpu_s = 0.0
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            _, status, usage = os.wait4(hog.pid, 0)  # reaps it; its CPU time is a figure
            hog.returncode = status
            cpu_s += usage.ru_utime + usage.ru_stime
        wall = time.monotonic() - started
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"cpu hog: {len(hogs)} busy loops took {cpu_s:.0f} CPU-s in {wall:.0f} s "
                f"({cpu_s / wall / len(hogs):.0%} of their cores)"
            )


# A drill's figures (lost, duplicates, gaps, window counts): one line each.
Figure = Callable[[str], None]
FIGURE = "figure"


@pytest.fixture
def figure(request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]) -> Figure:
    """Report a figure: printed at once past pytest's capture (make soak runs with -s and
    greps them), and kept on the test's report, so that under pytest-xdist (make test), where
    a test process's terminal is not shown, the run's summary lists them ("figures")."""

    def report(line: str) -> None:
        request.node.user_properties.append((FIGURE, line))
        with capfd.disabled():
            print(f"\n{line}", flush=True)

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not terminalreporter.config.getoption("numprocesses", default=None):
        return  # printed as they came
    lines = [
        f"{report.nodeid.rsplit('::', 1)[-1]}: {value}"
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", None) == "call"
        for name, value in report.user_properties
        if name == FIGURE
    ]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


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
    wait: bool = True,
    **extra_env: str,
) -> Pipeline:
    """A `clarion worker` on its own topic prefix and group (or the given ones, to join a
    group). With wait=False it is only started: start several, then `ready(...)` them, so
    they boot side by side (as workers of one group do in production)."""
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
    pipeline = Pipeline(bootstrap, prefix, app_id, worker, Path(env["CLARION_OUTBOX_PATH"]))
    if wait:
        ready(pipeline)
    return pipeline


def ready(*pipelines: Pipeline) -> None:
    """Wait until every worker answers /health; stop them all if one never does."""
    try:
        for p in pipelines:
            p.worker.wait_ready()
    except BaseException:
        for p in pipelines:
            p.worker.stop()
        raise


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


async def wait_for_changelog(p: Pipeline, table: str, key: str, timeout_s: float = 30) -> None:
    """Block until the worker has applied an update of `key` to `table` (its changelog has the
    key), so the next event is routed with it."""
    got = await collect(
        p.bootstrap,
        [f"{p.app_id}-{table}-changelog"],
        until=lambda kept: len(kept) >= 1,
        keep=lambda r: r.key == key.encode(),
        timeout_s=timeout_s,
    )
    assert got, f"{table} update for {key} never reached the table"
