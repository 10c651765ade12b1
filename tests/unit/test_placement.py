"""The directory's placement choices, as pure functions: no Ray, no store."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.placement import (
    BID_WEIGHT,
    choose_host,
    choose_node,
    drain_moves,
    placement_load,
    rebalance_moves,
)


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


# ---- nodes -----------------------------------------------------------------------------------

NODES = [f"n{i}" for i in range(5)]


def test_a_new_host_goes_to_the_node_with_fewest_auctions_then_fewest_hosts() -> None:
    assert choose_node({"a": 9, "b": 3, "c": 5}, {"a": 1, "b": 4, "c": 1}) == "b"
    assert choose_node({"a": 3, "b": 3}, {"a": 2, "b": 1}) == "b"
    assert choose_node({"b": 0, "a": 0}, {}) == "a"  # ties: the smallest id


def test_a_node_that_joined_gets_the_next_host() -> None:
    assert choose_node({"a": 40, "b": 38, "new": 0}, {"a": 2, "b": 2}) == "new"


def test_no_node_for_a_new_host_when_all_drain() -> None:
    assert choose_node({"a": 1, "b": 2}, {}, draining={"a", "b"}) is None
    assert choose_node({}, {}) is None


@given(auctions=st.dictionaries(st.sampled_from(NODES), st.integers(0, 50), max_size=5),
       hosts=st.dictionaries(st.sampled_from(NODES), st.integers(0, 5)),
       draining=st.sets(st.sampled_from(NODES)))
def test_choose_node_never_picks_a_draining_or_unknown_node(auctions, hosts, draining) -> None:
    chosen = choose_node(auctions, hosts, draining)
    open_nodes = auctions.keys() - draining
    if chosen is None:
        assert not open_nodes
    else:
        assert chosen in open_nodes
        assert auctions[chosen] == min(auctions[n] for n in open_nodes)


rates = st.floats(0.0, 5_000.0, allow_nan=False)
node_auctions = st.dictionaries(st.sampled_from(NODES), st.integers(0, 50), max_size=5)
node_hosts = st.dictionaries(st.sampled_from(NODES), st.integers(0, 5))
node_rates = st.dictionaries(st.sampled_from(NODES), rates)


def today(auctions: dict[str, int], hosts: dict[str, int], draining: set[str]) -> str | None:
    """The rule before commands counted: fewest auctions, then hosts, then the smallest id."""
    open_nodes = [(count, hosts.get(n, 0), n) for n, count in auctions.items()
                  if n not in draining]
    return min(open_nodes)[2] if open_nodes else None


def test_a_node_busy_with_bids_gets_the_new_host_though_it_has_fewer_auctions() -> None:
    assert choose_node({"a": 2, "b": 5}, {"a": 1, "b": 2}) == "a"
    # 10 commands/s weigh 200 auctions: "a" is the busier node now.
    assert choose_node({"a": 2, "b": 5}, {"a": 1, "b": 2}, commands={"a": 10.0}) == "b"
    assert choose_node({"a": 2, "b": 5}, {}, commands={"a": 0.1, "b": 0.0}) == "a"


def test_the_load_weighs_a_command_per_second_as_bid_weight_auctions() -> None:
    assert placement_load(7, 0.0) == 7
    assert placement_load(0, 1.0) == BID_WEIGHT
    assert placement_load(3, 2.5) == 3 + round(2.5 * BID_WEIGHT)
    assert placement_load(3, -1.0) == 3  # a rate is never negative; treated as none


@given(a=st.integers(0, 10_000), b=st.integers(0, 10_000), x=rates, y=rates)
def test_the_load_grows_with_auctions_and_commands(a, b, x, y) -> None:
    if a < b and x <= y:
        assert placement_load(a, x) < placement_load(b, y)
    if a <= b and x <= y:
        assert placement_load(a, x) <= placement_load(b, y)


@given(auctions=node_auctions, hosts=node_hosts, draining=st.sets(st.sampled_from(NODES)),
       commands=node_rates)
def test_choose_node_by_load_never_picks_a_draining_node_and_is_deterministic(
        auctions, hosts, draining, commands) -> None:
    chosen = choose_node(auctions, hosts, draining, commands)
    open_nodes = auctions.keys() - draining
    assert (chosen is None) == (not open_nodes)
    assert chosen is None or chosen in open_nodes
    # The same view in any order gives the same node.
    again = choose_node(dict(reversed(auctions.items())), dict(reversed(hosts.items())),
                        set(draining), dict(reversed(commands.items())))
    assert again == chosen
    if chosen is not None:  # no open node has less load
        load = {n: placement_load(auctions[n], commands.get(n, 0.0)) for n in open_nodes}
        assert load[chosen] == min(load.values())


@given(auctions=node_auctions, hosts=node_hosts, draining=st.sets(st.sampled_from(NODES)),
       rate=rates)
def test_with_equal_commands_everywhere_choose_node_is_todays_rule(
        auctions, hosts, draining, rate) -> None:
    commands = dict.fromkeys(auctions, rate)
    assert choose_node(auctions, hosts, draining, commands) == today(auctions, hosts, draining)
    assert choose_node(auctions, hosts, draining) == today(auctions, hosts, draining)


@given(auctions=node_auctions, hosts=node_hosts, commands=node_rates,
       busy=st.sampled_from(NODES), idle=st.sampled_from(NODES),
       more_auctions=st.integers(1, 1_000), more_commands=st.floats(1e-6, 1_000.0))
def test_a_node_with_more_auctions_and_more_commands_is_never_chosen_over_one_with_less(
        auctions, hosts, commands, busy, idle, more_auctions, more_commands) -> None:
    if busy == idle:
        return
    auctions = {**auctions, idle: auctions.get(idle, 0)}
    auctions[busy] = auctions[idle] + more_auctions
    commands = {**commands, busy: commands.get(idle, 0.0) + more_commands}
    assert choose_node(auctions, hosts, (), commands) != busy


sizes = st.integers(0, 20)


@given(leaving=st.dictionaries(st.sampled_from([name(i) for i in range(10)]), sizes),
       auctions=st.dictionaries(st.sampled_from(NODES), st.integers(0, 60), min_size=1,
                                max_size=5),
       drained=st.sampled_from(NODES),
       other_draining=st.sets(st.sampled_from(NODES), max_size=2))
def test_drain_moves_every_host_to_an_open_node_and_keeps_nodes_even(
        leaving, auctions, drained, other_draining) -> None:
    draining = {drained, *other_draining}
    moves = drain_moves(leaving, auctions, draining)
    targets = {n: c for n, c in auctions.items() if n not in draining}
    if not targets:
        assert moves == []
        return
    assert sorted(h for h, _ in moves) == sorted(leaving)  # every host, once
    assert all(node in targets for _, node in moves)  # never to a draining or unknown node
    after = dict(targets)
    for host, node in moves:
        after[node] += leaving[host]
    assert sum(after.values()) == sum(targets.values()) + sum(leaving.values())
    # Greedy least-loaded: the spread never exceeds the larger of the one before and the
    # largest host moved.
    before = max(targets.values()) - min(targets.values())
    assert max(after.values()) - min(after.values()) <= max(before, *leaving.values(), 0)


def test_drain_spreads_equal_hosts_evenly() -> None:
    leaving = {name(i): 5 for i in range(6)}
    moves = drain_moves(leaving, {"gone": 30, "a": 0, "b": 0, "c": 0}, draining={"gone"})
    per_node: dict[str, int] = {}
    for _, node in moves:
        per_node[node] = per_node.get(node, 0) + 1
    assert per_node == {"a": 2, "b": 2, "c": 2}


placements = st.dictionaries(
    st.sampled_from(NODES),
    st.dictionaries(st.sampled_from([name(i) for i in range(12)]), sizes, max_size=4),
    min_size=1, max_size=5,
).map(lambda placed: _unique_hosts(placed))


def _unique_hosts(placed: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Each host on one node only (the first that drew it)."""
    seen: set[str] = set()
    out: dict[str, dict[str, int]] = {}
    for node, hosts in placed.items():
        out[node] = {h: c for h, c in hosts.items() if h not in seen}
        seen |= hosts.keys()
    return out


@settings(max_examples=300)
@given(placed=placements, draining=st.sets(st.sampled_from(NODES), max_size=2))
def test_rebalance_evens_out_without_touching_draining_nodes(placed, draining) -> None:
    moves = rebalance_moves(placed, draining)
    node_of = {h: n for n, hosts in placed.items() for h in hosts}
    size = {h: c for hosts in placed.values() for h, c in hosts.items()}
    assert len({h for h, _ in moves}) == len(moves)  # each host moves at most once
    for host, node in moves:
        assert node_of[host] not in draining and node not in draining
        assert node != node_of[host] and node in placed
        node_of[host] = node
    load_before = {n: sum(h.values()) for n, h in placed.items() if n not in draining}
    load = {n: 0 for n in load_before}
    for host, node in node_of.items():
        if node in load:
            load[node] += size[host]
    assert sum(load.values()) == sum(load_before.values())
    if len(load) > 1:
        spread_before = max(load_before.values()) - min(load_before.values())
        gap = max(load.values()) - min(load.values())
        assert gap <= spread_before  # never worse
        # At the end, no host of the fullest node would narrow the gap by moving to the
        # emptiest one.
        fullest = max(load, key=lambda n: (load[n], n))
        assert all(size[h] == 0 or size[h] >= gap
                   for h, n in node_of.items() if n == fullest)


def test_rebalance_onto_a_node_that_joined() -> None:
    placed = {"a": {name(0): 5, name(1): 5, name(2): 5}, "b": {name(3): 5, name(4): 5,
                                                                 name(5): 5}, "new": {}}
    moves = rebalance_moves(placed)
    assert len(moves) == 2 and {node for _, node in moves} == {"new"}
    assert {node for _, node in moves} == {"new"}


def test_rebalance_of_an_even_cluster_moves_nothing() -> None:
    assert rebalance_moves({"a": {name(0): 5}, "b": {name(1): 5}}) == []
    assert rebalance_moves({"a": {name(0): 10}, "b": {}}) == []  # one host cannot split
