"""A data directory belongs to one Kafka cluster (streams/datadir.py): a worker pointed at
another one refuses to start with one line naming the directory to remove."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from faust.tables.recovery import E_PERSISTED_OFFSET

from streams.datadir import MARKER, DataDirMismatch, check_cluster, consistency_message

ROOT = Path(__file__).resolve().parents[2]


def test_first_start_records_the_cluster_and_the_same_cluster_passes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    check_cluster(data, "cluster-A", "localhost:9092")
    assert (data / MARKER).read_text().strip() == "cluster-A"
    check_cluster(data, "cluster-A", "localhost:9092")  # no error


def test_another_cluster_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    check_cluster(data, "cluster-A", "old:9092")
    with pytest.raises(DataDirMismatch) as err:
        check_cluster(data, "cluster-B", "new:9092")
    line = str(err.value)
    assert "\n" not in line
    assert f"remove {data}" in line and "cluster-A" in line and "cluster-B" in line
    assert (data / MARKER).read_text().strip() == "cluster-A"  # not overwritten


def test_a_directory_from_before_the_record_is_adopted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "v1" / "tables").mkdir(parents=True)
    check_cluster(data, "cluster-A", "localhost:9092")
    assert (data / MARKER).read_text().strip() == "cluster-A"


def test_consistency_error_becomes_one_line() -> None:
    detail = E_PERSISTED_OFFSET.format("TP(topic='x-changelog', partition=0)", 12, 3)
    line = consistency_message(Path("/var/d"), detail)
    assert "\n" not in line
    assert "(12 > 3)" in line and "remove /var/d" in line


def test_the_app_exits_with_that_line_on_a_consistency_error(tmp_path: Path) -> None:
    """What Faust's table recovery raises reaches the app's _crash: exit 2, one line."""
    code = (
        "from faust.exceptions import ConsistencyError\n"
        "from faust.tables.recovery import E_PERSISTED_OFFSET\n"
        "from streams.app import build_app\n"
        "from streams.settings import get_settings\n"
        "app = build_app(get_settings())\n"
        "app._crash(ConsistencyError(E_PERSISTED_OFFSET.format('TP(x, 0)', 12, 3)))\n"
        "print('still running')\n"
    )
    env = {**os.environ, "CLARION_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "still running" not in done.stdout
    lines = [ln for ln in done.stderr.splitlines() if "CLARION_DATA_DIR" in ln]
    assert len(lines) == 1 and f"remove {tmp_path / 'data'}" in lines[0]
