"""Deadlines of many entities (auctions, offers) served by one host loop.

One heap entry per deadline change, and a dict of each entity's current deadline: an entry
that no longer matches the dict is stale and skipped when it surfaces. So thousands of
entities closing in the same second cost one wake-up of the loop, and moving a deadline
(a soft-close extension) costs one push.
"""

from __future__ import annotations

import heapq


class Timers:
    def __init__(self) -> None:
        self._deadline_of: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def set(self, key: str, deadline: int | None) -> None:
        """Track `key`'s deadline (None: it has none); push a heap entry only when it moved."""
        if deadline is None:
            self._deadline_of.pop(key, None)
            return
        if self._deadline_of.get(key) == deadline:
            return
        self._deadline_of[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self._deadline_of) + 64:
            # Mostly stale entries (deadlines moved many times): rebuild from the dict.
            self._heap = [(d, k) for k, d in self._deadline_of.items()]
            heapq.heapify(self._heap)

    def discard(self, key: str) -> None:
        self._deadline_of.pop(key, None)

    def next(self) -> int | None:
        """The earliest current deadline, or None."""
        heap = self._heap
        while heap and self._deadline_of.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: int) -> list[str]:
        """Pop the keys whose current deadline is at or before `now`, earliest first."""
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if self._deadline_of.get(key) == deadline:
                del self._deadline_of[key]
                due.append(key)
        return due

    def __len__(self) -> int:
        return len(self._deadline_of)
