"""The event feed's read: cursors, epochs, the ring's bounds, limits and the auction filter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.feed import EventFeed, read_ring
from actors.messages import FeedPage

EPOCH = "e1"


def ev(n: int, auction_id: str = "a") -> dict:
    return {"auction_id": auction_id, "seq": n, "n": n}


def ns(reply: dict) -> list[int]:
    return [e["n"] for e in reply.events]


# The ring of a feed that published events 0..9 with room for the newest five: cursors 5..10.
RING = [ev(n, "a" if n % 2 else "b") for n in range(5, 10)]
HEAD = 10


def test_a_negative_cursor_means_from_now_on() -> None:
    reply = read_ring(RING, HEAD, EPOCH, None, -1, 100)
    assert reply == FeedPage(EPOCH, HEAD, False, [])
    # Whatever epoch the reader had: it only asks where the head is.
    assert read_ring(RING, HEAD, EPOCH, "old", -1, 100).reset is False


def test_reading_from_a_cursor_in_the_ring() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 7, 100)
    assert ns(reply) == [7, 8, 9]
    assert reply.cursor == HEAD and reply.reset is False
    assert reply.epoch == EPOCH


def test_a_reader_at_the_head_gets_nothing_and_stays() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, HEAD, 100)
    assert reply == FeedPage(EPOCH, HEAD, False, [])


def test_the_oldest_cursor_still_held_is_no_reset() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100)
    assert ns(reply) == [5, 6, 7, 8, 9] and reply.reset is False


def test_another_epoch_resets_to_the_oldest_event_held() -> None:
    for epoch in (None, "an earlier run"):
        reply = read_ring(RING, HEAD, EPOCH, epoch, 7, 100)
        assert reply.reset is True
        assert ns(reply) == [5, 6, 7, 8, 9]
        assert reply.cursor == HEAD and reply.epoch == EPOCH


def test_a_cursor_fallen_out_of_the_ring_resets() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 4, 100)
    assert reply.reset is True
    assert ns(reply) == [5, 6, 7, 8, 9] and reply.cursor == HEAD


def test_a_cursor_ahead_of_the_head_resets() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, HEAD + 1, 100)
    assert reply.reset is True
    assert ns(reply) == [5, 6, 7, 8, 9] and reply.cursor == HEAD


def test_a_reset_on_an_empty_feed() -> None:
    reply = read_ring([], 0, EPOCH, "old", 3, 100)
    assert reply == FeedPage(EPOCH, 0, True, [])


def test_limit_stops_just_past_the_last_event_returned() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 2)
    assert ns(reply) == [5, 6] and reply.cursor == 7 and reply.reset is False
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, reply.cursor, 2)
    assert ns(reply) == [7, 8] and reply.cursor == 9
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, reply.cursor, 2)
    assert ns(reply) == [9] and reply.cursor == HEAD
    # A reset under a limit starts at the oldest and goes no further than the limit either.
    reply = read_ring(RING, HEAD, EPOCH, "old", 8, 3)
    assert ns(reply) == [5, 6, 7] and reply.cursor == 8 and reply.reset is True


def test_the_auction_filter_returns_only_that_auctions_events() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100, "a")
    assert ns(reply) == [5, 7, 9] and reply.cursor == HEAD
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100, "b")
    assert ns(reply) == [6, 8] and reply.cursor == HEAD


def test_the_auction_filter_with_a_limit_counts_only_matching_events() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 2, "a")
    assert ns(reply) == [5, 7] and reply.cursor == 8  # just past event 7, not past 8
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, reply.cursor, 2, "a")
    assert ns(reply) == [9] and reply.cursor == HEAD


def test_no_matching_event_moves_the_cursor_to_the_head() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100, "nobody")
    assert reply == FeedPage(EPOCH, HEAD, False, [])


@given(
    published=st.integers(0, 40),
    capacity=st.integers(1, 15),
    start=st.integers(0, 40),
    limit=st.integers(1, 6),
    auction=st.sampled_from([None, "a", "b"]),
)
def test_paging_through_the_ring_returns_each_event_once_in_order(
    published, capacity, start, limit, auction
) -> None:
    """A reader paging from any cursor still in the ring reads every (matching) event after it,
    each once, in order, and ends at the head without a reset."""
    events = [ev(n, "ab"[n % 2]) for n in range(published)]
    ring = events[-capacity:]
    oldest = published - len(ring)
    first = cursor = oldest + start % (len(ring) + 1)
    read: list[int] = []
    for _ in range(published + 2):
        reply = read_ring(ring, published, EPOCH, EPOCH, cursor, limit, auction)
        assert reply.reset is False
        assert len(reply.events) <= limit
        assert cursor <= reply.cursor <= published
        read.extend(ns(reply))
        if reply.cursor == cursor:
            break
        cursor = reply.cursor
    assert cursor == published
    assert read == [n for n in range(first, published)
                    if auction is None or "ab"[n % 2] == auction]


# ---- the feed itself ----------------------------------------------------------------------


async def test_an_event_feed_reads_what_it_published() -> None:
    feed = EventFeed(capacity=3)
    first = feed.read(None, -1, 10)
    assert first == FeedPage(feed.epoch, 0, False, [])
    await feed.publish([ev(0), ev(1, "b")])
    await feed.publish([])
    reply = feed.read(feed.epoch, first.cursor, 10)
    assert ns(reply) == [0, 1] and reply.cursor == 2 and reply.reset is False
    at_head = feed.read(feed.epoch, 2, 10)  # nothing past the head, and no reset
    assert (at_head.cursor, at_head.events, at_head.reset) == (2, [], False)

    await feed.publish([ev(2), ev(3), ev(4)])  # the ring holds 2..4 now: cursor 1 is gone
    reply = feed.read(feed.epoch, 1, 10)
    assert reply.reset is True and ns(reply) == [2, 3, 4] and reply.cursor == 5
    reply = feed.read(feed.epoch, 3, 10, "a")
    assert ns(reply) == [3, 4] and reply.reset is False


async def test_a_restarted_feed_has_a_new_epoch_and_resets_old_readers() -> None:
    before, after = EventFeed(capacity=4), EventFeed(capacity=4)
    assert before.epoch != after.epoch
    await after.publish([ev(0)])
    reply = after.read(before.epoch, 0, 10)
    assert reply.reset is True and ns(reply) == [0] and reply.epoch == after.epoch
