"""The directory places new hosts and drains by load, live auctions and commands/s (sampled
from the hosts' counters, actors.rates), over fakes of Ray and the store; a host that does not
answer its sample never holds up a placement."""

from __future__ import annotations

import asyncio

import pytest

from actors.config import ClusterConfig
from actors.directory import DirectoryCore
from testkit.client import wait_for
from tests.unit.directorykit import Clock, FakeActors, FakeStore, directory, host, settle

# One auction per host. n0: host 0; n1: hosts 1, 2; n2: hosts 3, 4, 5.
AUCTIONS = {f"a{i}": host(i) for i in range(6)}
FIRST = {host(0): "n0", host(1): "n1", host(2): "n1", host(3): "n2", host(4): "n2",
         host(5): "n2"}


async def test_a_node_busy_with_commands_gets_no_new_host_though_it_has_fewest_auctions(
) -> None:
    clock = Clock()
    core, actors = await directory(AUCTIONS, FIRST, per_actor=1, clock=clock)  # samples at 0
    assert core.target_node() == "n0"  # fewest auctions, no rates yet
    actors.running_on(host(0)).commands = 50  # 10 commands/s over the 5 s window
    clock.now = 5.0
    await core.ask_hosts()
    assert core.rates.per_s[host(0)] == 10.0
    name = await core.place("new")
    assert name == host(6) and core.node_of[name] == "n1"


async def test_a_drain_sends_hosts_to_the_node_with_least_load() -> None:
    # n0: host 0 (2 auctions) drains; n1: host 1 (1 auction, busy); n2: host 2 (2 auctions).
    auctions = {"a0": host(0), "b0": host(0), "a1": host(1), "a2": host(2), "b2": host(2)}
    clock = Clock()
    core, actors = await directory(auctions, {host(0): "n0", host(1): "n1", host(2): "n2"},
                                   clock=clock)
    actors.running_on(host(1)).commands = 25  # 5 commands/s: load 1 + 100
    clock.now = 5.0
    await core.ask_hosts()
    result = await core.moves.drain("n0")
    assert result["error"] is None
    assert [(m["host"], m["to"]) for m in result["moved"]] == [(host(0), "n2")]


async def test_a_host_that_does_not_answer_holds_up_no_placement_and_loses_its_rate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    core, actors = await directory(AUCTIONS, FIRST, per_actor=1, clock=clock)
    actors.running_on(host(0)).commands = 50
    actors.running_on(host(1)).commands = 50
    clock.now = 5.0
    await core.ask_hosts()
    stuck = actors.running_on(host(0))
    stuck.stuck.clear()
    clock.now = 10.0
    asking = asyncio.create_task(core.ask_hosts())  # waits STATS_TIMEOUT_S for host 0
    await settle()
    placed = await core.place("new")  # meanwhile, by the rates as last sampled
    assert core.node_of[placed] == "n2"  # n0 busy (host 0), n1 busy (host 1)
    assert not asking.done()
    asking.cancel()
    # With a deadline that passes: the others are sampled, host 0 and a dead host lose
    # their rates (counted as idle until they answer again).
    monkeypatch.setattr("actors.directory.STATS_TIMEOUT_S", 0.01)
    actors.running_on(host(2)).killed = True
    clock.now = 15.0
    actors.running_on(host(1)).commands = 150  # 10 commands/s since t=5 (the cancelled
    await core.ask_hosts()                      # sample at t=10 recorded nothing)
    assert core.rates.per_s == {host(1): 10.0, host(3): 0.0, host(4): 0.0, host(5): 0.0}
    stuck.stuck.set()


async def test_the_sampler_runs_in_the_background_until_shutdown() -> None:
    actors = FakeActors({host(0): "n1"})
    config = ClusterConfig(store_url="mongodb://fake/ece", auctions_per_actor=2)
    core = DirectoryCore(config, FakeStore({"a0": host(0)}), actors,  # type: ignore[arg-type]
                         sample_s=0.0)
    await core.ready()
    stats = actors.running_on(host(0)).stats
    asked = stats.calls
    await wait_for(lambda: stats.calls >= asked + 2, message="two background samples")
    await core.shutdown()
    assert core._sampling is not None and core._sampling.cancelled()


async def test_no_sampler_with_the_embedded_store() -> None:
    actors = FakeActors({})
    config = ClusterConfig(store_url="sqlite:///ece.db", auctions_per_actor=2)
    core = DirectoryCore(config, FakeStore({}), actors)  # type: ignore[arg-type]
    await core.ready()
    assert core._sampling is None
