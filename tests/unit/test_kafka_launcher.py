"""Unit tests for the pure parts of devenv.kafka (no broker is started)."""

from __future__ import annotations

import base64
import contextlib
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv import kafka
from devenv.kafka import (
    KAFKA_VERSION,
    LOG4J_VERSION,
    BrokerUnavailable,
    LocalKafka,
    bootstrap_from_env,
    cache_dir,
    docker_available,
    docker_broker_env,
    ensure_broker_jars,
    kafka_broker,
    new_cluster_id,
    render_log4j2_properties,
    render_pom,
    render_server_properties,
)


def _properties(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys"
    return dict((key, value) for key, value in pairs)


def _executable(folder: Path, name: str, body: str) -> Path:
    """A fake command-line tool: a shell script on a PATH we control."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --------------------------------------------------------------------------- rendering


def test_server_properties_single_node_kraft_on_loopback() -> None:
    props = _properties(render_server_properties(19092, 19093, Path("/tmp/x/data")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == "/tmp/x/data"


def test_server_properties_settings_the_app_relies_on() -> None:
    props = _properties(render_server_properties(1, 2, "/d"))
    assert props["auto.create.topics.enable"] == "false"  # the app creates its topics
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["offsets.topic.num.partitions"] == "10"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"
    assert props["message.max.bytes"] == "2097152"
    assert props["log.retention.hours"] == "6"


def test_docker_env_matches_local_broker_settings() -> None:
    env = docker_broker_env("abc")
    local = _properties(render_server_properties(1, 2, "/d"))
    assert env["CLUSTER_ID"] == "abc"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == local["auto.create.topics.enable"]
    assert env["KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS"] == local["offsets.topic.num.partitions"]
    assert env["KAFKA_MESSAGE_MAX_BYTES"] == local["message.max.bytes"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert all(value for value in env.values())


def test_pom_pins_kafka_and_log4j_binding() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(render_pom())
    deps = {
        dep.findtext("m:artifactId", namespaces=ns): dep.findtext("m:version", namespaces=ns)
        for dep in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert deps == {"kafka_2.13": KAFKA_VERSION, "log4j-slf4j-impl": LOG4J_VERSION}


def test_log4j2_config_writes_server_log(tmp_path: Path) -> None:
    text = render_log4j2_properties(tmp_path)
    assert f"fileName = {tmp_path}/server.log" in text
    assert "rootLogger.level = INFO" in text


def test_cluster_id_is_22_char_base64url_of_16_bytes() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")  # would read as a CLI option
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_error_tails_skip_java_stack_frames(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    log_file.write_text(
        "INFO starting\n"
        "org.apache.kafka.common.KafkaException: Socket server failed to bind\n"
        "\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:615)\n"
        "\t... 16 more\n"
        "INFO shut down\n"
    )
    assert kafka._tail(log_file).splitlines() == [
        "INFO starting",
        "org.apache.kafka.common.KafkaException: Socket server failed to bind",
        "INFO shut down",
    ]
    assert "not written" in kafka._tail(tmp_path / "missing.log")


# --------------------------------------------------------------------------- environment


def test_bootstrap_from_env() -> None:
    assert bootstrap_from_env({"KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"}) == "k1:9092,k2:9092"
    assert bootstrap_from_env({"KAFKA_BOOTSTRAP_SERVERS": "  k1:9092 "}) == "k1:9092"
    assert bootstrap_from_env({"KAFKA_BOOTSTRAP_SERVERS": ""}) is None
    assert bootstrap_from_env({"KAFKA_BOOTSTRAP_SERVERS": "   "}) is None
    assert bootstrap_from_env({}) is None


def test_cache_dir_honours_env(tmp_path: Path) -> None:
    assert cache_dir({"CLARION_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({}) == Path.home() / ".cache" / "clarion"


def test_docker_available_needs_an_answering_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert docker_available() is False  # no CLI at all
    bin_dir = tmp_path / "bin"
    _executable(bin_dir, "docker", "exit 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert docker_available() is False  # CLI present, engine down
    _executable(bin_dir, "docker", "exit 0\n")
    assert docker_available() is True


# --------------------------------------------------------------------------- missing tools


def test_missing_java_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerUnavailable) as info:
        LocalKafka().start()
    message = str(info.value)
    assert "\n" not in message
    assert "'java'" in message
    assert "openjdk-17-jre-headless" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_old_java_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _executable(tmp_path, "java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerUnavailable, match="Java 11") as info:
        LocalKafka().start()
    assert "\n" not in str(info.value)


def test_missing_mvn_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrokerUnavailable) as info:
        ensure_broker_jars()
    message = str(info.value)
    assert "\n" not in message
    assert "'mvn'" in message
    assert "apt-get install maven" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_mvn_failure_shows_its_last_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_CACHE_DIR", str(tmp_path / "cache"))
    _executable(
        tmp_path / "bin", "mvn", "echo 'line one'\necho 'Could not resolve kafka' >&2\nexit 1\n"
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrokerUnavailable, match="Could not resolve kafka"):
        ensure_broker_jars()
    assert not (tmp_path / "cache" / f"kafka-{KAFKA_VERSION}" / "libs" / ".complete").exists()


def test_jars_downloaded_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_CACHE_DIR", str(tmp_path / "cache"))
    calls = tmp_path / "calls"
    # A fake mvn that "downloads" the broker jar into ./libs, as the real one does.
    _executable(
        tmp_path / "bin",
        "mvn",
        f"echo run >> {calls}\nmkdir -p libs\ntouch libs/kafka_2.13-{KAFKA_VERSION}.jar\n",
    )
    # The fake shadows any real mvn; system folders stay for mkdir/touch.
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    libs = ensure_broker_jars()
    assert libs == tmp_path / "cache" / f"kafka-{KAFKA_VERSION}" / "libs"
    assert (libs / ".complete").exists()
    assert (libs.parent / "pom.xml").read_text() == render_pom()
    assert ensure_broker_jars() == libs
    assert calls.read_text().splitlines() == ["run"]


def test_complete_cache_needs_no_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_CACHE_DIR", str(tmp_path))
    libs = tmp_path / "kafka-9.9.9" / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").touch()
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    assert ensure_broker_jars("9.9.9") == libs


# --------------------------------------------------------------------------- kafka_broker()


class _FakeLocalKafka:
    instances: list[_FakeLocalKafka] = []

    def __init__(self) -> None:
        self.stopped = False
        _FakeLocalKafka.instances.append(self)

    def start(self) -> str:
        return "127.0.0.1:1"

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_FakeLocalKafka]]:
    _FakeLocalKafka.instances = []
    monkeypatch.setattr(kafka, "LocalKafka", _FakeLocalKafka)
    monkeypatch.setattr(kafka, "docker_available", lambda timeout=5.0: False)
    yield _FakeLocalKafka.instances


def _fail(*args: object, **kwargs: object) -> bool:
    raise AssertionError("must not be called")


def test_env_bootstrap_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    monkeypatch.setattr(kafka, "docker_available", _fail)
    monkeypatch.setattr(kafka, "LocalKafka", _fail)
    with kafka_broker() as bootstrap:
        assert bootstrap == "broker.example:9092"


def test_blank_env_falls_through_to_local(
    monkeypatch: pytest.MonkeyPatch, fake_local: list[_FakeLocalKafka]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " ")
    with kafka_broker() as bootstrap:
        assert bootstrap == "127.0.0.1:1"
    assert [k.stopped for k in fake_local] == [True]


def test_prefer_local_ignores_env_and_stops_on_error(
    monkeypatch: pytest.MonkeyPatch, fake_local: list[_FakeLocalKafka]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    monkeypatch.setattr(kafka, "docker_available", _fail)
    with pytest.raises(KeyboardInterrupt), kafka_broker(prefer="local") as bootstrap:
        assert bootstrap == "127.0.0.1:1"
        raise KeyboardInterrupt
    assert [k.stopped for k in fake_local] == [True]


def test_docker_failure_falls_back_to_local(
    monkeypatch: pytest.MonkeyPatch, fake_local: list[_FakeLocalKafka]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(kafka, "docker_available", lambda timeout=5.0: True)

    @contextlib.contextmanager
    def broken_docker() -> Iterator[str]:
        raise RuntimeError("image pull failed")
        yield "unreachable"

    monkeypatch.setattr(kafka, "_docker_broker", broken_docker)
    with kafka_broker() as bootstrap:
        assert bootstrap == "127.0.0.1:1"
    with pytest.raises(BrokerUnavailable, match="image pull failed"):
        with kafka_broker(prefer="docker"):
            pass


def test_prefer_must_be_known() -> None:
    with pytest.raises(ValueError), kafka_broker(prefer="cloud"):
        pass
