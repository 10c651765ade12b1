"""GapCursor: rows in position order, a gap waited for, then passed."""

from __future__ import annotations

from actors.tail import GapCursor


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def rows(*positions: int) -> list[dict[str, int]]:
    return [{"pos": p} for p in positions]


def test_contiguous_rows_are_all_taken_and_old_ones_skipped() -> None:
    cursor = GapCursor(2)
    assert [r["pos"] for r in cursor.take(rows(1, 2, 3, 4))] == [3, 4]
    assert cursor.pos == 4


def test_a_gap_is_waited_for_then_passed() -> None:
    clock = FakeClock()
    cursor = GapCursor(0, wait_s=2.0, clock=clock)
    assert [r["pos"] for r in cursor.take(rows(1, 3, 4))] == [1]
    clock.t = 1.9
    assert cursor.take(rows(3, 4)) == []
    assert cursor.pos == 1
    clock.t = 2.0
    assert [r["pos"] for r in cursor.take(rows(3, 4))] == [3, 4]
    assert cursor.pos == 4


def test_a_gap_that_fills_in_time_loses_nothing() -> None:
    clock = FakeClock()
    cursor = GapCursor(0, wait_s=2.0, clock=clock)
    assert [r["pos"] for r in cursor.take(rows(1, 3))] == [1]
    clock.t = 1.0
    assert [r["pos"] for r in cursor.take(rows(2, 3))] == [2, 3]
    # The next gap waits afresh.
    clock.t = 5.0
    assert cursor.take(rows(5)) == []
