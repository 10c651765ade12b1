"""The per-process state every handler shares: one `Gateway`, kept in the app under GATEWAY.

Handlers reach it with `gateway_of(request)`; this module imports no handler module (rest,
ws), so they can import it without a cycle.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from actors.messages import GetView, Viewed
from gateway.auth import Tokens
from gateway.config import Settings
from gateway.fanout import HostFeeds, Hub, WatcherFeeds
from gateway.limits import ConnectionCounter, KeyedLimiter, LRUCache
from gateway.router import Router
from gateway.views import present_view
from market.provenance import Ed25519Signer
from storage import Store, open_store

if TYPE_CHECKING:
    from gateway.ws import Connection

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
# Per-key state (rate buckets, caches) is an LRU this large: memory stays bounded whatever
# number of users, addresses or auctions a client makes up.
MAX_KEYS = 100_000


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge("ece_ws_connections", "Open WebSocket connections",
                                 registry=self.registry)
        self.bids = Counter("ece_bids_total", "Bid commands answered, by outcome", ["code"],
                            registry=self.registry)
        self.errors = Counter("ece_ws_errors_total", "Rejected WebSocket messages", ["code"],
                              registry=self.registry)
        self.bid_seconds = Histogram(
            "ece_bid_seconds", "Bid round trip inside the gateway",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )


class Gateway:
    """Per-process state the handlers share; created on startup, closed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.tokens = Tokens(settings.signing_secret(), settings.token_ttl_s)
        # Signs the provenance of the tokens minted here (hosts sign the sales they settle).
        self.signer = Ed25519Signer.from_private_bytes(settings.provenance_private_key())
        self.metrics = Metrics()
        self.connections: set[Connection] = set()
        self.store: Store = open_store(settings.store_url)
        self.router: Router
        self.hub: Hub
        self.ready = False
        per_min = 1 / 60
        self.bids_by_user = KeyedLimiter(settings.rate_per_s, settings.rate_burst, MAX_KEYS)
        self.auth_by_ip = KeyedLimiter(settings.auth_ip_per_min * per_min,
                                       settings.auth_ip_burst, MAX_KEYS)
        self.auth_by_user = KeyedLimiter(settings.auth_user_per_min * per_min,
                                         settings.auth_user_burst, MAX_KEYS)
        self.quotas = {kind: KeyedLimiter(settings.create_per_min * per_min,
                                          settings.create_burst, MAX_KEYS)
                       for kind in ("mints", "listings")}
        self.conns_by_ip = ConnectionCounter(settings.max_conn_per_ip, MAX_KEYS)
        self.conns_by_user = ConnectionCounter(settings.max_conn_per_user, MAX_KEYS)
        self._titles: LRUCache[str, str] = LRUCache(MAX_KEYS)

    async def start(self) -> None:
        await self.store.open()
        self.router = Router(self.settings.cluster(), self.store, self.settings.max_inflight)
        # Chosen once: one poller per host, or (the naive baseline) one per watcher.
        feeds = HostFeeds if self.settings.batching else WatcherFeeds
        self.hub = Hub(self.router, self.store, self.present, feeds)
        await self.router.ready()
        self.ready = True

    async def close_sockets(self) -> None:
        """Shutdown, first step: stop taking work and close every WebSocket with 1001."""
        self.ready = False
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                               for c in set(self.connections)), return_exceptions=True)

    async def stop(self) -> None:
        """Shutdown, last step (after every handler finished): release the store."""
        await self.hub.close()
        await self.store.close()

    async def enrich(self, view: dict) -> dict:
        """Add the card's title (immutable, so cached) to an auction view."""
        asset_id = view.get("asset_id")
        title = self._titles.get(asset_id) if asset_id else None
        if title is None and asset_id:
            asset = await self.store.get_asset(asset_id)
            title = asset["title"] if asset else ""
            self._titles.put(asset_id, title)
        return {**view, "title": title or ""}

    async def present(self, view: dict) -> dict:
        """A stored view as clients see it. A live Dutch price depends on the clock, so the
        host that judges the bids (and its clock) prices it; the stored view is the fallback
        when the host cannot answer."""
        if view.get("type") == "dutch" and view.get("status") == "live":
            reply = await self.router.send(GetView(view["auction_id"]))
            view = reply.auction if isinstance(reply, Viewed) else present_view(view)
        return await self.enrich(view)

    async def present_all(self, views: list[dict]) -> list[dict]:
        return list(await asyncio.gather(*(self.present(v) for v in views)))


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
