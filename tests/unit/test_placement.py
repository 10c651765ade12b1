"""The directory's placement choice, as a pure function: no Ray, no store."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.placement import choose_host


def name(index: int) -> str:
    return f"ece:host:{index}"


def test_the_first_auction_starts_the_first_host() -> None:
    assert choose_host({}, 4, 0, 3, name) == "ece:host:0"


def test_the_fullest_host_with_room_is_chosen() -> None:
    load = {name(0): 1, name(1): 3, name(2): 4, name(3): 0}
    assert choose_host(load, 4, 4, 10, name) == name(1)


def test_a_host_with_no_auctions_left_is_still_a_candidate() -> None:
    assert choose_host({name(0): 4, name(1): 0}, 4, 2, 10, name) == name(1)


def test_equal_load_goes_to_the_greatest_name() -> None:
    assert choose_host({"b": 2, "a": 2, "c": 1}, 4, 0, 10, name) == "b"


def test_when_every_host_is_full_a_new_one_is_named_by_the_next_index() -> None:
    assert choose_host({name(0): 2, name(4): 2}, 2, 5, 10, name) == name(5)


def test_none_when_every_host_is_full_and_max_hosts_are_running() -> None:
    assert choose_host({name(0): 2, name(1): 2}, 2, 2, 2, name) is None
    assert choose_host({name(0): 1}, 1, 1, 1, name) is None


def test_hosts_started_without_auctions_count_toward_max_hosts() -> None:
    """A host started only to settle finished auctions is running: it counts toward the cap,
    though it is no candidate (nothing is placed on it through this choice)."""
    load = {name(0): 2}
    assert choose_host(load, 2, 1, 2, name, started={name(0), "ece:host:7"}) is None
    assert choose_host(load, 2, 1, 3, name, started={name(0), "ece:host:7"}) == name(1)
    assert choose_host({}, 2, 0, 1, name, started={"ece:host:7"}) is None


def test_a_started_host_is_no_candidate_even_with_room() -> None:
    assert choose_host({}, 2, 0, 5, name, started={"ece:host:3"}) == name(0)


def test_hosts_beyond_the_cap_still_take_auctions_while_they_have_room() -> None:
    """After a restart with a lower max_hosts, existing hosts with room are still used."""
    load = {name(0): 2, name(1): 2, name(2): 1}
    assert choose_host(load, 2, 3, 1, name) == name(2)


loads = st.dictionaries(st.sampled_from([name(i) for i in range(8)]), st.integers(0, 6),
                        max_size=8)


@given(
    load=loads,
    capacity=st.integers(1, 6),
    spare=st.integers(0, 4),
    max_hosts=st.integers(1, 10),
    started=st.sets(st.sampled_from([name(i) for i in range(12)]), max_size=4),
)
def test_choose_host_properties(load, capacity, spare, max_hosts, started) -> None:
    # The directory's next index is past every host it placed auctions on.
    next_index = max((int(h.rsplit(":", 1)[1]) + 1 for h in load), default=0) + spare
    chosen = choose_host(load, capacity, next_index, max_hosts, name, started)
    with_room = {h: c for h, c in load.items() if c < capacity}
    running = load.keys() | started
    if chosen is None:
        assert not with_room
        assert len(running) >= max_hosts
    elif chosen in load:
        assert load[chosen] < capacity  # never a host at capacity
        assert load[chosen] == max(with_room.values())  # the fullest with room
    else:
        assert not with_room  # a new host only when none has room
        assert chosen == name(next_index)
        assert len(running) + 1 <= max_hosts  # never past max_hosts


@settings(max_examples=200)
@given(
    capacity=st.integers(1, 4),
    max_hosts=st.integers(1, 5),
    steps=st.lists(st.integers(0, 30), max_size=60),
)
def test_a_directory_placing_and_releasing_stays_within_its_limits(
    capacity, max_hosts, steps
) -> None:
    """Places (even steps) and releases (odd ones) through `choose_host`, kept the way the
    directory keeps them: no host ever holds more than `capacity`, never more than
    `max_hosts` hosts run, and a placement is refused only when all of them are full."""
    load: dict[str, int] = {}
    location: dict[int, str] = {}
    next_index = 0
    for n, step in enumerate(steps):
        if step % 2 == 0:
            host = choose_host(load, capacity, next_index, max_hosts, name)
            if host is None:
                assert len(load) == max_hosts
                assert all(c == capacity for c in load.values())
                continue
            location[n] = host
            load[host] = load.get(host, 0) + 1
            next_index = max(next_index, int(host.rsplit(":", 1)[1]) + 1)
        elif location:
            key = sorted(location)[step % len(location)]
            host = location.pop(key)
            load[host] -= 1
        assert all(0 <= c <= capacity for c in load.values())
        assert len(load) <= max_hosts
