"""The swap of an accepted trade offer: a saga of idempotent steps keyed by the offer id.

1. Lock every asset of both sides for this offer (`Store.lock_assets`, all or none): from
   here nobody can list, redeem or trade them, and an auction cannot take them.
2. Move the cash, if any: one ledger entry keyed by the offer (`market.offers.Offer.
   cash_entry`; the fee of the cash leg only). Refused INSUFFICIENT_FUNDS: unlock, `failed`.
3. Move every asset to its new owner with its token's signed transfer record
   (`Store.move_locked_asset`, which also unlocks it).

Steps 1-2 may be undone (the locks given back, the offer `failed`); once the cash moved or
any asset moved, the swap only goes forward. `run` finds out where an earlier attempt
stopped from the store alone (the entry, the token chains naming this offer), so it is
safe to repeat after any failure or crash and always ends the same way: all assets changed
owner and the cash moved, or nothing did.
"""

from __future__ import annotations

import logging
from typing import cast

from actors.clock import Clock
from actors.config import ClusterConfig
from market import ledger
from market.errors import INSUFFICIENT_FUNDS, MarketError
from market.offers import FAILED, SETTLED, Offer
from market.provenance import Record, next_record, token_id_for
from storage import Conflict, Store
from storage.base import offer_lock
from storage.records import EntryRecord, ProvenanceRecord

log = logging.getLogger("ece.swap")


class Swapper:
    """Runs swap attempts for one host (its store, offer fee, signer and clock)."""

    def __init__(self, store: Store, config: ClusterConfig, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.fee_bps = config.offer_fee_bps
        self._signer = config.signer()

    async def run(self, offer: Offer) -> tuple[str, str | None]:
        """One attempt of the whole swap: (SETTLED, None) or (FAILED, the reason's code)."""
        lock = offer_lock(offer.offer_id)
        moves = offer.moves()
        ids = [asset_id for asset_id, _, _ in moves]
        if not await self._past_no_return(offer):
            try:
                await self.store.lock_assets(lock, [(a, frm) for a, frm, _ in moves])
            except Conflict as exc:
                await self.store.unlock_assets(lock, ids)
                return FAILED, exc.code
            entry = offer.cash_entry(self.fee_bps, offer.updated_at)
            if entry is not None:
                try:
                    await self.store.post_entry(cast(EntryRecord, entry.to_dict()))
                except Conflict as exc:
                    if exc.code != INSUFFICIENT_FUNDS:
                        raise
                    await self.store.unlock_assets(lock, ids)
                    return FAILED, INSUFFICIENT_FUNDS
        for asset_id, frm, to in moves:
            chain = await self.store.load_provenance(token_id_for(asset_id)) or []
            if await self._moved(offer, asset_id, to, chain):
                continue  # an earlier attempt moved it (its new owner may have moved it on)
            record = self._transfer(offer, asset_id, chain, frm, to)
            await self.store.move_locked_asset(lock, asset_id, frm, to, record)
        return SETTLED, None

    async def _past_no_return(self, offer: Offer) -> bool:
        """Whether an earlier attempt moved the cash or any asset: then only forward."""
        if offer.cash_leg() is not None and await self.store.get_entry(
                ledger.entry_id_for(ledger.OFFER, offer.offer_id)) is not None:
            return True
        for asset_id, _, to in offer.moves():
            chain = await self.store.load_provenance(token_id_for(asset_id)) or []
            if await self._moved(offer, asset_id, to, chain):
                return True
        return False

    async def _moved(self, offer: Offer, asset_id: str, to: str,
                     chain: list[ProvenanceRecord]) -> bool:
        """Whether this swap moved the asset already. Its chain says so (each move appends a
        transfer naming the offer); a card without a chain to extend (minted before tokens)
        has moved when `to` owns it outside the swap's lock."""
        if any(r["kind"] == "transfer" and r["ref"] == offer.offer_id for r in chain):
            return True
        if chain and self._signer is not None:
            return False
        asset = await self.store.get_asset(asset_id)
        return (asset is not None and asset["owner_id"] == to
                and asset.get("listed_in") != offer_lock(offer.offer_id))

    def _transfer(self, offer: Offer, asset_id: str, chain: list[ProvenanceRecord], frm: str,
                  to: str) -> ProvenanceRecord | None:
        """The token's signed record of this move, or None: no chain to extend (a card
        minted before tokens) or no signer. It carries the price when the swap is a sale
        (`Offer.sale_price`): the store then adds it to the sales feed."""
        if not chain or self._signer is None:
            return None
        token_id, tail = token_id_for(asset_id), chain[-1]
        try:
            return cast(ProvenanceRecord, next_record(
                token_id, cast(Record, tail), "transfer", frm=frm, to=to, reason="offer",
                ref=offer.offer_id, price=offer.sale_price(), at=offer.updated_at,
                signer=self._signer))
        except MarketError as exc:
            log.warning("no transfer record of %s for offer %s: %s", asset_id,
                        offer.offer_id, exc.message)
            return None

