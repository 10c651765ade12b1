"""The event feed's read: cursors, epochs, the ring's bounds, limits and the filter by the
auctions a reader wants; the readers' interest, its versions, and the waiting poll."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from actors.feed import UNKNOWN, EventFeed, Interests, read_ring
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
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100, {"a"})
    assert ns(reply) == [5, 7, 9] and reply.cursor == HEAD
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100, {"b"})
    assert ns(reply) == [6, 8] and reply.cursor == HEAD


def test_the_auction_filter_with_a_limit_counts_only_matching_events() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 2, {"a"})
    assert ns(reply) == [5, 7] and reply.cursor == 8  # just past event 7, not past 8
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, reply.cursor, 2, {"a"})
    assert ns(reply) == [9] and reply.cursor == HEAD


def test_no_matching_event_moves_the_cursor_to_the_head() -> None:
    reply = read_ring(RING, HEAD, EPOCH, EPOCH, 5, 100, {"nobody"})
    assert reply == FeedPage(EPOCH, HEAD, False, [])


@given(
    published=st.integers(0, 40),
    capacity=st.integers(1, 15),
    start=st.integers(0, 40),
    limit=st.integers(1, 6),
    auction=st.sampled_from([None, "a", "b"]),
    also=st.booleans(),
)
def test_paging_through_the_ring_returns_each_event_once_in_order(
    published, capacity, start, limit, auction, also
) -> None:
    """A reader paging from any cursor still in the ring reads every (matching) event after it,
    each once, in order, and ends at the head without a reset."""
    events = [ev(n, "abc"[n % 3]) for n in range(published)]
    # The auctions wanted: none (every event), one, or that one and "c".
    wanted = None if auction is None else {auction, "c"} if also else {auction}
    ring = events[-capacity:]
    oldest = published - len(ring)
    first = cursor = oldest + start % (len(ring) + 1)
    read: list[int] = []
    for _ in range(published + 2):
        reply = read_ring(ring, published, EPOCH, EPOCH, cursor, limit, wanted)
        assert reply.reset is False
        assert len(reply.events) <= limit
        assert cursor <= reply.cursor <= published
        read.extend(ns(reply))
        if reply.cursor == cursor:
            break
        cursor = reply.cursor
    assert cursor == published
    assert read == [n for n in range(first, published)
                    if wanted is None or "abc"[n % 3] in wanted]


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
    feed.interests.change("gw", None, 1, ["a"], [])
    reply = feed.read(feed.epoch, 3, 10, "gw")
    assert ns(reply) == [3, 4] and reply.reset is False


async def test_a_restarted_feed_has_a_new_epoch_and_resets_old_readers() -> None:
    before, after = EventFeed(capacity=4), EventFeed(capacity=4)
    assert before.epoch != after.epoch
    await after.publish([ev(0)])
    reply = after.read(before.epoch, 0, 10)
    assert reply.reset is True and ns(reply) == [0] and reply.epoch == after.epoch


# ---- the readers' interest ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_interest_is_registered_whole_then_changed_by_deltas_on_its_version() -> None:
    interests = Interests(Clock())
    assert interests.of("gw") is None
    assert interests.change("gw", None, 1, ["x", "y"], []) == 1
    assert interests.change("gw", 1, 2, ["z"], ["x"]) == 2
    assert interests.of("gw") == {"y", "z"}
    # A delta on a version this feed does not hold is refused with the version it holds.
    assert interests.change("gw", 1, 3, ["w"], []) == 2
    assert interests.change("other", 4, 5, ["w"], []) == UNKNOWN
    assert interests.of("gw") == {"y", "z"} and interests.of("other") is None
    # The whole set again replaces it, whatever was held.
    assert interests.change("gw", None, 7, ["w"], []) == 7
    assert interests.of("gw") == {"w"}


def test_a_reader_unseen_for_the_ttl_is_forgotten() -> None:
    clock = Clock()
    interests = Interests(clock, ttl_s=10.0)
    interests.change("gone", None, 1, ["x"], [])
    interests.change("polling", None, 1, ["y"], [])
    clock.now = 8.0
    assert interests.of("polling") == {"y"}  # a poll counts as seen
    clock.now = 12.0
    interests.change("new", None, 1, [], [])
    assert interests.of("gone") is None and interests.of("polling") == {"y"}


async def test_a_reader_reads_only_its_auctions_with_host_wide_cursors() -> None:
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    await feed.register("B", None, 1, ["y"], [])
    start = feed.read(None, -1, 10, "A").cursor
    await feed.publish([ev(0, "x"), ev(1, "y"), ev(2, "x"), ev(3, "z")])
    a, b = feed.read(feed.epoch, start, 10, "A"), feed.read(feed.epoch, start, 10, "B")
    assert (ns(a), ns(b)) == ([0, 2], [1])
    assert a.cursor == b.cursor == 4 and not a.reset and not b.reset
    assert ns(feed.read(feed.epoch, start, 10)) == [0, 1, 2, 3]  # no reader: everything


async def test_an_unknown_reader_is_told_to_reset() -> None:
    feed = EventFeed(capacity=100)
    await feed.publish([ev(0, "x")])
    assert feed.read(None, -1, 10, "A") == FeedPage(feed.epoch, 1, False, [])
    # A cursor from before (this host restarted, or forgot the reader): refill from the store.
    assert feed.read(feed.epoch, 0, 10, "A") == FeedPage(feed.epoch, 1, True, [])
    await feed.wait(feed.epoch, 0, 3600, "A")  # answered at once, not at the timeout


async def _yield_a_while() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_waiting_poll_wakes_only_for_events_its_reader_wants() -> None:
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    waiting = asyncio.create_task(feed.wait(feed.epoch, 0, 3600, "A"))
    await feed.publish([ev(0, "y"), ev(1, "z")])
    await _yield_a_while()
    assert not waiting.done()
    await feed.publish([ev(2, "x")])
    await asyncio.wait_for(waiting, 5)
    assert ns(feed.read(feed.epoch, 0, 10, "A")) == [2]



async def test_a_poll_woken_for_nothing_it_wants_ends_at_its_timeout_and_lets_go() -> None:
    """Woken again and again by events it does not want, a poll still returns when its time
    is up (one deadline for the whole wait), and holds nothing after: the next publish and
    the next poll go on."""
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    waiting = asyncio.create_task(feed.wait(feed.epoch, 0, 0.2, "A"))
    for seq in range(5):
        await feed.publish([ev(seq, "y")])
        await _yield_a_while()
    await asyncio.wait_for(waiting, 5)
    assert ns(feed.read(feed.epoch, 0, 10, "A")) == []
    await feed.publish([ev(5, "x")])
    await asyncio.wait_for(feed.wait(feed.epoch, 0, 3600, "A"), 5)  # at once: readable

async def test_watching_an_auction_mid_poll_wakes_the_poll_for_its_events_held() -> None:
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    waiting = asyncio.create_task(feed.wait(feed.epoch, 0, 3600, "A"))
    await feed.publish([ev(0, "y")])
    await _yield_a_while()
    assert not waiting.done()
    await feed.register("A", 1, 2, ["y"], [])  # "y" watched now: its event is readable
    await asyncio.wait_for(waiting, 5)
    assert ns(feed.read(feed.epoch, 0, 10, "A")) == [0]


async def test_a_poll_wanting_nothing_moves_on_before_the_ring_forgets_its_cursor() -> None:
    feed = EventFeed(capacity=10)
    await feed.register("A", None, 1, ["x"], [])
    waiting = asyncio.create_task(feed.wait(feed.epoch, 0, 3600, "A"))
    await feed.publish([ev(n, "y") for n in range(4)])
    await _yield_a_while()
    assert not waiting.done()
    await feed.publish([ev(4, "y")])  # half the ring of events it does not want
    await asyncio.wait_for(waiting, 5)
    assert feed.read(feed.epoch, 0, 10, "A") == FeedPage(feed.epoch, 5, False, [])


async def test_a_batch_carrying_a_readers_page_keeps_its_poll_asleep_and_claims_its_events(
) -> None:
    """A batch's reply carries the reader's page: its poll neither wakes while the batch runs
    nor for the events the reply carried; it wakes for the others and reads only those."""
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    waiting = asyncio.create_task(feed.wait(feed.epoch, 0, 3600, "A"))
    began = feed.begin("A")
    await feed.publish([ev(0, "x"), ev(1, "y")])
    await _yield_a_while()
    assert not waiting.done()  # the batch's reply brings it
    page = await feed.carried("A", began, feed.epoch, 0, 10)
    assert ns(page) == [0] and page.cursor == 2 and not page.reset
    await _yield_a_while()
    assert not waiting.done()  # carried already: not a reason to wake
    await feed.publish([ev(2, "x")])
    await asyncio.wait_for(waiting, 5)
    assert ns(feed.next_page(feed.epoch, 0, 10, "A")) == [2]  # not 0 again
    assert ns(feed.next_page(feed.epoch, 0, 10, "B")) == []  # other readers: unchanged


async def test_a_carried_page_of_another_epoch_claims_nothing() -> None:
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    await feed.publish([ev(0, "x")])
    page = await feed.carried("A", feed.begin("A"), "an-earlier-life", 0, 10)
    assert page.reset and feed.claims == {} and feed.carrying == {}
    assert ns(feed.next_page(feed.epoch, 0, 10, "A")) == [0]


async def test_a_reader_registering_its_whole_interest_again_drops_its_claims() -> None:
    """A gateway that may have lost a reply sends its whole interest again: its poll then
    sends every event after its cursor, also those a batch in flight meanwhile carries."""
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    await feed.carried("A", feed.begin("A"), feed.epoch, 0, 10)
    await feed.publish([ev(0, "x")])
    assert ns(await feed.carried("A", feed.begin("A"), feed.epoch, 0, 10)) == [0]
    assert ns(feed.next_page(feed.epoch, 0, 10, "A")) == []  # claimed
    late = feed.begin("A")
    await feed.register("A", None, 2, ["x"], [])
    await feed.publish([ev(1, "x")])
    await feed.carried("A", late, feed.epoch, 0, 10)  # its reply is lost too
    assert ns(feed.next_page(feed.epoch, 0, 10, "A")) == [0, 1]


async def test_what_a_poll_sent_is_not_carried_again_by_a_batch_that_left_before_it_landed(
) -> None:
    feed = EventFeed(capacity=100)
    await feed.register("A", None, 1, ["x"], [])
    await feed.publish([ev(0, "x")])
    assert ns(feed.next_page(feed.epoch, 0, 10, "A")) == [0]  # a poll sent it
    # A batch that left with the cursor the gateway had before that poll's page landed:
    assert ns(await feed.carried("A", feed.begin("A"), feed.epoch, 0, 10)) == []
