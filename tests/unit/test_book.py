"""actors.analytics.book: the projections' in-memory sales, filled batch by batch, read as
numpy arrays sorted by (segment, time, feed position)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.analytics.book import Book

SEGMENTS = ["a|PSA|10", "a|PSA|9", "b|RAW|-", "c|BGS|9.5"]
# (segment, at, price, clean); feed positions are 1, 2, ... in order.
sales_lists = st.lists(st.tuples(st.sampled_from(SEGMENTS), st.integers(0, 20),
                                 st.integers(1, 10**6), st.booleans()), max_size=60)


def fill(book: Book, sales: list[tuple[str, int, int, bool]], cuts: list[int],
         reads: bool) -> None:
    bounds = [0, *sorted(c for c in cuts if c < len(sales)), len(sales)]
    for start, end in itertools.pairwise(bounds):
        batch = sales[start:end]
        book.extend([s for s, _, _, _ in batch], [t for _, t, _, _ in batch],
                    [p for _, _, p, _ in batch], list(range(start + 1, end + 1)),
                    [c for _, _, _, c in batch])
        if reads:
            book.arrays(sorted(book.segments))  # merges what is pending


@settings(max_examples=200, deadline=None)
@given(sales_lists, st.lists(st.integers(0, 60), max_size=5), st.booleans(),
       st.lists(st.sampled_from(SEGMENTS), unique=True))
def test_arrays_are_the_clean_sales_sorted_by_segment_time_and_feed_order(
        sales: list[tuple[str, int, int, bool]], cuts: list[int], reads: bool,
        wanted: list[str]) -> None:
    book = Book()
    fill(book, sales, cuts, reads)
    keys = [k for k in wanted if k in book.segments]
    expected = sorted(((keys.index(s), t, pos, p) for pos, (s, t, p, clean)
                       in enumerate(sales, 1) if clean and s in keys))
    ids, at, price = book.arrays(keys)
    assert ids.tolist() == [e[0] for e in expected]
    assert at.tolist() == [e[1] for e in expected]
    assert price.tolist() == [e[3] for e in expected]
    assert ids.dtype == at.dtype == price.dtype == np.int64
    for key in keys:
        mine = [(t, pos, p) for pos, (s, t, p, c) in enumerate(sales, 1) if s == key]
        segment = book.segments[key]
        assert len(segment) == len(mine)
        assert segment.last_pos == max(pos for _, pos, _ in mine)
        seg_at, seg_price = segment.arrays()
        clean = sorted((t, pos, p) for pos, (s, t, p, c) in enumerate(sales, 1)
                       if s == key and c)
        assert seg_at.tolist() == [t for t, _, _ in clean]
        assert seg_price.tolist() == [p for _, _, p in clean]
    assert book.sales == len(sales)
    assert book.suspect == sum(not c for _, _, _, c in sales)
    assert book.last_at == (max(t for _, t, _, _ in sales) if sales else None)


def test_an_empty_book_and_an_empty_batch() -> None:
    book = Book()
    book.extend([], [], [], [], [])
    ids, at, price = book.arrays([])
    assert len(ids) == len(at) == len(price) == 0
    assert book.sales == 0 and book.last_at is None


def test_times_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        Book().extend(["s"], [-1], [100], [1], [True])
    with pytest.raises(ValueError):
        Book().extend(["s"], [2**42], [100], [1], [True])


def test_no_sale_is_lost_when_readers_in_threads_merge_beside_extend() -> None:
    """The projections read the book in worker threads while the event loop extends it: a
    merge running beside an `extend` must not drop the sales appended meanwhile."""
    import sys
    import threading

    book = Book()
    stop = threading.Event()
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                ids, at, price = book.arrays(list(book.segments))
                assert len(ids) == len(at) == len(price)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for pos in range(1, 20_001):
            book.extend([f"c{pos % 7}|PSA|9"], [1_000 + pos], [100], [pos], [True])
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
    assert failures == []
    _, at, price = book.arrays(sorted(book.segments))
    assert len(at) == len(price) == 20_000
