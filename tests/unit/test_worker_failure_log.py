"""The message of a worker that failed keeps the cause: the first traceback, not only the
shutdown noise after it (devenv/worker.py)."""

from __future__ import annotations

from devenv.worker import failure_excerpt


def test_a_short_log_is_given_whole() -> None:
    log = "start\nTraceback (most recent call last):\n  boom\nValueError: x"
    assert failure_excerpt(log) == log


def test_the_first_traceback_survives_a_long_tail_of_shutdown_noise() -> None:
    lines = [f"starting {i}" for i in range(50)]
    lines += ["[^--AIOKafkaConsumerThread]: crashed: KafkaConnectionError('bootstrap')"]
    lines += ["Traceback (most recent call last):", "KafkaConnectionError: bootstrap"]
    lines += [f"RuntimeError: Event loop is closed {i}" for i in range(200)]
    excerpt = failure_excerpt("\n".join(lines), head=5, tail=10).splitlines()
    assert excerpt[0].endswith("crashed: KafkaConnectionError('bootstrap')")
    assert excerpt[2] == "KafkaConnectionError: bootstrap"
    assert excerpt[5] == "[...]"
    assert excerpt[-1] == "RuntimeError: Event loop is closed 199"
    assert len(excerpt) == 5 + 1 + 10


def test_a_log_without_a_traceback_gives_its_tail() -> None:
    log = "\n".join(f"line {i}" for i in range(100))
    assert failure_excerpt(log, tail=3).splitlines() == ["line 97", "line 98", "line 99"]
