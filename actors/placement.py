"""Where a new auction goes, as a pure function of the directory's view of its hosts."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping


def choose_host(
    load: Mapping[str, int],
    capacity: int,
    next_index: int,
    max_hosts: int,
    host_name: Callable[[int], str],
    started: Collection[str] = (),
) -> str | None:
    """The host for one more auction: the fullest host with room, to pack memory.

    `load` counts live auctions per host (a host may stay there at 0); `started` names hosts
    running without placed auctions (e.g. started to settle finished ones) — not candidates,
    but they count toward `max_hosts`. Ties go to the greatest name. With no room anywhere, a
    new host `host_name(next_index)`, or None when that would exceed `max_hosts`.
    """
    candidates = [(count, name) for name, count in load.items() if count < capacity]
    if candidates:
        return max(candidates)[1]
    if len(load.keys() | set(started)) >= max_hosts:
        return None
    return host_name(next_index)
