"""The per-process state every handler shares: one `Gateway`, kept in the app under GATEWAY.

Handlers reach it with `gateway_of(request)`; this module imports no handler module (rest,
ws), so they can import it without a cycle.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from actors.analytics.runner import read_lag
from actors.clock import now_ms
from actors.messages import GetView, Viewed
from gateway.auth import Tokens
from gateway.channels import Channels
from gateway.config import Settings
from gateway.fanout import Hub
from gateway.limits import ConnectionCounter, KeyedLimiter, LRUCache
from gateway.notices import Notices
from gateway.router import Router
from gateway.views import present_view
from gateway.watches import OUTCOMES as WATCH_OUTCOMES
from gateway.watches import Watches
from market.ledger import public_ref
from market.provenance import Ed25519Signer
from storage import Store, StoreError, open_store
from storage.records import AssetRecord, CardRecord

if TYPE_CHECKING:
    from gateway.ws import Connection

log = logging.getLogger("ece.gateway")
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
# Per-key state (rate buckets, caches) is an LRU this large: memory stays bounded whatever
# number of users, addresses or auctions a client makes up.
MAX_KEYS = 100_000
ME_SUBSCRIBES_PER_S = 1.0
ME_SUBSCRIBES_BURST = 10.0


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
        self.lag_facts = Gauge("ece_projection_lag_facts",
                               "Feed facts an analytics projection has not folded yet",
                               ["projection"], registry=self.registry)
        self.lag_seconds = Gauge("ece_projection_lag_seconds",
                                 "Age of the oldest fact a projection has not folded yet",
                                 ["projection"], registry=self.registry)
        self.watch_writes = Counter("ece_watch_writes",
                                    "Watches of a subscribe, by what became of them",
                                    ["outcome"], registry=self.registry)
        for outcome in WATCH_OUTCOMES:  # each shown from the start, at 0
            self.watch_writes.labels(outcome)


class Gateway:
    """Per-process state the handlers share; created on startup, closed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.tokens = Tokens(settings.signing_secret(), settings.token_ttl_s,
                             previous=settings.secret_previous)
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
                       for kind in ("mints", "listings", "payments", "offers")}
        # `me` subscribes per user (each may replay up to 1,000 stored events).
        # Its share of it with several gateway processes, as for the settings' limits
        # (gateway.limits.process_share).
        self.me_subscribes = KeyedLimiter(ME_SUBSCRIBES_PER_S / settings.gateways,
                                          ME_SUBSCRIBES_BURST / settings.gateways, MAX_KEYS)
        self.conns_by_ip = ConnectionCounter(settings.max_conn_per_ip, MAX_KEYS)
        self.conns_by_user = ConnectionCounter(settings.max_conn_per_user, MAX_KEYS)
        self._listings: LRUCache[str, Listing] = LRUCache(MAX_KEYS)
        self._assets_of: LRUCache[str, str] = LRUCache(MAX_KEYS)  # auction id -> asset id
        self._usernames: LRUCache[str, str] = LRUCache(MAX_KEYS)  # user id -> username
        self.notices = Notices(self.store, self.notice_data)
        # Who subscribed to which auction (analytics).
        self.watches = Watches(self.store, self.metrics.watch_writes)
        self.channels = Channels(self.store, self.refresh_lag, to_user=self.notices.push)
        self.lag: dict[str, dict[str, Any]] = {}  # projection -> lag (refreshed each second)
        self.seeding = False  # the demo's market history is being added

    async def start(self) -> None:
        await self.store.open()
        await self.check_ledger()
        await self.notices.start()
        await self.channels.start()
        self.router = Router(self.settings.cluster(), self.store, self.settings.max_inflight)
        self.hub = Hub(self.router, self.store, self.present, self.metrics.registry)
        await self.router.ready()
        self.ready = True

    async def close_sockets(self) -> None:
        """Shutdown, first step: stop taking work and close every WebSocket with 1001."""
        self.ready = False
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                               for c in set(self.connections)), return_exceptions=True)

    async def stop(self) -> None:
        """Shutdown, last step (after every handler finished): release the store."""
        await self.notices.close()
        await self.channels.close()
        await self.hub.close()
        await self.watches.close()
        await self.store.close()

    async def check_ledger(self) -> None:
        """Finish half-applied journal entries, then refuse to serve on a broken ledger."""
        finished = await self.store.recover_ledger()
        if finished:
            log.warning("ledger: finished %d half-applied entries", finished)
        problems = await self.store.check_ledger()
        if problems:
            for problem in problems[:20]:
                log.error("ledger: %s", problem)
            raise StoreError(f"the ledger is broken ({len(problems)} problems); not serving")

    async def refresh_lag(self) -> None:
        """The projections' lag, for /healthz, /api/analytics/market and the metrics."""
        self.lag = await read_lag(self.store, self.settings.price_shards,
                                  self.settings.behaviour_shards, now_ms(),
                                  self.settings.portfolio_shards)
        for name, lag in self.lag.items():
            self.metrics.lag_facts.labels(name).set(lag["facts_behind"])
            self.metrics.lag_seconds.labels(name).set(lag["seconds_behind"])

    async def listing_of(self, asset_id: str) -> Listing:
        """What the auction list shows of an asset: its title and its card (immutable, so
        cached); empty for an unknown asset."""
        found = self._listings.get(asset_id)
        if found is None:
            asset = await self.store.get_asset(asset_id)
            card_id = asset.get("card_id") if asset else None
            card = await self.store.get_card(card_id) if card_id else None
            found = Listing.of(asset, card)
            self._listings.put(asset_id, found)
        return found

    async def username_of(self, user_id: str) -> str | None:
        """A user's name (names never change: cached), None for no such user."""
        name = self._usernames.get(user_id)
        if name is None:
            user = await self.store.get_user(user_id)
            if user is None:
                return None
            name = user["username"]
            self._usernames.put(user_id, name)
        return name

    async def named(self, offer: dict) -> dict:
        """A trade offer with its two parties' names beside their ids."""
        return {**offer, "from_name": await self.username_of(offer["from_id"]),
                "to_name": await self.username_of(offer["to_id"])}

    async def title_of(self, asset_id: str) -> str:
        return (await self.listing_of(asset_id)).title

    async def enrich(self, view: dict, terms: bool = False) -> dict:
        """Add the asset's title and card to an auction view (`terms`: with the card's
        search terms, for the list's filters)."""
        asset_id = view.get("asset_id")
        if not asset_id:
            return {**view, "title": "", "card": None}
        listing = await self.listing_of(asset_id)
        card = listing.card
        if card is not None and terms:
            card = {**card, "terms": listing.terms}
        return {**view, "title": listing.title, "card": card}

    async def notice_data(self, data: dict) -> dict:
        """A notice's data as the user channel shows it: a payment's `ref` as the wallet
        shows it, other notices with the title of their card."""
        if "cause" in data and isinstance(data.get("ref"), str):
            return {**data, "ref": public_ref(data["cause"], data["ref"])}
        if isinstance(data.get("offer"), dict):
            return {**data, "offer": await self.named(data["offer"])}
        if "title" in data:
            return data
        asset_id = data.get("asset_id")
        auction_id = data.get("auction_id")
        if not asset_id and isinstance(auction_id, str):
            asset_id = self._assets_of.get(auction_id)
            if asset_id is None:
                record = await self.store.get_auction(auction_id)
                asset_id = record["asset_id"] if record else ""
                self._assets_of.put(auction_id, asset_id)
        return {**data, "title": await self.title_of(asset_id) if asset_id else ""}

    async def present(self, view: dict, terms: bool = False) -> dict:
        """A stored view as clients see it. A live Dutch price depends on the clock, so the
        host that judges the bids (and its clock) prices it; the stored view is the fallback
        when the host cannot answer."""
        if view.get("type") == "dutch" and view.get("status") == "live":
            reply = await self.router.send(GetView(view["auction_id"]))
            view = reply.auction if isinstance(reply, Viewed) else present_view(view)
        return await self.enrich(view, terms)

    async def present_all(self, views: list[dict], terms: bool = False) -> list[dict]:
        return list(await asyncio.gather(*(self.present(v, terms) for v in views)))


@dataclass(frozen=True)
class Listing:
    title: str
    card: dict[str, Any] | None  # card_id, name, set, year, category, player, character,
    terms: tuple[str, ...]  # grader, grade; None for a legacy asset

    @classmethod
    def of(cls, asset: AssetRecord | None, card: CardRecord | None) -> Listing:
        if asset is None:
            return cls("", None, ())
        if card is None:
            return cls(asset["title"], None, ())
        public = {key: card.get(key) for key in CARD_FIELDS}
        public.update(grader=asset.get("grader"), grade=asset.get("grade"))
        return cls(asset["title"], public, tuple(card["terms"]))


CARD_FIELDS = ("card_id", "name", "set", "year", "category", "player", "character")


def gateway_of(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
