from logic.commits import CommitFrontier

TP = "deliveries-0"


def frontier(start: int | None, gen: int = 1) -> CommitFrontier[str]:
    f: CommitFrontier[str] = CommitFrontier()
    f.assign([TP], gen)
    f.seeked(TP, start)
    return f


def test_no_commit_before_the_first_record_is_processed_when_the_group_never_committed() -> None:
    f = frontier(None)
    for o in range(10):
        f.read(TP, o, 1)
    assert f.advance(TP, {5, 6, 7, 8, 9}) is None  # 0..4 still in flight
    assert f.advance(TP, set(range(10))) == 10


def test_a_hole_of_one_offset_holds_the_commit() -> None:
    f = frontier(31)
    for o in range(31, 40):
        f.read(TP, o, 1)
    assert f.advance(TP, set(range(32, 40))) is None  # record 31 not processed
    assert f.advance(TP, {31, 32, 33, 35}) == 34
    assert f.advance(TP, {31, 32, 33, 35, 36}) is None  # 34 not processed
    assert f.advance(TP, set(range(31, 40))) == 40


def test_offsets_read_past_do_not_hold_the_commit() -> None:
    # Transaction markers or compacted records: the consumer jumps over offsets that hold
    # no record; the record after the jump still needs its own ack.
    f = frontier(10)
    for o in (12, 13, 17):
        f.read(TP, o, 1)
    # 14..16 hold nothing: the commit may name 17, the next record, not pass it.
    assert f.advance(TP, {12, 13}) == 17
    assert f.advance(TP, {12, 13}) is None  # 17 read, not processed
    assert f.advance(TP, {17}) == 18


def test_the_first_read_sets_the_start_when_nothing_was_committed() -> None:
    f = frontier(None)
    for o in (100, 101, 102):  # log start after retention
        f.read(TP, o, 1)
    assert f.advance(TP, {101, 102}) is None
    assert f.advance(TP, {100, 101, 102}) == 103


def test_acks_from_another_assignment_or_a_stopped_flow_do_not_count() -> None:
    f = frontier(0, gen=3)
    assert f.accepts_ack(TP, 3, flow_active=True)
    assert not f.accepts_ack(TP, 2, flow_active=True)  # read in an older generation
    assert not f.accepts_ack(TP, 3, flow_active=False)  # skipped while the flow is stopped
    f.revoke([TP])
    assert not f.accepts_ack(TP, 3, flow_active=True)
    assert f.advance(TP, {0, 1, 2}) is None


def test_reads_of_another_generation_and_revoked_partitions_are_ignored() -> None:
    f = frontier(5, gen=2)
    f.read(TP, 9, 1)  # stale generation: must not make 5..8 look like a hole
    f.read(TP, 5, 2)
    assert f.advance(TP, {5}) == 6
    assert f.advance(TP, {9}) is None


def test_a_new_assignment_starts_from_its_own_committed_offset() -> None:
    f = frontier(0, gen=1)
    for o in range(5):
        f.read(TP, o, 1)
    assert f.advance(TP, {0, 1, 2}) == 3
    f.revoke([TP])
    f.assign([TP], 2)
    f.seeked(TP, 3)
    for o in range(3, 6):
        f.read(TP, o, 2)
    assert f.advance(TP, {4, 5}) is None
    assert f.advance(TP, {3, 4, 5}) == 6


def test_a_seek_back_keeps_acks_already_counted_and_the_start() -> None:
    f = frontier(10)
    for o in range(10, 15):
        f.read(TP, o, 1)
    assert f.advance(TP, {10, 11}) == 12
    f.seeked(TP, 10)  # committed offset on the broker is behind our frontier
    for o in range(10, 15):
        f.read(TP, o, 1)  # re-reads below the start make no holes
    assert f.advance(TP, {12, 13}) == 14
