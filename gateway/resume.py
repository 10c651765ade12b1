"""The decisions of a live subscription, as pure functions (no socket, store or event loop).

A subscription remembers the last seq its socket received. Three decisions follow from it:
how to start (replay the log after `since`, or send a fresh snapshot), what to do with one
live event (drop a duplicate, send the next, or fill a gap from the log), and how to merge a
read of the log with the live events buffered meanwhile. `gateway.fanout` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Event = dict[str, Any]
Kind = Literal["duplicate", "next", "gap"]


@dataclass(frozen=True)
class Replay:
    """Resume after `since`: the log has every event since then, and not too many."""

    since: int


@dataclass(frozen=True)
class Snapshot:
    """Send the state at `seq` instead (no `since`, one from the future, or too far back)."""

    seq: int


def resume_plan(since: int | None, current_seq: int, max_replay: int) -> Replay | Snapshot:
    """How a subscribe starts, given the client's `since` and the auction's current seq."""
    if since is not None and since <= current_seq and current_seq - since <= max_replay:
        return Replay(since)
    return Snapshot(current_seq)


def classify(last_seq: int, event_seq: int) -> Kind:
    """One live event against the last seq sent: already sent, the next one, or past a gap."""
    if event_seq <= last_seq:
        return "duplicate"
    if event_seq == last_seq + 1:
        return "next"
    return "gap"


@dataclass(frozen=True)
class Merge:
    to_send: list[Event]  # in order: seqs last+1, last+2, ... with no hole
    buffered: list[Event]  # live events still past a gap, sorted by seq
    gap: bool  # something is still missing: read the log again
    last: int  # the last seq sent once `to_send` is out


def merge(last: int, log_events: Iterable[Event], buffered: Iterable[Event]) -> Merge:
    """Merge a read of the log (events after `last`, in seq order) with buffered live events.

    The log is taken as far as it runs on from `last`; then the buffered events in seq order:
    the next one is sent, an older one (or a second copy) dropped, a newer one kept for the
    next round, which `gap` asks for.
    """
    to_send: list[Event] = []
    for event in log_events:
        if event["seq"] == last + 1:
            to_send.append(event)
            last = event["seq"]
    still: list[Event] = []
    for event in sorted(buffered, key=lambda e: e["seq"]):
        kind = classify(last, event["seq"])
        if kind == "next":
            to_send.append(event)
            last = event["seq"]
        elif kind == "gap":
            still.append(event)
    return Merge(to_send, still, bool(still), last)
