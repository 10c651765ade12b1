"""The directory: a named Ray actor that places auctions and offer threads on hosts and says
where each lives.

Placement state is derived from the store (each auction record names its host), so a restarted
directory rebuilds it by reading the open auctions; the one thing it keeps there itself is
the set of draining nodes (actors.draining), reloaded on start without the nodes gone since.
Which node each host runs on is Ray's to say: the directory asks the hosts (`stats`), every
SAMPLE_S, and reads their command counters then (actors.rates).

With a shared store (MongoDB) a new host goes to the alive node with the least load (live
auctions and recent commands/s: actors.placement.placement_load) that is not draining, with
soft affinity (Ray may restart it elsewhere if that node dies). Hosts are the unit of move
(actors.moves: drain, rebalance). The embedded store (SQLite) is a file on one machine:
every actor stays on its node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

import ray

from actors.config import ClusterConfig
from actors.draining import load_draining, save_draining
from actors.moves import Mover
from actors.nodes import AliveNodes, Hosts, RayHosts, shared, strategy
from actors.placement import choose_host, choose_node, placement_load
from actors.rates import SAMPLE_S, CommandRates
from market.offers import is_offer_id
from storage import Store, open_store
from storage.base import LIVE_OFFER_STATUSES, OPEN_STATUSES

log = logging.getLogger("ece.directory")


# Auctions released while unknown here (e.g. finished right after a directory restart): kept
# so a concurrent `locate` that read the record just before the close does not adopt them.
MAX_TOMBSTONES = 10_000
# How long a host may take to answer `stats` (a dead or stuck one loses its rate).
STATS_TIMEOUT_S = 10.0
# The background sampler's `stats` calls per second, at most, averaged over a round.
MAX_STATS_PER_S = 100


class DirectoryCore:
    def __init__(self, config: ClusterConfig, store: Store | None = None,
                 hosts: Hosts | None = None, sample_s: float | None = SAMPLE_S) -> None:
        """`sample_s`: how often the hosts' command counters are sampled in the background
        (with a shared store; None: only when `ask_hosts` is called)."""
        self.config = config
        self.actors: Hosts = hosts if hosts is not None else RayHosts(config)
        self.store: Store = store if store is not None else open_store(config.store_url)
        self.location: dict[str, str] = {}  # live auction -> host name
        self.load: dict[str, int] = {}  # host name -> live auctions placed on it
        self.handles: dict[str, ray.actor.ActorHandle[Any]] = {}
        self.node_of: dict[str, str] = {}  # host name -> the Ray node it runs on
        self.draining: set[str] = set()  # nodes no new or moved host goes to (stored)
        self.rates = CommandRates()  # recent commands/s per host
        self.clock = time.monotonic
        self.moving: dict[str, asyncio.Future[None]] = {}  # host name -> its move's end
        self.alive = AliveNodes(self.actors)
        self._released: OrderedDict[str, None] = OrderedDict()
        self._next_index = 0
        self._lock = asyncio.Lock()
        self.moves = Mover(self)
        loop = asyncio.get_running_loop()
        self._ready = loop.create_task(self._start())
        self._sampling = (loop.create_task(self._sample_every(sample_s))
                          if sample_s is not None and shared(config) else None)

    async def _start(self) -> None:
        await self.store.open()
        await self.alive.refresh()
        await self._restore_draining()
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
            self.start(name)
        # Finished auctions whose settlement never ran (crash in between) belong to no live
        # host any more; hosts settle their own, this catches the rest.
        for record in await self.store.unsettled_finished():
            self.start(record.get("host") or self.config.host_name(0))
        await asyncio.gather(*(h.ready.remote() for h in self.handles.values()))
        await self.refresh_nodes()

    async def _restore_draining(self) -> None:
        """The draining mark as stored, without the nodes no longer alive (stored so)."""
        stored = await load_draining(self.store)
        self.draining = stored & set(self.alive.nodes)
        if self.draining != stored:
            await save_draining(self.store, self.draining)
        if self.draining:
            log.info("nodes still draining: %s", ", ".join(sorted(self.draining)))

    async def mark_draining(self, node: str) -> None:
        """No new or moved host goes to `node` from now on, in this directory and (once this
        returns) in a restarted one."""
        self.draining.add(node)
        await save_draining(self.store, self.draining)

    def _assign(self, auction_id: str, host: str) -> None:
        self.location[auction_id] = host
        self.load[host] = self.load.get(host, 0) + 1
        index = _host_index(host)
        if index is not None:
            self._next_index = max(self._next_index, index + 1)

    def start(self, name: str, node: str | None = None) -> ray.actor.ActorHandle[Any]:
        """The host `name`, started (on `node`, or the least-loaded one) if not running."""
        handle = self.handles.get(name)
        if handle is None:
            target = node or self.target_node()
            handle = self.handles[name] = self.actors.spawn(name, target)
            if target is not None:
                self.node_of[name] = target  # until the host says where it runs
        return handle

    async def _started(self, name: str) -> ray.actor.ActorHandle[Any]:
        """`start`, after the end of a move of that host if one is under way."""
        while (moving := self.moving.get(name)) is not None:
            await asyncio.shield(moving)
        return self.start(name)

    # ---- nodes ---------------------------------------------------------------------------

    def target_node(self) -> str | None:
        """The node for a new host (shared store only): see placement.choose_node."""
        if not shared(self.config):
            return None
        self.alive.soon()  # listed again in the background if stale
        placed = self.placed()
        return choose_node({n: sum(h.values()) for n, h in placed.items()},
                           {n: len(h) for n, h in placed.items()}, self.draining,
                           {n: sum(self.rates.per_s.get(h, 0.0) for h in hosts)
                            for n, hosts in placed.items()})

    def placed(self) -> dict[str, dict[str, int]]:
        """Every alive node (as last listed) -> its hosts -> their live auctions."""
        placed: dict[str, dict[str, int]] = {node: {} for node in self.alive.nodes}
        for name in self.handles:
            node = self.node_of.get(name)
            if node in placed:
                placed[node][name] = self.load.get(name, 0)
        return placed

    def loads(self, placed: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """`placed` with each host's live auctions replaced by its `placement_load`."""
        return {node: {name: placement_load(count, self.rates.per_s.get(name, 0.0))
                       for name, count in hosts.items()}
                for node, hosts in placed.items()}

    async def refresh_nodes(self) -> None:
        """List the alive nodes and ask every host where it runs (Ray may have restarted
        one elsewhere)."""
        await self.alive.refresh()
        await self.ask_hosts()

    async def ask_hosts(self) -> None:
        """Ask every host (not being moved) where it runs and how many commands it took, each
        within STATS_TIMEOUT_S; one that does not answer loses its rate (it counts as idle
        until it answers again). Nothing waits for this but its caller."""
        asked = [(n, h) for n, h in self.handles.items() if n not in self.moving]
        at = self.clock()
        answers = await asyncio.gather(
            *(asyncio.wait_for(h.stats.remote(), STATS_TIMEOUT_S) for _, h in asked),
            return_exceptions=True)
        for (name, handle), answer in zip(asked, answers, strict=True):
            if self.handles.get(name) is not handle or name in self.moving:
                continue  # moved or retired meanwhile: this answer is about the old actor
            if isinstance(answer, dict):
                self.node_of[name] = answer["node_id"]
                if isinstance(answer.get("commands"), int):
                    self.rates.sample(name, answer["commands"], at)
            else:
                self.rates.forget(name)
        self.rates.keep(self.handles.keys())

    async def _sample_every(self, period_s: float) -> None:
        """`ask_hosts` every `period_s`, for the rates placement weighs (never on a caller's
        path: a placement uses the rates as last sampled)."""
        try:
            await self._ready
        except Exception:
            return  # the directory did not start: its callers see why
        while True:
            # The sampling period, not a synchronisation; longer with many hosts (e.g. one
            # auction per actor), so that sampling stays a small share of the directory's work.
            await asyncio.sleep(max(period_s, len(self.handles) / MAX_STATS_PER_S))
            try:
                await self.ask_hosts()
            except Exception:
                log.warning("sampling the hosts failed", exc_info=True)

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
        handle = await self._started(name)
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
                if host not in self.moving:  # else the move starts it
                    self.start(host)
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
        moving = self.moving.get(name)
        if moving is not None:  # being moved: it is started elsewhere by the move
            await asyncio.shield(moving)
            return
        async with self._lock:
            if self.load.get(name, 0) <= 0 or self.actors.running(name):
                return
            self.handles.pop(name, None)
            handle = self.start(name)
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
            if self.load[host] > 0 or self.config.auctions_per_actor != 1:
                return
            del self.load[host]
            self.node_of.pop(host, None)
        # A move of it under way would start it again: retire whatever it leaves running.
        while (moving := self.moving.get(host)) is not None:
            await asyncio.shield(moving)
        if host in self.load:  # placed on again meanwhile (adopted from the store)
            return
        self.node_of.pop(host, None)
        handle = self.handles.pop(host, None)
        if handle is not None:
            self.actors.kill(handle)

    async def hosts(self) -> dict[str, int]:
        await self._ready
        return dict(self.load)

    async def nodes(self) -> dict[str, Any]:
        """Alive nodes -> hosts -> live auctions, and the nodes draining."""
        await self._ready
        await self.refresh_nodes()
        return {"nodes": self.placed(), "draining": sorted(self.draining)}

    async def ready(self) -> bool:
        await self._ready
        return True

    async def shutdown(self) -> None:
        """Kill every host (tests and `ece` shutdown of a private cluster)."""
        if self._sampling is not None:
            self._sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampling
        for handle in self.handles.values():
            self.actors.kill(handle)
        self.handles.clear()
        self.node_of.clear()


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

    async def nodes(self) -> dict[str, Any]:
        return await self.core.nodes()

    async def drain(self, node_id: str) -> dict[str, Any]:
        return await self.core.moves.drain(node_id)

    async def rebalance(self) -> dict[str, Any]:
        return await self.core.moves.rebalance()

    async def move(self, name: str, node: str | None = None) -> dict[str, Any]:
        return await self.core.moves.move(name, node)

    async def ready(self) -> bool:
        return await self.core.ready()

    async def shutdown(self) -> None:
        await self.core.shutdown()


def get_or_create(actor_class: Any, name: str, config: ClusterConfig,
                  *args: Any) -> ray.actor.ActorHandle[Any]:
    """The instance's named, detached actor `name` of `actor_class`, created if missing
    (`args` follow the config in its constructor); spread over the nodes with a shared store,
    on this node with the embedded one (see actors.nodes.strategy)."""
    handle: ray.actor.ActorHandle[Any] = actor_class.options(
        name=name,
        namespace=config.namespace,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=strategy(config, None),
    ).remote(config.to_dict(), *args)
    return handle


def get_or_create_directory(config: ClusterConfig) -> ray.actor.ActorHandle[Any]:
    return get_or_create(Directory, config.directory_name(), config)
