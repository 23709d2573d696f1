"""A worker's data directory belongs to one Kafka cluster.

RocksDB tables and their changelog offsets in CLARION_DATA_DIR only make sense against the
cluster whose changelog topics they mirror. Pointed at another cluster (a new dev broker, a
`clarion demo` run after the broker was replaced), Faust either starts with the old state
silently or stops later with a ConsistencyError and a traceback. The first start records the
cluster id in the directory; a later start against another cluster refuses with one line
that says what to do.
"""

from __future__ import annotations

from pathlib import Path

MARKER = "clarion-cluster-id"


class DataDirMismatch(RuntimeError):
    """The data directory holds state of another Kafka cluster."""


def remedy(data_dir: Path) -> str:
    return (
        f"remove {data_dir} (rm -rf {data_dir}) or set CLARION_DATA_DIR to an empty "
        "directory, then start again; the tables are rebuilt from the changelog topics"
    )


def check_cluster(data_dir: Path, cluster_id: str, bootstrap: str) -> None:
    """Record `cluster_id` in `data_dir` on first use; raise DataDirMismatch if the directory
    was recorded for another cluster. A directory from before this check (tables, no record)
    is adopted: nothing says which cluster it came from."""
    marker = data_dir / MARKER
    try:
        recorded = marker.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(cluster_id + "\n")
        return
    if recorded != cluster_id:
        raise DataDirMismatch(
            f"CLARION_DATA_DIR {data_dir} holds tables of Kafka cluster {recorded}, but "
            f"{bootstrap} is cluster {cluster_id}: {remedy(data_dir)}"
        )


def consistency_message(data_dir: Path, detail: str) -> str:
    """The one line for Faust's ConsistencyError (the changelog topics have less data than
    the local tables: topics deleted or recreated, or a data directory from elsewhere)."""
    text = " ".join(detail.split())
    first = text.split(". ", 1)[0].rstrip(".") or "ConsistencyError"
    return (
        f"CLARION_DATA_DIR {data_dir} does not match the changelog topics on the broker "
        f"({first}): {remedy(data_dir)}"
    )
