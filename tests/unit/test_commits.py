from logic.commits import CommitFrontier

TP = "deliveries-0"


def frontier(start: int | None, gen: int = 1) -> CommitFrontier[str]:
    f: CommitFrontier[str] = CommitFrontier()
    f.assign([TP], gen)
    f.seeked(TP, start)
    return f


def hand_on(f: CommitFrontier[str], offsets: list[int], gen: int = 1) -> None:
    """The client fetches `offsets` and Faust hands every one of them to the streams."""
    f.fetched(TP, offsets, gen)
    for o in offsets:
        assert f.read(TP, o, gen) is None


def test_no_commit_before_the_first_record_is_processed_when_the_group_never_committed() -> None:
    f = frontier(None)
    hand_on(f, list(range(10)))
    assert f.advance(TP, {5, 6, 7, 8, 9}) is None  # 0..4 still in flight
    assert f.advance(TP, set(range(10))) == 10


def test_a_hole_of_one_offset_holds_the_commit() -> None:
    f = frontier(31)
    hand_on(f, list(range(31, 40)))
    assert f.advance(TP, set(range(32, 40))) is None  # record 31 not processed
    assert f.advance(TP, {31, 32, 33, 35}) == 34
    assert f.advance(TP, {31, 32, 33, 35, 36}) is None  # 34 not processed
    assert f.advance(TP, set(range(31, 40))) == 40


def test_offsets_read_past_do_not_hold_the_commit() -> None:
    # Transaction markers or compacted records: the consumer jumps over offsets that hold
    # no record; the record after the jump still needs its own ack.
    f = frontier(10)
    hand_on(f, [12, 13, 17])  # the fetch from 10 jumped over 10, 11 and 14..16
    # 14..16 hold nothing: the commit may name 17, the next record, not pass it.
    assert f.advance(TP, {12, 13}) == 17
    assert f.advance(TP, {12, 13}) is None  # 17 read, not processed
    assert f.advance(TP, {17}) == 18


def test_the_first_read_sets_the_start_when_nothing_was_committed() -> None:
    f = frontier(None)
    hand_on(f, [100, 101, 102])  # log start after retention
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
    f.fetched(TP, [9], 1)  # stale generation: must not make 5..8 look like a hole
    f.read(TP, 9, 1)
    hand_on(f, [5], gen=2)
    assert f.advance(TP, {5}) == 6
    assert f.advance(TP, {9}) is None


def test_a_new_assignment_starts_from_its_own_committed_offset() -> None:
    f = frontier(0, gen=1)
    hand_on(f, list(range(5)))
    assert f.advance(TP, {0, 1, 2}) == 3
    f.revoke([TP])
    f.assign([TP], 2)
    f.seeked(TP, 3)
    hand_on(f, list(range(3, 6)), gen=2)
    assert f.advance(TP, {4, 5}) is None
    assert f.advance(TP, {3, 4, 5}) == 6


def test_a_seek_back_keeps_acks_already_counted_and_the_start() -> None:
    f = frontier(10)
    hand_on(f, list(range(10, 15)))
    assert f.advance(TP, {10, 11}) == 12
    f.seeked(TP, 10)  # committed offset on the broker is behind our frontier
    hand_on(f, list(range(10, 15)))  # re-reads below the start make no holes
    assert f.advance(TP, {12, 13}) == 14


def test_a_record_fetched_and_not_handed_on_is_read_again_never_committed_past() -> None:
    # Faust drops fetched records when their partition leaves its active set while a batch
    # is handed out: the streams see 40..50 then 55.. (issue 10's failover loss).
    f = frontier(40)
    f.fetched(TP, list(range(40, 60)), 1)
    for o in range(40, 51):
        assert f.read(TP, o, 1) is None
    assert f.read(TP, 55, 1) == 51  # 51..54 were fetched: read again from 51
    assert f.advance(TP, set(range(40, 51)) | {55}) == 51  # never past 51
    f.refetched(TP, 51)
    f.fetched(TP, list(range(51, 60)), 1)
    for o in range(51, 60):
        assert f.read(TP, o, 1) is None
    assert f.advance(TP, set(range(51, 60))) == 60


def test_the_tail_of_a_batch_never_handed_on_is_reported() -> None:
    f = frontier(10)
    f.fetched(TP, list(range(10, 16)), 1)
    for o in (10, 11, 12):
        f.read(TP, o, 1)
    assert f.not_handed_on() == [(TP, 13)]
    f.refetched(TP, 13)
    assert f.not_handed_on() == []
    assert f.advance(TP, {10, 11, 12}) == 13
    assert f.advance(TP, {10, 11, 12, 14, 15}) is None


def test_after_a_refetch_the_start_stays_and_the_fetch_position_is_known() -> None:
    f = frontier(10)
    hand_on(f, [10, 11, 12])
    f.refetched(TP, 12)  # records 10, 11 may still be in flight
    hand_on(f, [12, 13])
    assert f.advance(TP, {12, 13}) is None
    assert f.advance(TP, {10, 11, 12, 13}) == 14


def test_every_seek_and_assignment_gives_a_new_epoch() -> None:
    f = frontier(0)
    first = f.epoch(TP)
    f.seeked(TP, 5)
    second = f.epoch(TP)
    f.refetched(TP, 7)
    third = f.epoch(TP)
    f.assign([TP], 2)
    assert len({first, second, third, f.epoch(TP)}) == 4
    assert f.epochs() == {TP: f.epoch(TP)}


def test_a_fetch_across_a_rebalance_makes_no_hole() -> None:
    f = frontier(10, gen=2)
    f.fetched(TP, [20], 1)  # began in generation 1: where it began is unknown
    hand_on(f, [21, 22], gen=2)  # no hole 10..20 inferred from it
    assert f.advance(TP, {21, 22}) is None
