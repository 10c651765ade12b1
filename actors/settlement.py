"""Settling a finished auction: the saga that moves the money, the card and the news.

One attempt (`Settler.settle`) runs these steps; each is idempotent and keyed by the auction
id, so the host retries the whole attempt after any failure and resumes after a crash
(`unsettled_finished` at start-up) with the same result:

1. A sale: post the settlement entry (`market.ledger.settlement`: the winner pays price +
   premium, the seller gets price - fee, the fee account the rest). The store refuses it,
   changing nothing, when the winner cannot pay: the sale is then `payment_failed` - the
   card stays the seller's and the runner-up gets a second-chance offer at their own
   highest bid (`Store.fail_payment`).
2. Move the card: `Store.settle(trade, transfer)` with the token's signed transfer record.
   Should the store find the card moved (it cannot while listed), the money goes back.
   No winner: `Store.release` unlists it.
3. Tell the users (`Store.add_notices`, keyed): won, sold, lost, transfer_in/out,
   payment_failed, second_chance. Money notices (`payment`) come with the entry itself. The
   runner-up's second chance is a trade offer from the seller (`make_offer`).

Decisions are read back from the store (the auction's `settled` and `settle_error`), never
from memory, so a resumed attempt tells the same story as the first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from actors.clock import Clock
from actors.config import ClusterConfig
from actors.messages import OfferCommand, OfferReply, Refused
from market import ledger
from market.auction import Auction
from market.errors import ERRORS, INSUFFICIENT_FUNDS, MarketError
from market.money import MAX_AMOUNT
from market.offers import Offer, Side, Terms, second_chance_id
from market.provenance import Record, next_record, token_id_for
from storage import Conflict, Store
from storage.base import SETTLE_ASSET_MOVED, SETTLE_PAYMENT_FAILED
from storage.records import (
    EntryRecord,
    Json,
    NewNotice,
    ProvenanceRecord,
    SecondChanceRecord,
    TradeRecord,
)

log = logging.getLogger("ece.settlement")

MakeOffer = Callable[[OfferCommand], Awaitable[OfferReply]]

# How long the runner-up's second-chance offer stands.
SECOND_CHANCE_MS = 3 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Closing:
    """Everything settling a finished auction needs, taken from its final state."""

    auction_id: str
    asset_id: str
    seller_id: str
    view: Json
    ranked: tuple[tuple[str, int], ...]  # bidders and the most they committed to, best first

    @classmethod
    def of(cls, auction: Auction, now: int) -> Closing:
        spec = auction.spec
        return cls(spec.auction_id, spec.asset_id, spec.seller_id, auction.view(now),
                   tuple(auction.ranked_bidders()))

    @property
    def winner(self) -> str | None:
        return self.view.get("winner_id") or None

    def runner_up(self) -> tuple[str, int] | None:
        """The best bidder other than the winner, with their highest bid."""
        return next(((b, amount) for b, amount in self.ranked if b != self.winner), None)

    def losers(self) -> list[str]:
        return [b for b, _ in self.ranked if b != self.winner]


class Settler:
    """Runs settlement attempts for one host (its store, fees, signer and clock)."""

    def __init__(self, store: Store, config: ClusterConfig, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.seller_fee_bps = config.seller_fee_bps
        self.buyer_premium_bps = config.buyer_premium_bps
        self._signer = config.signer()
        # Makes an offer on the host its thread is placed on (the second chance of a failed
        # payment); None where offers are not hosted (tests of the auction alone).
        self.make_offer: MakeOffer | None = None

    async def settle(self, closing: Closing) -> bool:
        """One attempt of the whole saga; safe to repeat after any failure or crash. True
        when the card went to a buyer."""
        winner = closing.winner
        if winner is None:
            await self.store.release(closing.auction_id, closing.asset_id)
            await self._notify(closing, None, None)
            await self.store.mark_told(closing.auction_id)
            return False
        trade = self.trade(closing, winner)
        record = await self.store.get_auction(closing.auction_id)
        if record is None:
            log.error("settlement of %s: no such auction in the store", closing.auction_id)
            return False
        if not record.get("settled"):
            await self._sell(closing, trade)
            record = await self.store.get_auction(closing.auction_id)
            assert record is not None
        error = record.get("settle_error")
        if error == SETTLE_ASSET_MOVED:
            await self._refund_if_paid(trade)
        await self._notify(closing, trade, error)
        await self.store.mark_told(closing.auction_id)
        return not error

    def trade(self, closing: Closing, winner: str) -> TradeRecord:
        price = int(closing.view["final_price"])
        return TradeRecord(
            auction_id=closing.auction_id, asset_id=closing.asset_id,
            seller_id=closing.seller_id, buyer_id=winner, price=price,
            at=int(closing.view.get("ends_at") or self.clock()),
            premium=ledger.fee(price, self.buyer_premium_bps),
            seller_fee=ledger.fee(price, self.seller_fee_bps),
        )

    def entry(self, trade: TradeRecord) -> ledger.Entry:
        return ledger.settlement(
            trade["auction_id"], trade["buyer_id"], trade["seller_id"], trade["price"],
            self.seller_fee_bps, self.buyer_premium_bps, trade["at"], MAX_AMOUNT)

    async def _sell(self, closing: Closing, trade: TradeRecord) -> None:
        entry = self.entry(trade) if trade["price"] > 0 else None
        if entry is not None:
            try:
                await self.store.post_entry(cast(EntryRecord, entry.to_dict()))
            except Conflict as exc:
                if exc.code != INSUFFICIENT_FUNDS:
                    raise
                await self.store.fail_payment(trade, self._second_chance(closing, trade))
                return
        await self.store.settle(trade, await self._transfer(trade))

    async def _refund_if_paid(self, trade: TradeRecord) -> None:
        """Give the buyer back a settlement whose card could not be delivered (the store
        found it moved): one entry per account that was credited (an entry may debit one
        guarded account only), each keyed, so a resumed saga refunds once."""
        stored = await self.store.get_entry(
            ledger.entry_id_for(ledger.SETTLEMENT, trade["auction_id"]))
        if stored is None:
            return
        paid = ledger.Entry.from_dict(stored)
        buyer = next(p.account for p in paid.postings if p.amount < 0)
        for credited in (p for p in paid.postings if p.amount > 0):
            back = ledger.Entry(paid.cause, f"{paid.cause_key}:refund:{credited.account}",
                                paid.at, (ledger.Posting(credited.account, -credited.amount),
                                          ledger.Posting(buyer, credited.amount)))
            await self.store.post_entry(cast(EntryRecord, back.to_dict()))

    async def _offer_second_chance(self, chance: SecondChanceRecord) -> str | None:
        """The runner-up's second chance as an ordinary trade offer from the seller: the card
        for the runner-up's own highest bid, standing as long as the second chance. Keyed by
        the auction (a resumed saga makes the same offer once). None without offers."""
        if self.make_offer is None:
            return None
        offer_id = second_chance_id(chance["auction_id"])
        if await self.store.get_offer(offer_id) is not None:
            return offer_id  # made by an earlier attempt of this saga
        terms = Terms(Side((chance["asset_id"],)), Side((), chance["price"]),
                      "Second chance: the winner did not pay", chance["expires_at"])
        offer = Offer(offer_id, chance["seller_id"], chance["user_id"], terms, chance["at"])
        reply = await self.make_offer(OfferCommand(offer_id, offer_id, "create",
                                                   by=chance["seller_id"], offer=offer.to_dict()))
        if isinstance(reply, Refused):
            code = ERRORS.get(reply.code)
            if code is not None and code.transient:
                raise RuntimeError(f"second-chance offer: {reply.code}; retry")  # the saga
            # e.g. the card moved on meanwhile: the second-chance record stands alone.
            log.warning("second-chance offer for %s refused: %s", chance["auction_id"],
                        reply.error)
            return None
        return offer_id

    def _second_chance(self, closing: Closing, trade: TradeRecord) -> SecondChanceRecord | None:
        runner_up = closing.runner_up()
        if runner_up is None:
            return None
        user_id, price = runner_up
        now = self.clock()
        return SecondChanceRecord(
            auction_id=closing.auction_id, asset_id=closing.asset_id,
            seller_id=closing.seller_id, user_id=user_id, price=price, at=now,
            expires_at=now + SECOND_CHANCE_MS, status="open")

    async def _transfer(self, trade: TradeRecord) -> ProvenanceRecord | None:
        """The token's signed transfer record for this sale, or None: no chain to extend (a
        card minted before tokens, or no signer), already extended by an earlier attempt of
        this step, or the seller no longer owns it (the store then records ASSET_MOVED).
        Every field comes from the trade, so a retried step signs the very same record."""
        token_id = token_id_for(trade["asset_id"])
        chain = await self.store.load_provenance(token_id)
        if not chain or self._signer is None:
            return None
        tail = chain[-1]
        if tail["kind"] == "transfer" and tail["ref"] == trade["auction_id"]:
            return None
        try:
            return cast(ProvenanceRecord, next_record(
                token_id, cast(Record, tail), "transfer", frm=trade["seller_id"],
                to=trade["buyer_id"], reason="auction", ref=trade["auction_id"],
                price=trade["price"], at=trade["at"], signer=self._signer))
        except MarketError as exc:
            log.warning("no transfer record for %s: %s", trade["auction_id"], exc.message)
            return None

    async def _notify(self, closing: Closing, trade: TradeRecord | None,
                      error: str | None) -> None:
        notices = settlement_notices(closing, trade, error, self.clock())
        if error == SETTLE_PAYMENT_FAILED:
            chance = await self.store.get_second_chance(closing.auction_id)
            if chance is not None:
                offer_id = await self._offer_second_chance(chance)
                notices.append(_notice(chance["user_id"], "second_chance", closing, chance["at"],
                                       asset_id=chance["asset_id"], price=chance["price"],
                                       expires_at=chance["expires_at"], offer_id=offer_id))
        if notices:
            await self.store.add_notices(notices)


def _notice(user_id: str, kind: str, closing: Closing, at: int, **data: object) -> NewNotice:
    return NewNotice(user_id=user_id, key=f"{kind}:{closing.auction_id}", type=kind, at=at,
                     data={"auction_id": closing.auction_id, **data})


def settlement_notices(closing: Closing, trade: TradeRecord | None, error: str | None,
                       at: int) -> list[NewNotice]:
    """What each user hears of a settled auction (`error`: its stored settle_error)."""
    price = trade["price"] if trade is not None else None
    losers = closing.losers()
    if error == SETTLE_PAYMENT_FAILED and (runner_up := closing.runner_up()) is not None:
        losers.remove(runner_up[0])  # offered a second chance instead
    notices = [_notice(user, "lost", closing, at, price=price) for user in losers]
    if trade is None or error == SETTLE_ASSET_MOVED:
        return notices
    buyer, seller = trade["buyer_id"], trade["seller_id"]
    premium, seller_fee = trade.get("premium", 0), trade.get("seller_fee", 0)
    total = trade["price"] + premium
    if error == SETTLE_PAYMENT_FAILED:
        for user in (buyer, seller):
            notices.append(_notice(user, "payment_failed", closing, at, price=trade["price"],
                                   required=total, buyer_id=buyer))
        return notices
    token_id = token_id_for(trade["asset_id"])
    moved = {"asset_id": trade["asset_id"], "token_id": token_id, "reason": "auction",
             "ref": trade["auction_id"]}
    notices += [
        _notice(buyer, "won", closing, at, asset_id=trade["asset_id"], price=trade["price"],
                premium=premium, total=total),
        _notice(seller, "sold", closing, at, asset_id=trade["asset_id"], price=trade["price"],
                seller_fee=seller_fee, net=trade["price"] - seller_fee),
        _notice(buyer, "transfer_in", closing, at, **moved),
        _notice(seller, "transfer_out", closing, at, **moved),
    ]
    return notices
