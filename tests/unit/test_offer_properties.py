"""Random interleavings of trade offers against the offer desk on SQLite (no Ray): offers
with cards and cash on random sides, counters, accepts, declines, cancels, batches of them,
cards sold at auction under the offers' feet, time passing, and the desk restarting - or
crashing mid-swap. After every step, once the desk is idle, the market must be sound:

- every card has exactly one owner: the last record of its signed chain, and the one a
  model of every settled swap and sale says; no lock is left;
- cash is conserved (deposits only at setup; the fees account counted), each user's balance
  is what the model says, and the ledger checks;
- a settled offer moved each of its cards exactly once (one transfer naming it per chain)
  and its cash once; no other offer moved anything;
- no active offer names a card its party no longer owns; none is past its expiry; at most
  one offer per thread is active; nothing stays `accepted`; every change was told;
- offers change only by the state machine's steps (seq + 1 each), and a final one never.

ECE_OFFER_EXAMPLES=300 runs more examples than the default 30.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.messages import OfferCommand, OfferViewed, Refused
from actors.offer_desk import OfferDesk
from market import ledger
from market.errors import MarketError
from market.offers import (
    ACCEPTED,
    ACTIVE,
    CANCELLED,
    COUNTERED,
    DECLINED,
    EXPIRED,
    FAILED,
    FINAL,
    INVALIDATED,
    SETTLED,
    Offer,
    Terms,
)
from storage.records import EntryRecord, OfferRecord
from storage.sqlite import SqliteStore
from tests.unit.offerkit import (
    FEE_BPS,
    HOST,
    HOUR,
    T0,
    Clock,
    CrashingStore,
    check_asset,
    command,
    config,
    create,
    fund,
    idle,
    mint,
    open_store,
    transfer,
    transfers_by,
)

USERS = ("u1", "u2", "u3", "u4")
ASSETS = ("k1", "k2", "k3", "k4", "k5", "k6")
FUNDS = 40_000
SALE_FEE_BPS = 500
CASH = st.sampled_from((0, 0, 0, 1_000, 15_000, 39_999, 60_000))
DT = st.sampled_from((1, 60_000, HOUR - 1, HOUR, 2 * HOUR, 25 * HOUR))
EXPIRY = st.one_of(st.sampled_from(({"expires_in": 3600}, {"expires_in": 7200},
                                    {"expires_in": 86_400}, {})),
                   st.just({"expires_at_in": HOUR}), st.just({"expires_at_in": 2 * HOUR}))
# The swap's writes a desk may die right after: (method, nth call); ("save_offers", 0) is
# the commit that ends the swap (settled or failed).
CRASH_POINTS = (("lock_assets", 1), ("post_entry", 1), ("move_locked_asset", 1),
                ("move_locked_asset", 2), ("save_offers", 0))
TRANSITIONS = {(ACTIVE, s) for s in (ACCEPTED, DECLINED, CANCELLED, EXPIRED, COUNTERED,
                                     INVALIDATED)} | {(ACCEPTED, SETTLED), (ACCEPTED, FAILED),
                                                      (ACTIVE, SETTLED), (ACTIVE, FAILED)}


@settings(max_examples=int(os.environ.get("ECE_OFFER_EXAMPLES", "30")),
          stateful_step_count=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
class OfferMarket(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="offers-")
        self.loop = asyncio.new_event_loop()
        self.clock = Clock(T0)
        self.n = 0
        self.offer_ids: list[str] = []  # every offer the desk accepted to create
        self.sent: list[tuple[str, str, str]] = []  # (offer_id, by, req_id) of commands
        self.seen: dict[str, OfferRecord] = {}
        self.owners: dict[str, str] = {a: USERS[i % len(USERS)] for i, a in enumerate(ASSETS)}
        self.cash: dict[str, int] = dict.fromkeys(USERS, FUNDS)
        self.fees = 0
        self.desk: OfferDesk | None = None
        self.store: SqliteStore = self.run(self._setup())

    # -- plumbing ------------------------------------------------------------------------
    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def _setup(self) -> SqliteStore:
        store = await open_store(Path(self.tmp.name) / "offers.db")
        for user in USERS:
            await fund(store, user, FUNDS)
        for asset_id, holder in self.owners.items():
            await mint(store, asset_id, holder)
        self.desk = await self._start(store)
        return store

    async def _start(self, store: SqliteStore) -> OfferDesk:
        desk = OfferDesk(HOST, config(), store, self.clock)
        await desk.ready()
        return desk

    def teardown(self) -> None:
        try:
            if self.desk is not None:
                self.run(self.desk.close())
            self.run(self.store.close())
        finally:
            self.loop.close()
            self.tmp.cleanup()

    @property
    def live(self) -> OfferDesk:
        assert self.desk is not None
        return self.desk

    def _req(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def _submit(self, commands: list[OfferCommand]) -> list[Any]:
        async def go() -> list[Any]:
            replies = await self.live.submit(commands)
            await idle(self.live)
            return replies

        replies = self.run(go())
        for cmd, reply in zip(commands, replies, strict=True):
            assert isinstance(reply, OfferViewed | Refused)
            event(f"{cmd.action}: " + (reply.offer["status"] if isinstance(reply, OfferViewed)
                                       else reply.code))
            if isinstance(reply, OfferViewed):
                if reply.offer["offer_id"] not in self.offer_ids:
                    self.offer_ids.append(reply.offer["offer_id"])
                if cmd.action == "accept":  # answered once the swap ended
                    assert reply.offer["status"] in (SETTLED, FAILED), reply.offer["status"]
        return replies

    # -- drawing commands ---------------------------------------------------------------------
    def _side(self, data: st.DataObject, party: str, label: str) -> dict[str, Any]:
        mine = [a for a, o in self.owners.items() if o == party]
        own = data.draw(st.integers(0, 4), label=f"{label}.own")  # mostly the party's own
        pool = mine if mine and own else list(ASSETS)
        count = data.draw(st.integers(0, 2), label=f"{label}.count")
        assets = list(dict.fromkeys(_one_of(data, pool, f"{label}.asset") for _ in range(count)))
        return {"assets": assets, "cash": data.draw(CASH, label=f"{label}.cash")}

    def _terms(self, data: st.DataObject, frm: str, to: str) -> dict[str, Any]:
        body = {"give": self._side(data, frm, "give"), "want": self._side(data, to, "want")}
        expiry = dict(data.draw(EXPIRY, label="expiry"))
        if "expires_at_in" in expiry:
            expiry = {"expires_at": self.clock.now + expiry.pop("expires_at_in")}
        return {**body, **expiry}

    def _create(self, data: st.DataObject) -> OfferCommand | None:
        frm = data.draw(st.sampled_from(USERS), label="from")
        to = data.draw(st.sampled_from([u for u in USERS if u != frm]), label="to")
        try:
            return create(frm, to, self._req(), self.clock.now, **self._terms(data, frm, to))
        except MarketError:  # the gateway refuses it already
            return None

    def _pick(self, data: st.DataObject) -> str:
        """A known offer, mostly an active one (as of the last check)."""
        active = [o for o in self.offer_ids if self.seen.get(o, {}).get("status") == ACTIVE]
        pool = active if active and data.draw(st.integers(0, 4), label="any") else \
            self.offer_ids
        return _one_of(data, pool, "offer")

    def _about(self, data: st.DataObject) -> OfferCommand | None:
        """A command about a known offer: mostly by the party who may give it, sometimes a
        retry of an earlier command, sometimes by anybody."""
        offer_id = self._pick(data)
        record = self.run(self.store.get_offer(offer_id))
        assert record is not None
        kind = data.draw(st.sampled_from(("accept", "accept", "decline", "cancel", "counter",
                                          "retry")), label="action")
        if kind == "retry" and self.sent:
            oid, by, req = _one_of(data, self.sent, "retried")
            again = self.run(self.store.get_offer(oid))
            assert again is not None
            action = data.draw(st.sampled_from(("accept", "decline", "cancel")), label="as")
            return command(again, action, by, req)
        action = "accept" if kind == "retry" else kind
        rightful = record["from_id"] if action == "cancel" else record["to_id"]
        by = rightful if data.draw(st.integers(0, 5), label="rightful") else \
            data.draw(st.sampled_from(USERS), label="by")
        req = self._req()
        self.sent.append((offer_id, by, req))
        if action != "counter":
            return command(record, action, by, req)
        terms = self._terms(data, by, record["from_id"] if by != record["from_id"]
                            else record["to_id"])
        try:
            Terms.parse(terms, self.clock.now)  # the gateway refuses a malformed one already
        except MarketError:
            return None
        return command(record, "counter", by, req, **terms)

    # -- rules ---------------------------------------------------------------------------------
    @rule(data=st.data())
    def make_offer(self, data: st.DataObject) -> None:
        cmd = self._create(data)
        if cmd is not None:
            self._submit([cmd])

    @precondition(lambda self: self.offer_ids)
    @rule(data=st.data())
    def act_on_an_offer(self, data: st.DataObject) -> None:
        cmd = self._about(data)
        if cmd is not None:
            self._submit([cmd])

    @precondition(lambda self: self.offer_ids)
    @rule(data=st.data(), size=st.integers(2, 5))
    def a_batch(self, data: st.DataObject, size: int) -> None:
        """Several commands in one pass of the desk (one group commit)."""
        commands = []
        for _ in range(size):
            cmd = self._create(data) if data.draw(st.booleans(), label="new") else \
                self._about(data)
            if cmd is not None:
                commands.append(cmd)
        if commands:
            self._submit(commands)

    @rule(asset_id=st.sampled_from(ASSETS), buyer=st.sampled_from(USERS),
          price=st.sampled_from((None, 1, 5_000, 30_000)))
    def sold_at_auction(self, asset_id: str, buyer: str, price: int | None) -> None:
        seller = self.owners[asset_id]
        if buyer == seller:
            return
        self.n += 1
        auction_id = f"a_{self.n}"
        if price is not None and self.cash[buyer] < price:
            price = None

        async def go() -> None:
            await transfer(self.store, asset_id, buyer, reason="auction", ref=auction_id,
                           price=price, at=self.clock.now)
            if price is not None:
                entry = ledger.settlement(auction_id, buyer, seller, price, SALE_FEE_BPS, 0,
                                          self.clock.now, self.cash[buyer])
                await self.store.post_entry(cast(EntryRecord, entry.to_dict()))
            await self.live.invalidate_assets([asset_id], "asset_sold")
            await idle(self.live)

        self.run(go())
        self.owners[asset_id] = buyer
        if price is not None:
            fee = price * SALE_FEE_BPS // 10_000
            self.cash[buyer] -= price
            self.cash[seller] += price - fee
            self.fees += fee

    @rule(dt=DT)
    def time_passes(self, dt: int) -> None:
        self.clock.now += dt
        self.live.wake()
        self.run(idle(self.live))

    @rule()
    def restart(self) -> None:
        async def go() -> None:
            await self.live.close()
            self.desk = None
            self.desk = await self._start(self.store)
            await idle(self.desk)

        self.run(go())

    @precondition(lambda self: self.offer_ids)
    @rule(data=st.data(), point=st.sampled_from(CRASH_POINTS))
    def crash_in_a_swap(self, data: st.DataObject, point: tuple[str, int]) -> None:
        """Accept an offer on a desk whose process dies right after a chosen write of the
        swap (nothing after it reaches the store), then start a new desk on the store. An
        accept that is refused, or a swap that ends before that write, ends normally."""
        offer_id = self._pick(data)
        record = self.run(self.store.get_offer(offer_id))
        assert record is not None
        req = self._req()
        self.sent.append((offer_id, record["to_id"], req))
        method, nth = point

        def when(n: int, args: tuple[Any, ...]) -> bool:
            if method == "save_offers":
                return any(r["status"] in (SETTLED, FAILED) for r in args[0])
            return n == nth

        async def go() -> None:
            await self.live.close()
            self.desk = None
            dying = CrashingStore(self.store, method, "crash", when)
            desk = await self._start(cast(SqliteStore, dying))
            task = asyncio.ensure_future(desk.submit([command(record, "accept",
                                                              record["to_id"], req)]))
            crashed = asyncio.ensure_future(dying.crashed.wait())
            await asyncio.wait([task, crashed], timeout=10,
                               return_when=asyncio.FIRST_COMPLETED)
            assert task.done() or crashed.done(), "the accept neither ended nor crashed"
            event(f"crash at {method} {nth}: {'crashed' if crashed.done() else 'no crash'}")
            if not crashed.done():
                await idle(desk)  # let it finish, then a plain restart
            await desk.close()
            for pending in (task, crashed):
                pending.cancel()
            await asyncio.gather(task, crashed, return_exceptions=True)
            self.desk = await self._start(self.store)
            await idle(self.desk)

        self.run(go())

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def the_market_is_sound(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        store = self.store
        records: dict[str, OfferRecord] = {}
        for user in USERS:
            for rec in await store.list_offers(user, limit=100_000):
                records[rec["offer_id"]] = rec
        chains = {}
        for asset_id in ASSETS:
            _, chains[asset_id] = await check_asset(store, asset_id)

        # what the swaps settled since the last check did, applied to the model (the cards
        # of swaps settled together are disjoint: a card is locked by one swap at a time)
        for offer_id, rec in records.items():
            before = self.seen.get(offer_id)
            if rec["status"] != SETTLED or (before is not None and before["status"] == SETTLED):
                continue
            offer = Offer.from_dict(rec)
            for asset_id, frm, to in offer.moves():
                assert self.owners[asset_id] == frm, (offer_id, asset_id)
                self.owners[asset_id] = to
            leg = offer.cash_leg()
            if leg is not None:
                payer, receiver, amount = leg
                fee = amount * FEE_BPS // 10_000
                self.cash[payer] -= amount
                self.cash[receiver] += amount - fee
                self.fees += fee

        threads: dict[str, int] = {}
        for offer_id, rec in records.items():
            before = self.seen.get(offer_id)
            status = rec["status"]
            assert status != ACCEPTED, f"{offer_id} still accepted once the desk is idle"
            assert rec["told_seq"] == rec["seq"], f"{offer_id}: change {rec['seq']} not told"
            if before is None:
                assert rec["seq"] <= 3
            elif before["status"] in FINAL:
                assert rec == before, f"final offer {offer_id} changed"
            elif rec["seq"] != before["seq"]:
                assert rec["seq"] > before["seq"]
                assert (before["status"], status) in TRANSITIONS, (before["status"], status)
            if status == EXPIRED:  # at its time, not a millisecond before
                assert rec["expires_at"] <= self.clock.now
                assert rec["updated_at"] == rec["expires_at"]
            if status == ACTIVE:
                threads[rec["thread_id"]] = threads.get(rec["thread_id"], 0) + 1
                assert rec["expires_at"] > self.clock.now, f"{offer_id} active past expiry"
                for asset_id in rec["give"]["assets"]:
                    assert self.owners[asset_id] == rec["from_id"], (
                        f"active {offer_id} gives {asset_id}, owned by {self.owners[asset_id]}")
                for asset_id in rec["want"]["assets"]:
                    assert self.owners[asset_id] == rec["to_id"], (
                        f"active {offer_id} wants {asset_id}, owned by {self.owners[asset_id]}")
            for asset_id in ASSETS:
                moved = transfers_by(chains[asset_id], offer_id)
                named = asset_id in rec["assets"] and status == SETTLED
                assert len(moved) == (1 if named else 0), (offer_id, asset_id, len(moved))
            entry = await store.get_entry(ledger.entry_id_for(ledger.OFFER, offer_id))
            has_cash = bool(rec["give"]["cash"] or rec["want"]["cash"])
            assert (entry is not None) == (status == SETTLED and has_cash), offer_id
            self.seen[offer_id] = rec
        assert all(n == 1 for n in threads.values()), "two active offers in one thread"

        for asset_id in ASSETS:
            assert chains[asset_id][-1]["to"] == self.owners[asset_id], asset_id
        for user in USERS:
            account = await store.get_account(ledger.user_account(user))
            assert account["balance"] == self.cash[user], user
        fees = (await store.get_account(ledger.FEES))["balance"]
        assert fees == self.fees
        assert sum(self.cash.values()) + fees == FUNDS * len(USERS)
        assert await store.check_ledger() == []


def _one_of[T](data: st.DataObject, pool: list[T], label: str) -> T:
    """An element of a list that changes with the run, drawn the same way whatever its
    length (so that a replayed prefix draws alike)."""
    return pool[data.draw(st.integers(0, 2**16), label=label) % len(pool)]


TestOfferMarket = OfferMarket.TestCase
