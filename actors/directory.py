"""The directory: a named Ray actor that places auctions and offer threads on hosts and says
where each lives.

Placement state is derived from the store (each auction record names its host), so a restarted
directory rebuilds it by reading the open auctions; nothing here needs to be durable itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.config import ClusterConfig
from actors.host import AuctionHost
from actors.placement import choose_host
from market.offers import is_offer_id
from storage import Store, open_store
from storage.base import LIVE_OFFER_STATUSES, OPEN_STATUSES

log = logging.getLogger("ece.directory")


# Auctions released while unknown here (e.g. finished right after a directory restart): kept
# so a concurrent `locate` that read the record just before the close does not adopt them.
MAX_TOMBSTONES = 10_000


class DirectoryCore:
    def __init__(self, config: ClusterConfig, store: Store | None = None) -> None:
        self.config = config
        self.store: Store = store if store is not None else open_store(config.store_url)
        self.location: dict[str, str] = {}  # live auction -> host name
        self.load: dict[str, int] = {}  # host name -> live auctions placed on it
        self.handles: dict[str, ray.actor.ActorHandle[Any]] = {}
        self._released: OrderedDict[str, None] = OrderedDict()
        self._next_index = 0
        self._lock = asyncio.Lock()
        self._ready = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        await self.store.open()
        for record in await self.store.open_auctions():
            # Every open auction was created through a host, so its record names one.
            self._assign(record["auction_id"], record.get("host") or self.config.host_name(0))
        # Offer threads are placed like auctions: one entry per thread with work left.
        for offer in await self.store.open_offers():
            if offer["thread_id"] not in self.location:
                self._assign(offer["thread_id"], offer.get("host") or self.config.host_name(0))
        # Start every host that owns open auctions: each rebuilds them and runs their timers,
        # which is how auctions whose end passed during a downtime get closed on start.
        for name in list(self.load):
            self._handle(name)
        # Finished auctions whose settlement never ran (crash in between) belong to no live
        # host any more; hosts settle their own, this catches the rest.
        for record in await self.store.unsettled_finished():
            self._handle(record.get("host") or self.config.host_name(0))
        await asyncio.gather(*(h.ready.remote() for h in self.handles.values()))

    def _assign(self, auction_id: str, host: str) -> None:
        self.location[auction_id] = host
        self.load[host] = self.load.get(host, 0) + 1
        index = _host_index(host)
        if index is not None:
            self._next_index = max(self._next_index, index + 1)

    def _handle(self, name: str) -> ray.actor.ActorHandle[Any]:
        handle = self.handles.get(name)
        if handle is None:
            handle = AuctionHost.options(  # type: ignore[attr-defined]
                name=name,
                namespace=self.config.namespace,
                lifetime="detached",
                get_if_exists=True,
                scheduling_strategy=placement(self.config),
            ).remote(name, self.config.to_dict())
            self.handles[name] = handle
        return handle

    def _host_count(self) -> int:
        return len(self.load.keys() | self.handles.keys())

    async def place(self, auction_id: str) -> str | None:
        """Choose a host for a new auction (the fullest one with room, to pack memory).

        None when every host is full and starting another would exceed `max_hosts`.
        """
        await self._ready
        async with self._lock:
            if auction_id in self.location:
                return self.location[auction_id]
            name = choose_host(
                self.load, self.config.auctions_per_actor, self._next_index,
                self.config.max_hosts, self.config.host_name, self.handles.keys(),
            )
            if name is None:
                log.warning("no room for auction %s: %d hosts (max_hosts) are full",
                            auction_id, self._host_count())
                return None
            self._released.pop(auction_id, None)
            self._assign(auction_id, name)
            handle = self._handle(name)
        await handle.ready.remote()
        return name

    async def locate(self, auction_id: str) -> str | None:
        await self._ready
        name = self.location.get(auction_id)
        if name is not None:
            return name
        # Unknown here: placed before a restart of this directory but stored only after it
        # rebuilt itself from the store? The record says where it lives.
        host = await self._stored_host(auction_id)
        if host is None:
            return None
        async with self._lock:
            if auction_id in self._released:
                return None
            if auction_id not in self.location:
                log.info("adopting auction %s on %s from the store", auction_id, host)
                self._assign(auction_id, host)
                self._handle(host)
            return self.location[auction_id]

    async def _stored_host(self, entity_id: str) -> str | None:
        """The host a live auction or offer thread's record names (None: not live)."""
        if is_offer_id(entity_id):
            offer = await self.store.get_offer(entity_id)  # a thread's id is its first offer's
            live = offer is not None and (offer["status"] in LIVE_OFFER_STATUSES
                                          or offer.get("child_id") is not None)
            return (offer.get("host") or None) if offer is not None and live else None
        record = await self.store.get_auction(entity_id)
        if record is None or record["status"] not in OPEN_STATUSES:
            return None
        return record.get("host") or None

    async def revive(self, name: str) -> None:
        """Recreate a host that died for good (Ray restarts the others by itself).

        Only hosts with live auctions placed on them: a host retired after its auctions
        finished stays retired, whatever stale location a gateway still holds.
        """
        await self._ready
        async with self._lock:
            if self.load.get(name, 0) <= 0:
                return
            try:
                ray.get_actor(name, namespace=self.config.namespace)
                return
            except ValueError:
                self.handles.pop(name, None)
                handle = self._handle(name)
        await handle.ready.remote()

    async def release(self, auction_id: str, host: str) -> None:
        """A host finished an auction; retire hosts left empty when they hold one each."""
        await self._ready
        async with self._lock:
            if auction_id not in self.location:
                self._released[auction_id] = None
                if len(self._released) > MAX_TOMBSTONES:
                    self._released.popitem(last=False)
                return
            if self.location[auction_id] != host:
                return
            del self.location[auction_id]
            self.load[host] -= 1
            if self.load[host] == 0 and self.config.auctions_per_actor == 1:
                del self.load[host]
                handle = self.handles.pop(host, None)
                if handle is not None:
                    ray.kill(handle, no_restart=True)

    async def hosts(self) -> dict[str, int]:
        await self._ready
        return dict(self.load)

    async def ready(self) -> bool:
        await self._ready
        return True

    async def shutdown(self) -> None:
        """Kill every host (tests and `ece` shutdown of a private cluster)."""
        for handle in self.handles.values():
            ray.kill(handle, no_restart=True)
        self.handles.clear()


def _host_index(name: str) -> int | None:
    tail = name.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


# Ray's type stubs lack max_concurrency.
@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=1_000)  # type: ignore[call-overload]
class Directory:
    def __init__(self, config: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO)
        self.core = DirectoryCore(ClusterConfig.from_dict(config))

    async def place(self, auction_id: str) -> str | None:
        return await self.core.place(auction_id)

    async def locate(self, auction_id: str) -> str | None:
        return await self.core.locate(auction_id)

    async def release(self, auction_id: str, host: str) -> None:
        await self.core.release(auction_id, host)

    async def revive(self, name: str) -> None:
        await self.core.revive(name)

    async def hosts(self) -> dict[str, int]:
        return await self.core.hosts()

    async def ready(self) -> bool:
        return await self.core.ready()

    async def shutdown(self) -> None:
        await self.core.shutdown()


def placement(config: ClusterConfig) -> str | NodeAffinitySchedulingStrategy:
    """Spread over the nodes when the store is shared (MongoDB); an embedded store is a file
    on one machine, so everything that opens it stays on this node."""
    if config.store_url.startswith(("mongodb://", "mongodb+srv://")):
        return "SPREAD"
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


def get_or_create(actor_class: Any, name: str, config: ClusterConfig,
                  *args: Any) -> ray.actor.ActorHandle[Any]:
    """The instance's named, detached actor `name` of `actor_class`, created if missing
    (`args` follow the config in its constructor)."""
    handle: ray.actor.ActorHandle[Any] = actor_class.options(
        name=name,
        namespace=config.namespace,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=placement(config),
    ).remote(config.to_dict(), *args)
    return handle


def get_or_create_directory(config: ClusterConfig) -> ray.actor.ActorHandle[Any]:
    return get_or_create(Directory, config.directory_name(), config)
