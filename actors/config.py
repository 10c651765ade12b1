"""Settings every actor of one ECE instance shares (picklable, passed at creation)."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

from market.provenance import Ed25519Signer


@dataclass(frozen=True)
class ClusterConfig:
    store_url: str
    # Prefix of every named actor, so several instances (tests, tenants) share a Ray cluster.
    instance: str = "ece"
    namespace: str = "ece"
    auctions_per_actor: int = 500
    # Cap on auction host actors (each costs ~80 MB): `place` refuses past it (returns None).
    max_hosts: int = 100
    # False = the benchmark's baseline: the gateway sends one call per command instead of
    # coalescing them (gateway.router); hosts, commits and fan-out are unchanged.
    batching: bool = True
    # True: the gateway sends the bid path's calls (submit, submit_read, submit_offers) to a
    # host on its own machine over the host's Unix socket (actors.direct); False: by Ray.
    direct: bool = True
    snapshot_every: int = 200
    feed_capacity: int = 100_000
    # Fees of a settled sale, in basis points of the price (market.ledger.settlement).
    seller_fee_bps: int = 500
    buyer_premium_bps: int = 0
    # Fee of a trade offer's cash leg, paid by whoever receives the cash (market.offers).
    offer_fee_bps: int = 0
    # Price projections (actors.analytics.prices), each owning the cards that hash to it.
    price_shards: int = 1
    # Behaviour projections (actors.analytics.behaviour), each owning the users that hash to it.
    behaviour_shards: int = 1
    # Portfolio actors (actors.portfolio), each owning the users that hash to it, and what
    # their figures take: the annual risk-free rate (Sharpe) and the concentration warning.
    portfolio_shards: int = 1
    risk_free_rate: float = 0.0
    concentration_share: float = 0.25
    # The exchange's Ed25519 provenance key (base64 of 32 raw bytes): hosts sign the token
    # transfers of the sales they settle. Empty: no signer (tests of the rules alone).
    provenance_key: str = field(default="", repr=False)

    def signer(self) -> Ed25519Signer | None:
        if not self.provenance_key:
            return None
        return Ed25519Signer.from_private_bytes(base64.b64decode(self.provenance_key))

    def directory_name(self) -> str:
        return f"{self.instance}:directory"

    def analytics_name(self) -> str:
        return f"{self.instance}:analytics"

    def portfolio_name(self, shard: int) -> str:
        return f"{self.instance}:portfolio:{shard}"

    def host_name(self, index: int) -> str:
        return f"{self.instance}:host:{index}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterConfig:
        return cls(**data)
