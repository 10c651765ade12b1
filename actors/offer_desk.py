"""The offer desk: the trade offers a host serves, with their timers, hosted like auctions.

Offers are entities as auctions are: a host (the same Ray actor) owns the live offers of the
threads the directory placed on it (a thread is an offer and its counters). Commands go into
one queue; one loop runs them in arrival order (each offer strictly serial), saves every
changed offer in one group commit fenced by each offer's `seq`, and only then answers. Expiry
timers run in the same loop, before the commands of the same pass, so an offer is never
accepted past its `expires_at` and never expires early.

An accept re-checks ownership, listings and cash, commits `accepted`, and answers once the
swap saga (`actors.swap`) has ended it `settled` or `failed`. After a commit the desk stores
both users' notices with the change (keyed by offer and seq; `told_seq`); after a settled
swap it invalidates every other active offer naming a moved asset. At start-up it reloads
its open offers, resumes their swaps and notices, and invalidates offers whose assets moved
while nobody was looking.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from actors.clock import Clock, now_ms
from actors.config import ClusterConfig
from actors.messages import (
    OfferCommand,
    OfferReply,
    OfferViewed,
    Refused,
    refusal,
    refused,
)
from actors.offer_checks import (
    MOVED,
    accept_check,
    offer_notices,
    owners_check,
    sender_check,
)
from actors.serial import Pending, SerialLoop
from actors.swap import Swapper
from market.errors import (
    NOT_HERE,
    OFFER_NOT_ACTIVE,
    OFFER_NOT_FOUND,
    UNAVAILABLE,
    MarketError,
)
from market.offers import (
    ACCEPT,
    ACCEPTED,
    ACTIVE,
    COUNTER,
    FAILED,
    SETTLED,
    Offer,
    Terms,
    counter_id_for,
)
from storage import Store
from storage.records import OfferRecord

log = logging.getLogger("ece.offers")

# Called with a host name and commands for offers that host serves (invalidations).
SendElsewhere = Callable[[str, list[OfferCommand]], Awaitable[object]]
OnThreadDone = Callable[[str], Awaitable[None]]
FINISH = "finish"  # internal: the swap of an accepted offer ended (`reason`: status or code)
SWAP_CONFLICT = "SWAP_CONFLICT"  # `reason` of a swap refused past its point of no return
INVALIDATE = "invalidate"


class OfferDesk(SerialLoop[OfferCommand, OfferReply]):
    """The live offers of one host (the Ray shell builds it beside the auction core, on the
    same store connection). on_thread_done(thread_id): a thread has no live offer left here
    (the directory forgets it); send_elsewhere(host, commands): to another host's desk."""

    kind = "offer desk"

    def __init__(self, name: str, config: ClusterConfig, store: Store, clock: Clock = now_ms,
                 on_thread_done: OnThreadDone | None = None,
                 send_elsewhere: SendElsewhere | None = None,
                 opened: Callable[[], Awaitable[object]] | None = None) -> None:
        self.offers: dict[str, Offer] = {}  # live: active or accepted
        self._swapper = Swapper(store, config, clock)
        self._on_thread_done = on_thread_done
        self._send_elsewhere = send_elsewhere
        self._live_in_thread: Counter[str] = Counter()
        self._created: set[str] = set()  # offers (and counters) made in this pass
        self._waiters: dict[str, list[asyncio.Future[OfferReply]]] = {}
        self._busy: set[str] = set()  # threads whose swap is still at work
        # Starts the loop (`opened`: see SerialLoop); the timers are the offers' expiries.
        super().__init__(name, store, clock, log, opened)

    # ---- public API (`submit`, `ready`, `wake`, `close`: actors.serial) --------------------

    def live_threads(self) -> set[str]:
        """The threads with a live offer here (`ece status`)."""
        return {thread for thread, n in self._live_in_thread.items() if n > 0}

    async def invalidate_assets(self, asset_ids: list[str], reason: str,
                                keep: str | None = None) -> None:
        """Invalidate every active offer (but `keep`) naming one of these assets, wherever
        it is served: this desk's own directly, others' through `send_elsewhere`."""
        found = await self.store.offers_with_assets(asset_ids)
        by_host: dict[str, list[OfferCommand]] = {}
        for record in found:
            if record["offer_id"] == keep:
                continue
            command = OfferCommand(record["offer_id"], record["thread_id"], INVALIDATE,
                                   reason=reason)
            by_host.setdefault(record.get("host") or self.name, []).append(command)
        for host, commands in by_host.items():
            if host == self.name:
                self._enqueue(commands)
            elif self._send_elsewhere is not None:
                await self._send_elsewhere(host, commands)

    # ---- the loop ------------------------------------------------------------------------

    async def _recover(self) -> None:
        records = await self.store.open_offers(host=self.name)
        for record in records:
            offer = Offer.from_dict(record)
            if not offer.is_final:
                self._adopt(offer)
            if record.get("told_seq", 0) < offer.seq:
                self._spawn(self._tell(offer))
            if offer.status == ACCEPTED:
                self._spawn(self._swap(offer))
        # A counter saved before its parent's change (MongoDB, a crash in between): finish it.
        repairs = [OfferCommand(o.parent_id, o.thread_id, COUNTER, by=o.from_id,
                                offer=o.to_dict())
                   for o in list(self.offers.values()) if o.parent_id in self.offers
                   and self.offers[o.parent_id].status == ACTIVE]
        self._enqueue(repairs)
        self._spawn(self._sweep())

    async def _sweep(self) -> None:
        """Invalidate active offers whose assets moved while this desk was down."""
        for offer in [o for o in self.offers.values() if o.status == ACTIVE]:
            await self._recheck(offer)

    def _adopt(self, offer: Offer) -> None:
        if offer.offer_id not in self.offers:
            self._live_in_thread[offer.thread_id] += 1
        self.offers[offer.offer_id] = offer
        self.timers.set(offer.offer_id, offer.expires_at if offer.status == ACTIVE else None)

    def _forget(self, offer: Offer) -> None:
        if self.offers.pop(offer.offer_id, None) is not None:
            self._live_in_thread[offer.thread_id] -= 1
        self.timers.discard(offer.offer_id)

    # ---- batches -------------------------------------------------------------------------

    async def _process(self) -> None:
        batch, self._queue = self._queue, []
        self._created = set()
        now = self.clock()
        changed: dict[str, Offer] = {}
        for offer_id in self.timers.due(now):
            offer = self.offers.get(offer_id)
            if offer is not None and offer.expire(now):
                changed[offer_id] = offer
        results: list[tuple[Pending[OfferCommand, OfferReply], OfferReply | None]] = []
        for item in batch:
            try:
                reply = await self._execute(item.command, now, changed)
            except MarketError as exc:
                reply = refusal(exc)
            except Exception:  # a store read failed: this command only, before any change
                log.exception("offer desk %s: %s of %s failed", self.name, item.command.action,
                              item.command.offer_id)
                reply = refused(UNAVAILABLE, "could not check the offer; retry")
            results.append((item, reply))
        fenced = await self._commit(changed) if changed else set()
        for item, result in results:
            if item.command.offer_id in fenced or (
                    isinstance(result, OfferViewed)
                    and result.offer["offer_id"] in fenced):
                result = refused(UNAVAILABLE, "offer moved to another host; retry")
            if result is None:  # an accept: answered when its swap ends
                self._waiters.setdefault(item.command.offer_id, []).append(item.future)
            elif not item.future.done():
                item.future.set_result(result)
        for offer_id, offer in changed.items():
            if offer_id in fenced:
                continue
            if offer_id in self._created:
                # Checked before its commit: a card that moved in between (its mover looked
                # for offers to invalidate before this one was stored) is caught now.
                self._spawn(self._recheck(offer))
            if offer.status == ACCEPTED:
                self._spawn(self._swap(offer))
            elif offer.is_final:
                self._forget(offer)
                self._answer_waiters(offer)
                self._spawn(self._thread_done(offer))

    async def _commit(self, changed: dict[str, Offer]) -> set[str]:
        records: list[OfferRecord] = []
        for offer in changed.values():
            record: dict[str, Any] = {**offer.to_dict(), "host": self.name}
            records.append(record)  # type: ignore[arg-type]
        notices = {o.offer_id: offer_notices(o) for o in changed.values()}
        try:
            fenced = await self.store.save_offers(records, notices)
        except Exception:
            log.exception("offer desk %s: commit failed; reloading %d offers", self.name,
                          len(changed))
            fenced = set(changed)
            self._spawn(self._reload(list(changed)))
        for offer_id in fenced:
            offer = changed[offer_id]
            self._forget(offer)
            log.warning("offer desk %s: fenced out of offer %s", self.name, offer_id)
        return fenced

    async def _reload(self, offer_ids: list[str]) -> None:
        for offer_id in offer_ids:
            async def one(offer_id: str = offer_id) -> None:
                record = await self.store.get_offer(offer_id)
                if record is not None and record.get("host") == self.name:
                    offer = Offer.from_dict(record)
                    if record.get("told_seq", 0) < offer.seq:
                        self._spawn(self._tell(offer))
                    if offer.is_final:  # e.g. its commit was written, its answer lost
                        self._forget(offer)
                        self._answer_waiters(offer)
                        await self._thread_done(offer)
                    else:
                        self._adopt(offer)
                        if offer.status == ACCEPTED:
                            self._spawn(self._swap(offer))
            await self._retry(f"reload of {offer_id}", one)

    # ---- commands ------------------------------------------------------------------------

    async def _execute(self, command: OfferCommand, now: int,
                       changed: dict[str, Offer]) -> OfferReply | None:
        action = command.action
        if action == "create":
            return await self._create(command, changed)
        offer = self.offers.get(command.offer_id)
        if offer is None:
            return await self._not_live(command)
        if offer.expire(now):
            changed[offer.offer_id] = offer
        if action == INVALIDATE:
            if offer.invalidate(command.reason, now):
                changed[offer.offer_id] = offer
            return OfferViewed(offer.to_dict())
        if action == FINISH:
            if command.reason == SETTLED:
                offer.settle(now)
            else:
                offer.fail(command.reason, now)
            changed[offer.offer_id] = offer
            return OfferViewed(offer.to_dict())
        if action == "get":
            return OfferViewed(offer.to_dict())
        if not offer.party(command.by):
            return refused(OFFER_NOT_FOUND, "no such offer")
        if action == COUNTER:
            return await self._counter(offer, command, now, changed)
        if offer.is_retry(action, command.by, command.req_id):
            return None if offer.status == ACCEPTED else OfferViewed(offer.to_dict())
        offer.allowed(action, command.by)
        if action == ACCEPT:
            problem = await self._accept_check(offer, now, changed)
            if problem is not None:
                return problem
        offer.act(action, command.by, command.req_id, now)
        changed[offer.offer_id] = offer
        return None if action == ACCEPT else OfferViewed(offer.to_dict())

    async def _not_live(self, command: OfferCommand) -> OfferReply:
        """A command for an offer this desk does not hold live: final, elsewhere or none."""
        if command.action in (INVALIDATE, FINISH):
            return refused(OFFER_NOT_FOUND, "no such offer")  # over already: nothing to do
        record = await self.store.get_offer(command.offer_id)
        if record is None:
            return refused(OFFER_NOT_FOUND, "no such offer")
        offer = Offer.from_dict(record)
        if not offer.is_final:
            return refused(NOT_HERE, "offer is not served by this host")
        if command.action == "get":
            return OfferViewed(offer.to_dict())
        child = self.offers.get(offer.child_id or "")
        answer = offer.replay(command.action, command.by, command.req_id,
                              child is not None and child.status == ACTIVE)
        if answer == "child":
            stored = await self.store.get_offer(offer.child_id or "")
            if stored is not None:
                return OfferViewed(dict(stored))
        return OfferViewed(offer.to_dict())

    async def _create(self, command: OfferCommand, changed: dict[str, Offer]) -> OfferReply:
        record = command.offer
        assert record is not None
        existing = self.offers.get(command.offer_id) or changed.get(command.offer_id)
        if existing is None and (stored := await self.store.get_offer(command.offer_id)):
            existing = Offer.from_dict(stored)
        if existing is not None:  # a retried create
            if existing.from_id != record["from_id"]:
                return refused(OFFER_NOT_FOUND, "no such offer")
            return OfferViewed(existing.to_dict())
        offer = Offer.from_dict(record)
        problem = await sender_check(self.store, offer, changed, self._created) or \
            await owners_check(self.store, offer)
        if problem is not None:
            return problem
        self._created.add(offer.offer_id)
        self._adopt(offer)
        changed[offer.offer_id] = offer
        return OfferViewed(offer.to_dict())

    async def _counter(self, offer: Offer, command: OfferCommand, now: int,
                       changed: dict[str, Offer]) -> OfferReply:
        child_id = counter_id_for(offer.offer_id, command.by, command.req_id)
        if offer.child_id == child_id:  # a retry
            child = self.offers.get(child_id)
            return OfferViewed(child.to_dict()) if child else await self._not_live(command)
        if command.offer is not None:  # recovery: the counter was saved, its parent not
            child = Offer.from_dict(command.offer)
            offer.countered_by(child)
            changed[offer.offer_id] = offer
            return OfferViewed(child.to_dict())
        assert command.terms is not None
        terms = Terms.parse(command.terms, now)
        child = offer.counter_offer(command.by, command.req_id, terms, now)
        problem = await sender_check(self.store, child, changed, self._created) or \
            await owners_check(self.store, child)
        if problem is not None:
            return problem  # the offer is unchanged: still active
        offer.countered_by(child, command.req_id)
        self._created.add(child.offer_id)
        changed.pop(offer.offer_id, None)
        self._adopt(child)
        changed[child.offer_id] = child  # the counter is saved before its parent
        changed[offer.offer_id] = offer
        return OfferViewed(child.to_dict())

    async def _accept_check(self, offer: Offer, now: int,
                            changed: dict[str, Offer]) -> OfferReply | None:
        """Accepting re-checks everything (nothing is locked until the swap): a card that
        moved invalidates the offer; a listed card or a payer short of cash refuses it."""
        problem = await accept_check(self.store, offer)
        if isinstance(problem, Refused) and problem.code in MOVED:
            offer.invalidate(MOVED[problem.code], now)
            changed[offer.offer_id] = offer
            return refused(OFFER_NOT_ACTIVE, "an asset of the offer has moved",
                           status=offer.status, reason=offer.reason)
        return problem

    # ---- after the commit ----------------------------------------------------------------

    def _answer_waiters(self, offer: Offer) -> None:
        for future in self._waiters.pop(offer.offer_id, []):
            if not future.done():
                future.set_result(OfferViewed(offer.to_dict()))

    async def _swap(self, offer: Offer) -> None:
        outcome: list[tuple[str, str | None]] = []

        async def attempt() -> None:
            outcome.append(await self._swapper.run(offer))

        self._busy.add(offer.thread_id)  # its thread stays here until the swap's work is done
        try:
            if not await self._retry(f"swap of {offer.offer_id}", attempt):
                # A business refusal past the point of no return: only a card moved behind
                # the lock's back can cause it. End the offer (and its waiters) loudly.
                log.error("offer desk %s: swap of %s cannot complete; marking it failed",
                          self.name, offer.offer_id)
                outcome.append((FAILED, SWAP_CONFLICT))
            status, reason = outcome[-1]
            self._enqueue([OfferCommand(offer.offer_id, offer.thread_id, FINISH,
                                        reason=reason or status)])
            if status == SETTLED:
                # Every other active offer naming a moved card is invalidated, before this
                # thread may leave the host (which may then retire).
                await self._retry(f"invalidations after {offer.offer_id}",
                                  lambda: self.invalidate_assets(offer.assets, "asset_traded",
                                                                 keep=offer.offer_id))
        finally:
            self._busy.discard(offer.thread_id)
        await self._thread_done(offer)

    async def _recheck(self, offer: Offer) -> None:
        """Invalidate an active offer whose cards are no longer where it says."""
        async def check() -> None:
            problem = await owners_check(self.store, offer)
            if problem is not None:
                self._enqueue([OfferCommand(offer.offer_id, offer.thread_id, INVALIDATE,
                                            reason=MOVED.get(problem.code, "asset_moved"))])

        await self._retry(f"re-check of {offer.offer_id}", check)

    async def _tell(self, offer: Offer) -> None:
        notices = offer_notices(offer)
        seq = offer.seq

        async def store_them() -> None:
            await self.store.add_notices(notices)
            await self.store.mark_offer_told(offer.offer_id, seq)

        await self._retry(f"notices of {offer.offer_id}", store_them)
        await self._thread_done(offer)

    async def _thread_done(self, offer: Offer) -> None:
        """Tell the directory a thread has no live offer left here (once it is told and its
        swap's work is done)."""
        if offer.thread_id in self._busy:
            return  # the swap calls again when it is done
        if self.offers.get(offer.offer_id, offer).is_final and \
                self._live_in_thread.get(offer.thread_id, 0) <= 0:
            self._live_in_thread.pop(offer.thread_id, None)
            if self._on_thread_done is not None:
                try:
                    await self._on_thread_done(offer.thread_id)
                except Exception:
                    log.warning("offer desk %s: could not report thread %s done", self.name,
                                offer.thread_id, exc_info=True)
