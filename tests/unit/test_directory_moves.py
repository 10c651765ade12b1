"""The directory's host moves (actors.moves) over fakes of Ray and the store: concurrent
drains and rebalances, a failed stop, a release during a move, and placement that never waits
for Ray's node list."""

from __future__ import annotations

import asyncio

from actors.moves import EMBEDDED_STORE
from tests.unit.directorykit import NODES, directory, host, settle

# Hosts 0 and 1 on n0 (two auctions each), host 2 on n1; n2 empty.
AUCTIONS = {"a0": host(0), "a1": host(0), "a2": host(1), "a3": host(1), "a4": host(2)}
FIRST = {host(0): "n0", host(1): "n0", host(2): "n1"}


async def test_a_second_drain_while_the_first_runs_moves_no_host_twice() -> None:
    core, actors = await directory(AUCTIONS, FIRST)
    actors.stopping.clear()
    first = asyncio.create_task(core.moves.drain("n0"))
    await settle()
    second = asyncio.create_task(core.moves.drain("n0"))
    await settle()
    actors.stopping.set()
    one, two = await asyncio.gather(first, second)
    assert one["error"] is None and sorted(m["host"] for m in one["moved"]) == [host(0),
                                                                              host(1)]
    assert two == {"moved": [], "error": None}  # planned after the first: nothing left
    assert actors.starts(host(0)) == actors.starts(host(1)) == 2  # first start + one move
    assert core.placed()["n0"] == {}


async def test_a_drain_during_a_rebalance_plans_from_where_the_rebalance_left_hosts() -> None:
    core, actors = await directory(AUCTIONS, FIRST)
    actors.stopping.clear()
    rebalance = asyncio.create_task(core.moves.rebalance())  # one host of n0 goes to n2
    await settle()
    drain = asyncio.create_task(core.moves.drain("n0"))
    await settle()
    actors.stopping.set()
    balanced, drained = await asyncio.gather(rebalance, drain)
    [rebalanced] = balanced["moved"]
    assert rebalanced["to"] == "n2"
    assert [m["host"] for m in drained["moved"]] == [({host(0), host(1)} - {
        rebalanced["host"]}).pop()]
    assert all(actors.starts(host(i)) <= 2 for i in range(3))
    assert core.placed()["n0"] == {}


async def test_a_failed_stop_leaves_no_dead_handle_in_the_directory() -> None:
    core, actors = await directory(AUCTIONS, FIRST)
    actors.stop_error = TimeoutError("still running")
    result = await core.moves.move(host(2), "n2")
    assert result["moved"] == [] and "TimeoutError" in result["error"]
    assert host(2) not in core.handles and host(2) not in core.node_of
    # The next use starts it afresh (by name), not the killed handle.
    assert not core.start(host(2)).killed


async def test_a_release_during_a_move_retires_the_host_the_move_started() -> None:
    core, actors = await directory({"a0": host(0)}, {host(0): "n0"}, per_actor=1)
    actors.stopping.clear()
    move = asyncio.create_task(core.moves.move(host(0), "n1"))
    await settle()
    release = asyncio.create_task(core.release("a0", host(0)))
    await settle()
    actors.stopping.set()
    await asyncio.gather(move, release)
    assert all(h.killed for h in actors.spawned), [(h.node, h.killed) for h in actors.spawned]
    assert host(0) not in core.handles and host(0) not in core.node_of
    assert core.load == {}


async def test_placing_a_new_host_does_not_wait_for_the_node_list() -> None:
    core, actors = await directory({}, {}, per_actor=1)
    actors.listing.clear()  # Ray's node list does not answer
    names = [await core.place(f"a{i}") for i in range(3)]
    assert names == [host(0), host(1), host(2)]
    # Spread by load over the nodes as last listed.
    assert sorted(core.node_of[n] for n in names) == NODES
    actors.listing.set()


async def test_moves_are_refused_with_the_embedded_store() -> None:
    core, _ = await directory(AUCTIONS, FIRST, store_url="sqlite:///ece.db")
    for result in (await core.moves.drain("n0"), await core.moves.rebalance(),
                   await core.moves.move(host(0), "n1")):
        assert result == {"moved": [], "error": EMBEDDED_STORE}
