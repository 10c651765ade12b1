"""A subscription's resume and gap decisions, as pure functions: no socket, store or loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.fanout import MAX_REPLAY
from gateway.resume import Replay, Snapshot, classify, merge, resume_plan


def ev(seq: int, source: str = "live") -> dict:
    return {"auction_id": "a1", "seq": seq, "source": source}


def seqs(events: list[dict]) -> list[int]:
    return [e["seq"] for e in events]


# ---- resume_plan --------------------------------------------------------------------------


def test_no_since_gets_a_snapshot_at_the_current_seq() -> None:
    assert resume_plan(None, 7, MAX_REPLAY) == Snapshot(7)
    assert resume_plan(None, 0, MAX_REPLAY) == Snapshot(0)


def test_a_since_within_reach_replays_from_it() -> None:
    assert resume_plan(3, 7, MAX_REPLAY) == Replay(3)
    assert resume_plan(0, 0, MAX_REPLAY) == Replay(0)
    assert resume_plan(7, 7, MAX_REPLAY) == Replay(7)  # up to date: nothing to replay


def test_a_since_from_the_future_gets_a_snapshot() -> None:
    assert resume_plan(8, 7, MAX_REPLAY) == Snapshot(7)


def test_replay_reaches_back_max_replay_events_and_no_further() -> None:
    assert resume_plan(0, 10, 10) == Replay(0)
    assert resume_plan(0, 11, 10) == Snapshot(11)
    assert resume_plan(5, 5 + MAX_REPLAY, MAX_REPLAY) == Replay(5)
    assert resume_plan(5, 6 + MAX_REPLAY, MAX_REPLAY) == Snapshot(6 + MAX_REPLAY)


@given(st.one_of(st.none(), st.integers(0, 3_000)), st.integers(0, 3_000), st.integers(0, 2_000))
def test_a_replay_never_reads_ahead_or_too_far_back(since, current, max_replay) -> None:
    plan = resume_plan(since, current, max_replay)
    if isinstance(plan, Replay):
        assert since is not None and plan.since == since
        assert 0 <= current - since <= max_replay
    else:
        assert plan == Snapshot(current)
        assert since is None or since > current or current - since > max_replay


# ---- classify -----------------------------------------------------------------------------


def test_classify() -> None:
    assert classify(5, 6) == "next"
    assert classify(5, 5) == "duplicate"
    assert classify(5, 1) == "duplicate"
    assert classify(5, 7) == "gap"
    assert classify(0, 1) == "next"
    assert classify(0, 100) == "gap"


# ---- merge --------------------------------------------------------------------------------


def test_merge_sends_the_log_then_the_buffer_past_it() -> None:
    result = merge(2, [ev(3, "log"), ev(4, "log")], [ev(6), ev(5), ev(4), ev(3)])
    assert seqs(result.to_send) == [3, 4, 5, 6]
    assert [e["source"] for e in result.to_send] == ["log", "log", "live", "live"]
    assert result.last == 6
    assert result.buffered == []
    assert result.gap is False


def test_merge_keeps_events_past_a_gap_and_asks_for_another_read() -> None:
    result = merge(2, [ev(3, "log")], [ev(9), ev(6), ev(4)])
    assert seqs(result.to_send) == [3, 4]
    assert result.last == 4
    assert seqs(result.buffered) == [6, 9]  # sorted, kept for the next round
    assert result.gap is True


def test_merge_drops_duplicates_and_events_already_sent() -> None:
    result = merge(5, [], [ev(3), ev(6), ev(6), ev(5), ev(7), ev(6)])
    assert seqs(result.to_send) == [6, 7]
    assert result.last == 7
    assert result.buffered == []
    assert result.gap is False


def test_merge_with_nothing_changes_nothing() -> None:
    result = merge(4, [], [])
    assert result.to_send == [] and result.buffered == [] and not result.gap
    assert result.last == 4


def test_merge_ignores_a_log_that_does_not_run_on_from_last() -> None:
    result = merge(4, [ev(6, "log"), ev(7, "log")], [])
    assert result.to_send == [] and result.last == 4 and not result.gap


@given(
    last=st.integers(0, 20),
    n=st.integers(0, 30),
    data=st.data(),
)
def test_one_merge_sends_a_consecutive_run_and_loses_nothing(last, n, data) -> None:
    """The log holds last+1..last+k (what the store had when read); the live feed brought any
    multiset of seqs (old ones too) in any order. What is sent runs on from `last` with no
    hole and no repeat; every newer event is kept; with the whole range logged, no gap."""
    k = data.draw(st.integers(0, n), label="logged")
    log = [ev(s, "log") for s in range(last + 1, last + k + 1)]
    live = data.draw(st.lists(st.integers(max(0, last - 3), last + n), max_size=60), label="live")
    result = merge(last, log, [ev(s) for s in live])

    sent = seqs(result.to_send)
    assert sent == list(range(last + 1, result.last + 1))
    assert result.last >= last + k
    assert seqs(result.buffered) == sorted(s for s in live if s > result.last + 1)
    assert result.gap == bool(result.buffered)
    if k == n:
        assert not result.gap and result.last == last + n
    # A live event is sent only where the log did not reach.
    assert all(e["source"] == "log" for e in result.to_send[:k])


@settings(max_examples=300)
@given(n=st.integers(1, 25), since=st.integers(0, 5), data=st.data())
def test_any_interleaving_of_log_and_live_feed_sends_each_event_once_in_order(
    n, since, data
) -> None:
    """The whole subscription, driven by the pure decisions the way `gateway.fanout` drives
    them: live events (duplicated, reordered, some never arriving) interleaved with reads of
    a log that always holds at least every event published so far (events are durable before
    they are published). Whatever the schedule, the socket sees since+1, since+2, ... with no
    gap and no duplicate, and after a last read of the full log, all of them."""
    top = since + n
    logged = since  # the store's log holds 1..logged
    last = since
    syncing = True  # a subscribe starts with a fill: live events wait in the buffer
    buffer: list[dict] = []
    sent: list[int] = []

    def fill() -> None:
        nonlocal last, buffer, syncing
        for _ in range(5):  # as many rounds as `Subscription._catch_up` reads
            result = merge(last, [ev(s, "log") for s in range(last + 1, logged + 1)], buffer)
            buffer = result.buffered
            sent.extend(seqs(result.to_send))
            last = result.last
            if not result.gap:
                break
        # Every live event was logged first, so one read of the log always closes the gap.
        assert not result.gap
        syncing = False

    steps = data.draw(st.lists(st.tuples(
        st.sampled_from(["commit", "live", "read", "resync"]),
        st.integers(1, top),
    ), max_size=80), label="steps")
    for action, seq in steps:
        if action == "commit":  # the store's log grows (publishing may come later or never)
            logged = max(logged, min(top, logged + seq % 4 + 1))
        elif action == "live":  # a published event reaches the gateway, possibly again
            seq = min(seq, logged)
            if seq < 1:
                continue
            if syncing:
                buffer.append(ev(seq))
            else:
                kind = classify(last, seq)
                if kind == "next":
                    sent.append(seq)
                    last = seq
                elif kind == "gap":  # a fill is spawned; it runs at a later "read"
                    syncing = True
                    buffer.append(ev(seq))
        elif (action == "read" and syncing) or action == "resync":
            # The pending fill (the subscribe's, or after a gap) runs; or a poller restarted
            # and asks every subscription to read the log again.
            fill()
        assert sent == list(range(since + 1, last + 1))

    logged = top
    fill()
    assert sent == list(range(since + 1, top + 1))
    assert buffer == []
