"""The directory under failures, on the session's Ray cluster: a restart that forgot a placed
auction, a stale `revive` of a retired host, and the cap on host actors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import ray

from actors.config import ClusterConfig
from actors.directory import get_or_create_directory
from actors.messages import GetView, Viewed
from market.auction import Auction, AuctionSpec
from storage import Store, open_store
from testkit.client import unique, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAMESPACE = "ece"


@dataclass
class Instance:
    config: ClusterConfig
    store: Store
    directory: ray.actor.ActorHandle

    def host(self, name: str) -> ray.actor.ActorHandle:
        return ray.get_actor(name, namespace=NAMESPACE)

    async def record(self, auction_id: str, host: str, duration_ms: int = 600_000) -> dict:
        """A stored asset and the auction record the router hands to `host.create`."""
        now = int(time.time() * 1000)
        asset_id = f"c_{auction_id}"
        await self.store.create_asset({"asset_id": asset_id, "owner_id": "u_seller",
                                       "title": "t", "metadata": {}, "created_at": now})
        spec = AuctionSpec(auction_id=auction_id, asset_id=asset_id, seller_id="u_seller",
                           type="english", start_price=100, starts_at=now,
                           ends_at=now + duration_ms, created_at=now, soft_close_ms=0)
        return {"auction_id": auction_id, "asset_id": asset_id, "seller_id": "u_seller",
                "host": host, "spec": spec.to_dict(), "view": Auction(spec).view(now),
                "status": "scheduled", "seq": 0, "created_at": now}

    async def create(self, auction_id: str, duration_ms: int = 600_000) -> str:
        """What the router does: place, then have the chosen host store and start it."""
        name = await self.directory.place.remote(auction_id)
        assert name is not None
        created = await self.host(name).create.remote(
            await self.record(auction_id, name, duration_ms))
        assert isinstance(created, Viewed), created
        return name


def _alive(name: str) -> bool:
    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


@pytest_asyncio.fixture(loop_scope="session")
async def instance(request, ray_cluster, tmp_path: Path) -> AsyncIterator[Instance]:
    """A directory of its own (unique instance name, own SQLite file); every actor of the
    instance is killed at the end, including hosts the directory no longer knows."""
    overrides = getattr(request, "param", {})
    url = f"sqlite:///{tmp_path / 'actors.db'}?synchronous=OFF"
    config = ClusterConfig(store_url=url, instance=unique("af"), **overrides)
    store = open_store(url)
    await store.open()
    directory = get_or_create_directory(config)
    await directory.ready.remote()
    try:
        yield Instance(config, store, directory)
    finally:
        with contextlib.suppress(Exception):
            await directory.shutdown.remote()
        ray.kill(directory, no_restart=True)
        for index in range(10):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(config.host_name(index), namespace=NAMESPACE),
                         no_restart=True)
        await store.close()


@pytest.mark.parametrize("instance", [{"auctions_per_actor": 10}], indirect=True)
async def test_directory_restart_between_place_and_insert_still_locates(instance):
    directory = instance.directory
    name = await directory.place.remote("a1")
    assert name is not None
    # The directory restarts now: it rebuilds from a store that has no a1 yet.
    ray.kill(directory, no_restart=False)

    async def restarted() -> bool:
        return await directory.hosts.remote() == {}

    await wait_for(restarted, timeout=60, interval=0.1, message="directory restarted")
    # The host stores the auction only now (the router's create, after place).
    created = await instance.host(name).create.remote(await instance.record("a1", name))
    assert isinstance(created, Viewed), created

    assert await directory.locate.remote("a1") == name
    assert await directory.hosts.remote() == {name: 1}  # adopted into the counts
    # Finished auctions and unknown ids are still not located.
    assert await directory.locate.remote("nope") is None


@pytest.mark.parametrize("instance", [{"auctions_per_actor": 1}], indirect=True)
async def test_stale_revive_does_not_resurrect_a_retired_host(instance):
    directory = instance.directory
    name = await instance.create("a1", duration_ms=1_000)

    async def retired() -> bool:
        return await directory.hosts.remote() == {} and not _alive(name)

    await wait_for(retired, timeout=30, interval=0.1, message="host retired after the close")
    record = await instance.store.get_auction("a1")
    assert record["status"] == "closed" and record["settled"]

    # A gateway still caching a1 -> name finds the actor gone and asks for a revive.
    await directory.revive.remote(name)
    assert not _alive(name)
    assert await directory.hosts.remote() == {}


@pytest.mark.parametrize("instance", [{"auctions_per_actor": 10}], indirect=True)
async def test_revive_recreates_a_dead_host_that_has_live_auctions(instance):
    directory = instance.directory
    name = await instance.create("a1")
    ray.kill(instance.host(name), no_restart=True)  # dead for good: Ray will not restart it
    await wait_for(lambda: not _alive(name), timeout=30, message="host gone")

    await directory.revive.remote(name)
    [answer] = await instance.host(name).submit.remote([GetView("a1")])
    assert isinstance(answer, Viewed) and answer.auction["status"] == "live"


@pytest.mark.parametrize("instance", [{"auctions_per_actor": 1, "max_hosts": 2},
                                      {"auctions_per_actor": 2, "max_hosts": 1}],
                         ids=["per-auction", "hosted"], indirect=True)
async def test_place_refuses_past_max_hosts(instance):
    directory = instance.directory
    per_actor = instance.config.auctions_per_actor
    room = per_actor * instance.config.max_hosts
    placed = [await directory.place.remote(f"a{i}") for i in range(room)]
    assert None not in placed
    assert len(set(placed)) == instance.config.max_hosts

    assert await directory.place.remote("over") is None
    assert await directory.locate.remote("over") is None
    assert sum((await directory.hosts.remote()).values()) == room
    assert await directory.place.remote("a0") == placed[0]  # known ids are still answered

    # A placement given back (the router's create failed) makes room again.
    await directory.release.remote("a0", placed[0])
    again = await directory.place.remote("over")
    assert again is not None
    assert len(await directory.hosts.remote()) <= instance.config.max_hosts
