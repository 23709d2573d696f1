"""The lost-vs-late verdict the rebalance tests give when an aggregated notification is missing
(tests/integration/windows_diag.py)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.windows_diag import overdue_lines, verdicts


def window(user: str, deadline: float, partition: int = 1) -> dict[str, object]:
    return {
        "recipient_id": user,
        "group_key": "like:photo:p1",
        "lane": "social",
        "partition": partition,
        "deadline": deadline,
        "count": 120,
    }


def test_an_open_window_is_late_with_its_deadline_and_how_far_past_it() -> None:
    got = verdicts(["u-1"], [window("u-1", 1000.0), window("u-2", 900.0)], now=1090.0)
    assert got["u-1"].startswith("late: social window like:photo:p1 open in partition 1")
    assert "120 events" in got["u-1"]
    assert "deadline 1000.000 (+90 s past it)" in got["u-1"]


def test_no_open_window_anywhere_is_lost_unless_a_worker_did_not_answer() -> None:
    assert verdicts(["u-1"], [window("u-2", 900.0)], now=1000.0)["u-1"].startswith("lost:")
    partial = verdicts(["u-1"], [], now=1000.0, complete=False)
    assert partial["u-1"].startswith("unknown:")


def test_overdue_lines_are_picked_per_partition(tmp_path: Path) -> None:
    log = tmp_path / "w4" / "worker.log"
    log.parent.mkdir()
    log.write_text(
        "[INFO] window index rebuilt\n"
        "[WARNING] windows overdue: social partition 2: 1 window(s) ...; cutoff 0.000\n"
        "[WARNING] windows overdue: social partition 12: 1 window(s) ...\n"
    )
    assert overdue_lines([log], {2}) == [
        "w4: [WARNING] windows overdue: social partition 2: 1 window(s) ...; cutoff 0.000"
    ]
    assert len(overdue_lines([log, tmp_path / "absent.log"])) == 2
