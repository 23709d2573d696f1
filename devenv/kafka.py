"""A real Apache Kafka broker for tests, benchmarks and the demo. Never a mock.

``kafka_broker()`` yields a bootstrap address ("host:port"), trying in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` if set: an existing cluster, nothing is started;
2. a Docker container (``apache/kafka``) when a Docker engine answers;
3. a local JVM broker (``LocalKafka``) run from the Kafka jars on Maven Central,
   which needs only ``java`` (17+) and, for the first download, ``mvn``.

``python -m devenv.kafka`` starts one and prints ``KAFKA_BOOTSTRAP_SERVERS=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType

__all__ = [
    "BOOTSTRAP_ENV",
    "KAFKA_IMAGE",
    "KAFKA_VERSION",
    "LOG4J_VERSION",
    "BrokerUnavailable",
    "LocalKafka",
    "bootstrap_from_env",
    "cache_dir",
    "docker_available",
    "docker_broker_env",
    "ensure_broker_jars",
    "kafka_broker",
    "main",
    "new_cluster_id",
    "render_log4j2_properties",
    "render_pom",
    "render_server_properties",
]

# The single pin for the broker everywhere (docker-compose.yml must match).
# 4.4.0 is not usable yet: kafka-tools-api:4.4.0 is missing from Maven Central.
KAFKA_VERSION = "4.3.1"
# SLF4J binding so the broker's own log lines actually reach log4j2 (and a file).
LOG4J_VERSION = "2.25.4"
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
MIN_JAVA = 17

log = logging.getLogger("clarion.kafka")

# Broker settings shared by the local JVM broker and the Docker container, so
# both behave the same. Topics are never auto-created: the app creates its own.
_BROKER_SETTINGS: dict[str, str] = {
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "log.retention.hours": "6",
    "message.max.bytes": "2097152",
}

_JAVA_HINT = (
    "Install OpenJDK 17 (apt-get install openjdk-17-jre-headless) "
    f"or set {BOOTSTRAP_ENV} to an existing cluster."
)
_MVN_HINT = f"Install Maven (apt-get install maven) or set {BOOTSTRAP_ENV} to an existing cluster."


class BrokerUnavailable(RuntimeError):
    """No Kafka broker could be provided; the message says what to do."""


# --------------------------------------------------------------------------- pure helpers


def bootstrap_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The bootstrap address from ``KAFKA_BOOTSTRAP_SERVERS``, or None if unset/blank."""
    value = (os.environ if environ is None else environ).get(BOOTSTRAP_ENV, "").strip()
    return value or None


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where downloaded broker jars live: ``$CLARION_CACHE_DIR`` or ``~/.cache/clarion``."""
    env = os.environ if environ is None else environ
    configured = env.get("CLARION_CACHE_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "clarion"


def new_cluster_id() -> str:
    """A KRaft cluster id: base64url of a random UUID, no padding (22 chars)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        # Same rule as Kafka's Uuid.randomUuid: a leading "-" reads as a CLI option.
        if not cluster_id.startswith("-"):
            return cluster_id


def render_pom(version: str = KAFKA_VERSION, log4j_version: str = LOG4J_VERSION) -> str:
    """A minimal pom whose runtime dependencies are exactly a runnable broker."""
    return f"""\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>clarion</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j_version}</version></dependency>
  </dependencies>
</project>
"""


def render_server_properties(port: int, controller_port: int, data_dir: Path | str) -> str:
    """server.properties for a single-node KRaft broker+controller on loopback."""
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir}",
        *(f"{key}={value}" for key, value in _BROKER_SETTINGS.items()),
    ]
    return "\n".join(lines) + "\n"


def render_log4j2_properties(logs_dir: Path | str) -> str:
    """log4j2 config: INFO+ to ``<logs_dir>/server.log``; WARN+ also to stdout."""
    return f"""\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {logs_dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
appender.out.filter.threshold.type = ThresholdFilter
appender.out.filter.threshold.level = WARN
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
rootLogger.appenderRef.out.ref = STDOUT
"""


def docker_broker_env(cluster_id: str | None = None) -> dict[str, str]:
    """Environment for the ``apache/kafka`` container (its KAFKA_* convention).

    Clients use PLAINTEXT on 9092 (advertised as the mapped host port, set at
    start time); the broker talks to itself over BROKER on 9093, which is only
    reachable inside the container.
    """
    env = {
        "CLUSTER_ID": cluster_id or new_cluster_id(),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9094",
    }
    for key, value in _BROKER_SETTINGS.items():
        env["KAFKA_" + key.upper().replace(".", "_")] = value
    return env


# --------------------------------------------------------------------------- environment probes


def docker_available(timeout: float = 5.0) -> bool:
    """True if a Docker engine answers ``docker info`` within ``timeout`` seconds."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerUnavailable(
            f"Cannot start a local Kafka broker: 'java' ({MIN_JAVA}+) not found on PATH. "
            + _JAVA_HINT
        )
    major = _java_major(java)
    if major is not None and major < MIN_JAVA:
        raise BrokerUnavailable(
            f"Cannot start a local Kafka broker: {java} is Java {major}, "
            f"Kafka {KAFKA_VERSION} needs {MIN_JAVA}+. {_JAVA_HINT}"
        )
    return java


def _java_major(java: str) -> int | None:
    """Major version of a JVM (8 for "1.8.0_x"), or None if it cannot be told."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


_STACK_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more)")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path.name}: not written)"
    # Java stack frames crowd out the lines that say what went wrong.
    kept = [line for line in text.splitlines() if not _STACK_FRAME.match(line)]
    return "\n".join(kept[-lines:]) or f"({path.name}: empty)"


def _free_loopback_ports(count: int) -> list[int]:
    # Hold all sockets open until every port is read, so the ports differ.
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _metadata_ok(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if the broker answers a metadata request (via aiokafka's admin client).

    Runs its own event loop in a fresh thread, because the caller may already be
    inside a running loop (pytest-asyncio) where ``asyncio.run`` is forbidden.
    """
    # aiokafka ships no type information.
    from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]

    async def probe() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000)
        )
        try:
            await admin.start()
            await admin.list_topics()
        finally:
            await admin.close()

    answered: list[bool] = []

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(probe(), timeout))
            answered.append(True)
        except Exception:  # any failure just means "not ready yet"
            answered.append(False)

    thread = threading.Thread(target=run, name="clarion-kafka-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    return answered == [True]


# --------------------------------------------------------------------------- broker jars


def ensure_broker_jars(version: str = KAFKA_VERSION) -> Path:
    """The folder of jars that run a Kafka broker, downloaded once with Maven.

    Cached in ``<cache_dir>/kafka-<version>/libs``; a ``.complete`` marker says the
    download finished. A file lock keeps concurrent processes (pytest-xdist, a
    benchmark started during tests) from downloading at the same time.
    """
    root = cache_dir() / f"kafka-{version}"
    libs = root / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if marker.exists():  # another process finished while we waited
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerUnavailable(
                f"Cannot fetch the Kafka {version} broker jars: 'mvn' not found on PATH. "
                + _MVN_HINT
            )
        (root / "pom.xml").write_text(render_pom(version))
        shutil.rmtree(libs, ignore_errors=True)  # leftovers of an interrupted download
        log.info("Downloading Kafka %s broker jars with Maven into %s (once)", version, libs)
        command = [
            mvn, "-q", "-B", "dependency:copy-dependencies",
            "-DoutputDirectory=libs", "-DincludeScope=runtime",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, cwd=root, capture_output=True, text=True, timeout=1800, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerUnavailable(
                f"Maven took over 30 min to fetch Kafka {version} jars into {libs}"
            ) from exc
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise BrokerUnavailable(
                f"Maven could not fetch the Kafka {version} broker jars "
                f"(exit {result.returncode}, in {root}):\n{output}"
            )
        if not (libs / f"kafka_2.13-{version}.jar").exists():
            raise BrokerUnavailable(f"Maven finished but {libs} has no kafka_2.13-{version}.jar")
        marker.touch()
    return libs


# --------------------------------------------------------------------------- local JVM broker


def _terminate_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, wait ``grace`` seconds, then SIGKILL it."""

    def signal_group(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("Kafka (pid %d) ignored SIGTERM for %.0f s; killing it", proc.pid, grace)
        signal_group(signal.SIGKILL)
        proc.wait()
    except BaseException:  # e.g. a second Ctrl-C while waiting: never leave it behind
        signal_group(signal.SIGKILL)
        proc.wait()
        raise


class LocalKafka:
    """A single-node KRaft Kafka broker run as a child JVM on 127.0.0.1.

    ``start()`` returns the bootstrap address; ``stop()`` (idempotent, also run at
    interpreter exit) kills the JVM and removes its temp folder unless
    ``CLARION_KEEP_KAFKA_DIR=1``. After ``stop()`` the attributes still describe
    the stopped broker. Use as ``with LocalKafka() as kafka: kafka.bootstrap``.
    """

    def __init__(
        self,
        version: str = KAFKA_VERSION,
        *,
        startup_timeout: float = 60.0,
        stop_grace: float = 20.0,
    ) -> None:
        self.version = version
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.bootstrap: str | None = None
        self.port: int | None = None
        self.pid: int | None = None
        self.workdir: Path | None = None
        self.log_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._keep_dir = False
        self._lock = threading.RLock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        with self._lock:
            if self.running and self.bootstrap is not None:
                return self.bootstrap
            java = _find_java()
            libs = ensure_broker_jars(self.version)
            started = time.monotonic()
            self.bootstrap = self.port = self.pid = None  # forget any previous run
            self.workdir = Path(tempfile.mkdtemp(prefix="clarion-kafka-"))
            self.log_dir = self.workdir / "logs"
            self._keep_dir = False
            atexit.register(self.stop)
            try:
                self._launch(java, libs)
            except BrokerUnavailable:
                self._keep_dir = True  # its logs explain the failure
                self.stop()
                raise
            except BaseException:
                self.stop()
                raise
            assert self.bootstrap is not None
            log.info(
                "Kafka %s on %s (pid %s), logs in %s",
                self.version,
                self.bootstrap,
                self.pid,
                self.log_dir,
            )
            log.debug("Kafka started in %.1f s", time.monotonic() - started)
            return self.bootstrap

    def _launch(self, java: str, libs: Path) -> None:
        assert self.workdir is not None and self.log_dir is not None
        data_dir = self.workdir / "data"
        data_dir.mkdir()
        self.log_dir.mkdir()
        port, controller_port = _free_loopback_ports(2)
        properties = self.workdir / "server.properties"
        properties.write_text(render_server_properties(port, controller_port, data_dir))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(render_log4j2_properties(self.log_dir))
        jvm_props = [f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.log_dir}"]
        classpath = str(libs / "*")  # the JVM expands the wildcard itself

        fmt_log = self.log_dir / "format.log"
        with open(fmt_log, "wb") as out:
            formatted = subprocess.run(
                [java, *jvm_props, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", new_cluster_id(), "-c", str(properties)],
                stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False,
            )  # fmt: skip
        if formatted.returncode != 0:
            raise BrokerUnavailable(
                f"Kafka storage format failed (exit {formatted.returncode}); "
                f"files in {self.workdir}:\n{_tail(fmt_log)}"
            )

        command = [
            java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", *jvm_props,
            "-cp", classpath, "kafka.Kafka", str(properties),
        ]  # fmt: skip
        setpriv = shutil.which("setpriv")
        if (
            sys.platform.startswith("linux")
            and setpriv
            and threading.current_thread() is threading.main_thread()
        ):
            # If this Python dies without running atexit (SIGKILL, unhandled SIGTERM),
            # the kernel sends the JVM SIGTERM. Only from the main thread: the signal
            # fires when the *thread* that spawned the child exits.
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        stdout_log = self.log_dir / "stdout.log"
        with open(stdout_log, "wb") as out:
            # Own session/process group: stop() can signal the whole group, and a
            # terminal's Ctrl-C reaches only Python, which then stops it in order.
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip
        self.pid = self._proc.pid
        self.port = port
        bootstrap = f"127.0.0.1:{port}"

        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerUnavailable(
                    f"Kafka broker exited with code {code} during startup; "
                    f"files in {self.workdir}\n"
                    f"--- stdout.log ---\n{_tail(stdout_log)}\n"
                    f"--- server.log ---\n{_tail(self.log_dir / 'server.log')}"
                )
            # Cheap TCP check first: aiokafka logs an error for every refused connection.
            if _port_open("127.0.0.1", port) and _metadata_ok(bootstrap):
                break
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka broker did not answer on {bootstrap} "
                    f"within {self.startup_timeout:.0f} s; files in {self.workdir}\n"
                    f"--- server.log ---\n{_tail(self.log_dir / 'server.log')}"
                )
            time.sleep(0.2)
        self.bootstrap = bootstrap

    def stop(self) -> None:
        """Stop the broker and remove its files. Safe to call any number of times."""
        with self._lock:
            atexit.unregister(self.stop)
            proc, self._proc = self._proc, None
            if proc is not None:
                _terminate_group(proc, self.stop_grace)
            workdir, self._keep_dir, keep = self.workdir, False, self._keep_dir
            if workdir is None or not workdir.exists():
                return
            if keep or os.environ.get("CLARION_KEEP_KAFKA_DIR") == "1":
                log.info("Kafka files kept in %s", workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- Docker broker

_DOCKER_START_SCRIPT = "/tmp/clarion-start.sh"
_DOCKER_SCRIPT_END = "# clarion-end"


@contextlib.contextmanager
def _docker_broker(startup_timeout: float = 120.0) -> Iterator[str]:
    """``apache/kafka`` in a container via testcontainers; removed on exit.

    Not testcontainers' ``KafkaContainer``: that one drives Confluent's
    ``/etc/confluent/docker`` scripts, which the apache/kafka image lacks. The
    advertised address needs the mapped port, known only once the container
    runs, so the container waits for a start script that we copy in then.
    """
    from testcontainers.core.container import DockerContainer

    wait_for_script = (
        f"while ! grep -q '^{_DOCKER_SCRIPT_END}' {_DOCKER_START_SCRIPT} 2>/dev/null; "
        f"do sleep 0.1; done; exec bash {_DOCKER_START_SCRIPT}"
    )
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_exposed_ports(9092)
        .with_envs(**docker_broker_env())
        .with_command(["bash", "-c", wait_for_script])
    )
    try:
        container.start()
        bootstrap = f"{container.get_container_host_ip()}:{container.get_exposed_port(9092)}"
        script = (
            "#!/bin/bash\n"
            f'export KAFKA_ADVERTISED_LISTENERS="PLAINTEXT://{bootstrap},BROKER://$(hostname):9093"\n'
            "exec /etc/kafka/docker/run\n"
            f"{_DOCKER_SCRIPT_END}\n"
        )
        container.copy_into_container(script.encode(), _DOCKER_START_SCRIPT, 0o755)
        deadline = time.monotonic() + startup_timeout
        while not _metadata_ok(bootstrap):
            container.reload()
            if container.status not in ("created", "running"):
                logs = b"".join(container.get_logs()).decode(errors="replace")
                tail = "\n".join(logs.splitlines()[-20:])
                raise BrokerUnavailable(f"Kafka container exited during startup:\n{tail}")
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka container did not answer on {bootstrap} within {startup_timeout:.0f} s"
                )
            time.sleep(0.5)
        log.info(
            "Kafka %s on %s (Docker container %s)",
            KAFKA_VERSION,
            bootstrap,
            container.get_container_id()[:12],
        )
        yield bootstrap
    finally:
        container.stop()


# --------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def kafka_broker(*, prefer: str | None = None) -> Iterator[str]:
    """Yield the bootstrap address ("host:port") of a real Kafka broker.

    ``prefer=None``: ``KAFKA_BOOTSTRAP_SERVERS``, else Docker if an engine answers
    (falling back to the local JVM broker if the container fails), else the local
    JVM broker. ``prefer="docker"`` or ``"local"`` forces that launcher and ignores
    the environment variable (meant for testing the launchers themselves).
    Whatever was started is stopped on exit, including on exceptions and Ctrl-C.
    """
    if prefer not in (None, "docker", "local"):
        raise ValueError(f"prefer must be None, 'docker' or 'local', not {prefer!r}")
    if prefer is None:
        existing = bootstrap_from_env()
        if existing is not None:
            log.info("Using the Kafka cluster at %s (from %s)", existing, BOOTSTRAP_ENV)
            yield existing
            return
    with contextlib.ExitStack() as stack:
        bootstrap: str | None = None
        if prefer == "docker" or (prefer is None and docker_available()):
            try:
                bootstrap = stack.enter_context(_docker_broker())
            except Exception as exc:
                if prefer == "docker":
                    raise BrokerUnavailable(f"Cannot start Kafka in Docker: {exc}") from exc
                log.warning("Kafka in Docker failed (%s); starting a local broker instead", exc)
        if bootstrap is None:
            kafka = LocalKafka()
            stack.callback(kafka.stop)
            bootstrap = kafka.start()
        yield bootstrap


def main(argv: list[str] | None = None) -> int:
    """``python -m devenv.kafka``: run a broker until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m devenv.kafka",
        description=f"Run a real Kafka {KAFKA_VERSION} broker and print its address.",
    )
    parser.add_argument(
        "--prefer", choices=["docker", "local"], default=None,
        help=f"force a launcher (default: {BOOTSTRAP_ENV}, else Docker, else local JVM)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Turn SIGTERM/SIGHUP into the Ctrl-C path so the broker is stopped in order.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    try:
        with kafka_broker(prefer=args.prefer) as bootstrap:
            print(f"{BOOTSTRAP_ENV}={bootstrap}", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        log.info("Stopped")
        return 0
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
