"""What the offer desk checks in the store before it changes an offer: nothing is locked
until an accepted offer's swap, so making, countering and accepting read the cards' owners,
listings and the payer's balance as they are now; and what both users hear of a change."""

from __future__ import annotations

from actors.messages import Refused, refused
from market import ledger
from market.errors import (
    ASSET_LISTED,
    ASSET_NOT_FOUND,
    ASSET_REDEEMED,
    INSUFFICIENT_FUNDS,
    LIMIT_EXCEEDED,
    NOT_OWNER,
)
from market.offers import ACTIVE, FAILED, MAX_ACTIVE_SENT, SETTLED, Offer, public
from market.provenance import token_id_for
from storage import Store
from storage.records import NewNotice

# Refusals meaning a card is no longer where the offer says, and the reason the offer is
# then invalidated with.
MOVED = {NOT_OWNER: "asset_moved", ASSET_NOT_FOUND: "asset_moved",
         ASSET_REDEEMED: "asset_redeemed"}


async def sender_check(store: Store, offer: Offer, changed: dict[str, Offer],
                       created: set[str]) -> Refused | None:
    """At most MAX_ACTIVE_SENT active offers sent. The store counts those committed; this
    pass's changes (`changed`, of which `created` are new) are not committed yet: its new
    active offers count, and those it ended no longer do (an offer leaves `active` only
    for accepted, declined, cancelled, expired, countered or invalidated)."""
    sent = await store.count_offers(offer.from_id)
    for other in changed.values():
        if other.from_id != offer.from_id:
            continue
        if other.offer_id in created:
            sent += other.status == ACTIVE
        elif other.status not in (ACTIVE, SETTLED, FAILED):
            sent -= 1
    if sent >= MAX_ACTIVE_SENT:
        return refused(LIMIT_EXCEEDED, f"at most {MAX_ACTIVE_SENT} active offers sent",
                       limit=MAX_ACTIVE_SENT)
    return None


async def owners_check(store: Store, offer: Offer, listed: bool = False) -> Refused | None:
    """Every card owned by its side's party (and, for `listed`, in no auction or swap)."""
    for asset_id, frm, _ in offer.moves():
        asset = await store.get_asset(asset_id)
        if asset is None:
            return refused(ASSET_NOT_FOUND, f"no asset {asset_id}", asset_id=asset_id)
        if asset.get("redeemed"):
            return refused(ASSET_REDEEMED, f"asset {asset_id} was redeemed", asset_id=asset_id)
        if asset["owner_id"] != frm:
            return refused(NOT_OWNER, f"asset {asset_id} is not owned by {frm}",
                           asset_id=asset_id)
        if listed and asset.get("listed_in"):
            return refused(ASSET_LISTED, f"asset {asset_id} is listed", asset_id=asset_id)
    return None


async def accept_check(store: Store, offer: Offer) -> Refused | None:
    """Owners, listings, then whether the cash leg's payer can pay it now."""
    problem = await owners_check(store, offer, listed=True)
    if problem is not None:
        return problem
    leg = offer.cash_leg()
    if leg is not None:
        payer, _, cash = leg
        available = (await store.get_account(ledger.user_account(payer)))["balance"]
        if available < cash:
            return refused(INSUFFICIENT_FUNDS, f"{payer} cannot pay the offer's cash",
                           available=available, required=cash, user_id=payer)
    return None

def offer_notices(offer: Offer) -> list[NewNotice]:
    """What both parties hear of an offer's change (keyed by offer and seq)."""
    data = {"offer_id": offer.offer_id, "status": offer.status, "offer": public(offer.to_dict())}
    at = offer.updated_at
    first = offer.seq == 1
    notices = [
        NewNotice(user_id=offer.to_id, key=f"offer:{offer.offer_id}:{offer.seq}",
                  type="offer_received" if first else "offer_updated", at=at, data=data),
        NewNotice(user_id=offer.from_id, key=f"offer:{offer.offer_id}:{offer.seq}",
                  type="offer_updated", at=at, data=data),
    ]
    if offer.status == SETTLED:
        for asset_id, frm, to in offer.moves():
            moved = {"asset_id": asset_id, "token_id": token_id_for(asset_id),
                     "reason": "offer", "ref": offer.offer_id}
            notices.append(NewNotice(user_id=to, key=f"transfer_in:{offer.offer_id}:{asset_id}",
                                     type="transfer_in", at=at, data=moved))
            notices.append(NewNotice(user_id=frm,
                                     key=f"transfer_out:{offer.offer_id}:{asset_id}",
                                     type="transfer_out", at=at, data=moved))
    return notices
