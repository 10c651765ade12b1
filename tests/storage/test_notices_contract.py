"""The user channel of the Store contract: per-user notices with a global feed, run against
every back end."""

from __future__ import annotations

import asyncio
from typing import Any

from storage import CommitBatch, Store
from storage.records import NewNotice, NoticeRecord
from tests.storage.conftest import Backend
from tests.storage.test_contract import event, listed

AT = 1_700_000_000_000


def notice(user_id: str, key: str, type_: str = "outbid", **data: Any) -> NewNotice:
    return {"user_id": user_id, "key": key, "type": type_, "at": AT,
            "data": data or {"auction_id": "x1", "amount": 100}}


def as_given(n: NoticeRecord) -> dict[str, Any]:
    """The record without what the store assigned."""
    return {k: v for k, v in n.items() if k not in ("seq", "pos")}


def seqs(notices: list[NoticeRecord]) -> list[int]:
    return [n["seq"] for n in notices]


async def test_each_user_gets_seq_1_2_3_and_the_feed_a_rising_pos(store: Store) -> None:
    assert await store.notice_position() == 0
    assert await store.notice_feed(0) == []
    given = [notice("u1", "a"), notice("u2", "a"), notice("u1", "b", "won", price=5),
             notice("u1", "c"), notice("u2", "b", "lost", nested={"list": [1, "x"]})]
    got = await store.add_notices(given)
    assert [as_given(n) for n in got] == given  # in the given order, as given
    assert [(n["user_id"], n["seq"]) for n in got] == [
        ("u1", 1), ("u2", 1), ("u1", 2), ("u1", 3), ("u2", 2)]
    positions = [n["pos"] for n in got]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert await store.load_notices("u1") == [got[0], got[2], got[3]]
    assert await store.load_notices("u2") == [got[1], got[4]]
    assert await store.load_notices("nobody") == []
    assert await store.notice_position() == positions[-1]

    more = await store.add_notices([notice("u2", "c")])
    assert seqs(more) == [3] and more[0]["pos"] > positions[-1]
    assert await store.add_notices([]) == []


async def test_adding_a_notice_again_returns_the_stored_one(store: Store) -> None:
    first = (await store.add_notices([notice("u1", "k", amount=1)]))[0]
    await store.add_notices([notice("u1", "other")])
    again = await store.add_notices([notice("u1", "k", "won", amount=2), notice("u1", "new")])
    assert again[0] == first  # not added again, even with other content
    assert seqs(again) == [1, 3]
    assert seqs(await store.load_notices("u1")) == [1, 2, 3]
    # The key is per user: another user's notice with it is a new one.
    assert seqs(await store.add_notices([notice("u2", "k")])) == [1]
    assert len(await store.notice_feed(0)) == 4


async def test_load_notices_after_seq_and_limit(store: Store) -> None:
    await store.add_notices([notice("u1", f"k{i}") for i in range(1, 8)])
    assert seqs(await store.load_notices("u1", after_seq=4)) == [5, 6, 7]
    assert seqs(await store.load_notices("u1", after_seq=2, limit=3)) == [3, 4, 5]
    assert seqs(await store.load_notices("u1", limit=2)) == [1, 2]
    assert await store.load_notices("u1", after_seq=7) == []


async def test_notice_feed_after_pos_and_limit(store: Store) -> None:
    added = await store.add_notices([notice(f"u{i % 3}", f"k{i}") for i in range(10)])
    feed = await store.notice_feed(0)
    assert feed == sorted(added, key=lambda n: n["pos"])
    assert await store.notice_feed(0, limit=4) == feed[:4]
    assert await store.notice_feed(feed[3]["pos"]) == feed[4:]
    assert await store.notice_feed(feed[3]["pos"], limit=2) == feed[4:6]
    assert await store.notice_feed(feed[-1]["pos"]) == []
    assert await store.notice_position() == feed[-1]["pos"]


async def test_concurrent_writers_never_share_a_seq_or_a_pos(backend: Backend) -> None:
    stores = [await backend.open() for _ in range(2)]
    calls = [s.add_notices([notice("u1", f"s{i}-{j}"), notice("u2", f"s{i}-{j}")])
             for j in range(10) for i, s in enumerate(stores)]
    results = await asyncio.gather(*calls)
    added = [n for batch in results for n in batch]
    for user in ("u1", "u2"):
        mine = sorted(seqs([n for n in added if n["user_id"] == user]))
        assert mine == list(range(1, 21))
        stored = await stores[0].load_notices(user)
        assert seqs(stored) == list(range(1, 21))
        assert {n["key"] for n in stored} == {n["key"] for n in added if n["user_id"] == user}
    positions = [n["pos"] for n in added]
    assert len(set(positions)) == 40
    assert [n["pos"] for n in await stores[1].notice_feed(0)] == sorted(positions)

    # The same key from both at once: stored once, both get that record.
    both = await asyncio.gather(*(s.add_notices([notice("u1", "same")]) for s in stores))
    assert both[0] == both[1] and seqs(both[0]) == [21]


async def test_a_commit_stores_the_notices_of_its_events_but_not_of_fenced_ones(
        backend: Backend) -> None:
    owner = await backend.open()
    await listed(owner, "n1")
    await listed(owner, "n2")
    await owner.commit(CommitBatch(events=[event("n1", 1)]))  # n1's seq 1 is taken

    def outbid(auction_id: str, seq: int) -> NewNotice:
        return NewNotice(user_id="u_lead", key=f"outbid:{auction_id}:{seq}", type="outbid",
                         at=1, data={"auction_id": auction_id, "amount": 10 * seq})

    stale = await backend.open()
    fenced = await stale.commit(CommitBatch(events=[event("n1", 1), event("n2", 1)],
                                            notices=[outbid("n1", 1), outbid("n2", 1)]))
    assert fenced == {"n1"}
    stored = await owner.load_notices("u_lead")
    assert [(n["seq"], n["key"]) for n in stored] == [(1, "outbid:n2:1")]


async def test_a_commits_notices_take_consecutive_seqs_and_again_add_nothing(
        backend: Backend) -> None:
    store = await backend.open()
    await listed(store, "c1")
    await listed(store, "c2")

    def outbid(user_id: str, auction_id: str, seq: int) -> NewNotice:
        return NewNotice(user_id=user_id, key=f"outbid:{auction_id}:{seq}", type="outbid",
                         at=seq, data={"auction_id": auction_id, "amount": 10 * seq})

    notices = [outbid("u_a", "c1", 1), outbid("u_a", "c2", 1), outbid("u_b", "c1", 1)]
    await store.commit(CommitBatch(events=[event("c1", 1), event("c2", 1)], notices=notices))
    # The same notices in a later batch (a retried pass): stored once, as they were.
    await store.commit(CommitBatch(events=[event("c1", 2)],
                                   notices=[*notices, outbid("u_a", "c1", 2)]))
    got = {user: [(n["seq"], n["key"], n["data"]["amount"]) for n in
                  await store.load_notices(user)] for user in ("u_a", "u_b")}
    assert got == {"u_a": [(1, "outbid:c1:1", 10), (2, "outbid:c2:1", 10),
                           (3, "outbid:c1:2", 20)],
                   "u_b": [(1, "outbid:c1:1", 10)]}
