"""A worker given a data directory recorded for another Kafka cluster refuses to start, at
once and with one line saying which directory to remove (streams/datadir.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from devenv.worker import WorkerFailed, WorkerProcess, worker_env
from streams.datadir import MARKER

pytestmark = pytest.mark.integration


def test_worker_refuses_a_data_dir_of_another_cluster(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    env = worker_env(
        kafka_bootstrap, prefix=f"t{run}.", app_id=f"clarion-t{run}", partitions=2,
        workdir=tmp_path,
    )  # fmt: skip
    data = Path(env["CLARION_DATA_DIR"])
    data.mkdir(parents=True)
    (data / MARKER).write_text("an-earlier-cluster\n")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        with pytest.raises(WorkerFailed, match="exited early"):
            worker.wait_ready(timeout_s=60)
        assert worker.proc is not None and worker.proc.returncode == 2
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    lines = [ln for ln in log.splitlines() if "CLARION_DATA_DIR" in ln]
    assert len(lines) == 1, log[-2000:]
    assert "an-earlier-cluster" in lines[0] and f"remove {data}" in lines[0]
    assert "Traceback" not in log
    assert not (data / "v1").exists()  # refused before any table was opened
