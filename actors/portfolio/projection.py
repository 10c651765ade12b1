"""The portfolio projection of one shard of users (crc32 of the user id): it folds the
ownership feed into each user's account (`market.holdings`), revalues the holders of the
positions whose value changed (`revalue`, fed by the analytics' `values` messages), and writes
each changed user's portfolio (`market.portfolio.portfolio_view`) with its checkpoint.

Results (kinds, all keyed by user id, the day ones "<user>|<day start>"):
- `holdings`: the account (lots, realised P/L, the feed position folded up to);
- `portfolio`: the `GET /api/portfolio` body;
- `portfolio_flows`: a day's money in and out (cash paid, proceeds, cards in kind).
And `portfolio_snap` (today's value, low and high; rewritten while the day lasts): a value
observed at its time, which a rebuild keeps (it cannot be recomputed later), so it is not one
of the kinds the projection owns.

State is not replayed on start (`replays = False`): it is the persisted accounts, read once
(each account knows the feed position it has folded, so a batch redone after a crash that
left its results ahead of the checkpoint changes nothing). The time-weighted return chains the
snapshots with the flows; the risk panel prices today's holdings back a year by their indexes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from actors.analytics.prices import shard_of  # crc32: the same hash shards users everywhere
from actors.analytics.runner import Feed, Put
from actors.portfolio.values import Values
from market.holdings import Account, fold, position_of
from market.performance import daily_flows, daily_returns, daily_values, twr
from market.portfolio import (
    Series,
    holdings_series,
    interpolated_level,
    portfolio_view,
    totals,
)
from market.prices import DAY_MS, bucket_start
from market.valuation import Valuation, index_level
from storage import Store
from storage.records import AnalyticsMessage

KINDS = ("holdings", "portfolio", "portfolio_flows")
SNAP = "portfolio_snap"
CHANNEL = "portfolios"  # not a client channel: gateways deliver each user's part on `me`
RISK_DAYS = 365
USERS_PER_MESSAGE = 500
MAX_DAYS = 3 * 366  # flow and snapshot days read and kept per user
FULL_BUDGET_S = 0.1  # CPU a flush spends at most recomputing revalued users' portfolios
TOLD_BUDGET_S = 0.01  # ... when it also has events to send (they wait for the flush)
MAX_DEFER_S = 2.0  # longest a busy machine holds off the whole portfolios of users told


class History:
    """One user's days: snapshots (value) and flows (in, out, the feed position of the last
    row counted in them), by day start."""

    def __init__(self) -> None:
        self.snap: dict[int, dict[str, int]] = {}
        self.flows: dict[int, list[int]] = {}

    def trim(self) -> None:
        """Keep the newest MAX_DAYS days of each (what the projection reads back)."""
        for days in (self.snap, self.flows):
            for day in sorted(days)[:-MAX_DAYS]:
                del days[day]

    def twr(self, today: int) -> float | None:
        if not self.snap:
            return None
        t = sorted(self.snap)
        days, values = daily_values(t, [self.snap[d]["value"] for d in t], t[0], today)
        flow_days = sorted(self.flows)
        amounts = [a for d in flow_days for a in (self.flows[d][0], -self.flows[d][1])]
        stamps = [d for d in flow_days for _ in range(2)]
        flows = daily_flows(days, stamps, amounts)
        return twr(daily_returns(values, flows.inflow, flows.outflow)) if len(days) > 1 else None


class PortfolioProjection:
    replays = False
    kinds: tuple[str, ...] = KINDS

    def __init__(self, store: Store, shard: int = 0, shards: int = 1,
                 values: Values | None = None, risk_free: float = 0.0,
                 threshold: float = 0.25, busy: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # busy(): the machine is busy with other work (the bid path); the whole portfolios
        # of users already told then wait, MAX_DEFER_S at most between two flushes' worth.
        self.busy, self.clock = busy, clock
        self.deferred_at = clock()  # when deferred whole portfolios were last worked on
        self.store = store
        self.shard, self.shards = shard, shards
        self.name = f"portfolio.{shard}"
        self.values = values if values is not None else Values(store)
        self.risk_free, self.threshold = risk_free, threshold
        self._cards: dict[str, dict[str, Any] | None] = {}
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.holders: dict[str, set[str]] = defaultdict(set)  # position -> users holding it
        self.history: dict[str, History] = {}
        self.loaded = False
        self.changed_accounts: set[str] = set()
        self.new_flows: dict[str, list[tuple[int, int, int]]] = {}  # user -> (pos, at, amount)
        self.stale: set[str] = set()  # users whose portfolio must be recomputed
        self.shown: dict[str, dict[str, Any]] = {}  # what the last event told, by user
        self.deferred: dict[str, None] = {}  # users told, whose whole portfolio waits (FIFO)
        self.digests: dict[str, tuple[int, bytes]] = {}  # (day, digest) of the view written

    def replayed(self) -> None:
        pass

    def feed(self, store: Store) -> Feed:
        return store.ownership_feed

    def position(self, store: Store) -> Any:
        return store.ownership_position()

    def mine(self, user: Any) -> bool:
        return user is not None and shard_of(str(user), self.shards) == self.shard

    async def load(self) -> None:
        """Every account of the shard, from the store (once after each start)."""
        if self.loaded:
            return
        start = ""
        while True:
            rows = await self.store.scan_projection("holdings", start, "\U0010ffff", 1000)
            for user, doc in rows:
                if self.mine(user):
                    self._index(user, Account.from_doc(doc))
            if len(rows) < 1000:
                break
            start = rows[-1][0] + "\0"
        self.loaded = True
        self.stale.update(self.accounts)  # values may have moved while it was down

    def _index(self, user: str, account: Account) -> None:
        self.accounts[user] = account
        for lot in account.lots.values():
            self.holders[lot.position].add(user)

    def _account(self, user: str) -> Account | None:
        if not self.mine(user):
            return None
        return self.accounts.setdefault(user, Account())

    async def apply(self, rows: Sequence[Any], now: int) -> None:
        await self.load()
        for row in rows:
            users = [u for u in (row.get("from_user"), row.get("to_user")) if self.mine(u)]
            if not users:
                continue
            position = position_of(row)
            await self.values.values([position])
            segment = self.values.index_of(position)
            index = await self.values.index(segment) if segment else None
            value_at = _value_at(self.values.value_now(position), index, now)
            for user in fold(row, self._account, value_at):
                acct = self.accounts[user]
                self.new_flows.setdefault(user, []).extend(
                    (int(row.get("pos") or 0), at, amount) for at, amount in acct.flows)
                acct.flows.clear()
                if any(lot.position == position for lot in acct.lots.values()):
                    self.holders[position].add(user)
                elif position in self.holders:
                    self.holders[position].discard(user)
                    if not self.holders[position]:
                        del self.holders[position]
                self.changed_accounts.add(user)
                self.stale.add(user)

    def revalue(self, positions: Sequence[str]) -> set[str]:
        """The values of these positions changed: their holders' portfolios are recomputed at
        the next flush. Returns those users."""
        users = set()
        for position in self.values.forget(positions) | set(positions):
            users |= self.holders.get(position, set())
        self.stale |= users
        return users

    async def flush(self, now: int, more: bool = False) -> tuple[list[Put], list[AnalyticsMessage]]:
        """Accounts that changed get their whole portfolio now. Users only revalued are told
        at once (their totals and changed holdings, `totals`: cheap) and their whole
        portfolios recomputed after, FULL_BUDGET_S of CPU per flush (TOLD_BUDGET_S when it
        tells someone), oldest first."""
        await self.load()
        if more and not self.changed_accounts:
            return [], []
        today = int(bucket_start(np.array([now]), "1d")[0])
        # Taken now: users made stale while this flush awaits (the values tail runs beside
        # it) are left for the next one.
        changed, self.changed_accounts = self.changed_accounts, set()
        revalued, self.stale = sorted(self.stale - changed), set()
        told: dict[str, Any] = {}
        if not self.deferred:
            self.deferred_at = self.clock()  # the wait of the users told now starts
        accounts = [(user, acct) for user in revalued
                    if (acct := self.accounts.get(user)) is not None]
        # One read of every value they need (a sale of a card held by thousands: one).
        values = await self.values.values({lot.position for _, acct in accounts
                                           for lot in acct.lots.values()})
        for user, acct in accounts:
            event = self._event(user, self._quick(user, acct, values), news=False)
            if event is not None:
                told[user] = {**event, "at": now}
            self.deferred.setdefault(user, None)
        # Those told wait for few whole portfolios (their message goes out with this flush):
        # a small budget then, the full one when nobody waits.
        budget = TOLD_BUDGET_S if told else FULL_BUDGET_S
        if self.deferred and self.clock() - self.deferred_at < MAX_DEFER_S and self.busy():
            budget = -1.0  # only the accounts that changed: the rest is not news
        elif self.deferred:
            self.deferred_at = self.clock()
        # The flows go first: a save is written kind by kind in the order the kinds come, so
        # a crash part way leaves them stored without the accounts at worst, and a redone
        # batch skips the rows their `pos` has counted (never the other way: lost flows).
        # The day's snapshot goes before the portfolio: a reader that sees a portfolio computed
        # at some time sees the history point it made (the portfolio is the version carrier).
        flows: list[Put] = []
        snaps: list[Put] = []
        puts: list[Put] = []
        started = time.process_time()
        for user in [*sorted(changed), *(u for u in list(self.deferred) if u not in changed)]:
            if user not in changed and time.process_time() - started >= budget:
                break
            self.deferred.pop(user, None)
            acct = self.accounts.get(user)
            if acct is None:
                continue
            history = await self._history(user)
            for day, (inflow, outflow, pos) in self._drain(user, history).items():
                flows.append(("portfolio_flows", f"{user}|{day}",
                              {"t": day, "inflow": inflow, "outflow": outflow, "pos": pos}))
            if user in changed:
                puts.append(("holdings", user, acct.to_doc()))
            view = await self._view(acct, history, now, today)
            digest = hashlib.blake2b(json.dumps(view, sort_keys=True).encode(),
                                     digest_size=16).digest()
            if self.digests.get(user) != (today, digest):  # else: the same as written
                self.digests[user] = (today, digest)
                if today in history.snap:
                    snaps.append((SNAP, f"{user}|{today}", history.snap[today]))
                puts.append(("portfolio", user, {**view, "computed_at": now}))
            event = self._event(user, view, news=user in changed)
            if event is not None:
                told[user] = {**event, "at": now}
        if len(self.values) > 2 * len(self.holders) + 1_000:
            self.values.keep(set(self.holders))
        users = sorted(told)
        messages: list[AnalyticsMessage] = [
            {"channel": CHANNEL, "type": "portfolio",
             "data": {"users": {u: told[u] for u in users[i:i + USERS_PER_MESSAGE]}}}
            for i in range(0, len(users), USERS_PER_MESSAGE)]
        return flows + snaps + puts, messages

    def _quick(self, user: str, acct: Account,
               values: Mapping[str, Valuation | None]) -> dict[str, Any]:
        """What an event needs of a portfolio: its totals and each holding's value (the
        shape `_event` reads from a whole view); the return as last computed."""
        lots = sorted(acct.lots.values(), key=lambda lot: (lot.position, lot.asset_id))
        twr = (self.shown.get(user) or {}).get("total", {}).get("twr")
        return {"totals": totals(lots, values, acct.realised, twr),
                "holdings": [{"asset_id": lot.asset_id,
                              "value": v._asdict() if (v := values.get(lot.position)) else None}
                             for lot in lots]}

    def revalue_all(self) -> None:
        """Every value may have changed unseen (the values tail passed a gap): read them all
        again, and recompute every account."""
        self.values.forget_all()
        self.stale |= set(self.accounts)

    def _drain(self, user: str, history: History) -> dict[int, list[int]]:
        """The user's new flows into its days, but those of rows a stored day has counted
        already (its `pos`: results saved ahead of the checkpoint); returns the days changed."""
        days: dict[int, list[int]] = {}
        counted: dict[int, int] = {}  # day -> the position its cell had counted up to
        for pos, at, amount in self.new_flows.pop(user, ()):
            day = int(bucket_start(np.array([at]), "1d")[0])
            cell = history.flows.setdefault(day, [0, 0, 0])
            if pos and pos <= counted.setdefault(day, cell[2]):
                continue
            cell[0 if amount > 0 else 1] += abs(amount)
            cell[2] = max(cell[2], pos)
            days[day] = cell
        return days

    async def _history(self, user: str) -> History:
        history = self.history.get(user)
        if history is None:
            history = self.history[user] = History()
            end = f"{user}|\U0010ffff"
            for kind, target in ((SNAP, history.snap), ("portfolio_flows", history.flows)):
                rows = await self.store.scan_projection(kind, f"{user}|", end, MAX_DAYS,
                                                        reverse=True)
                for _, doc in rows:
                    target[int(doc["t"])] = (doc if kind == SNAP  # type: ignore[assignment]
                                             else [int(doc["inflow"]), int(doc["outflow"]),
                                                   int(doc.get("pos", 0))])
        return history

    async def _card(self, card_id: str) -> dict[str, Any] | None:
        if card_id not in self._cards:
            card = await self.store.get_card(card_id) if card_id else None
            self._cards[card_id] = dict(card) if card is not None else None
        return self._cards[card_id]

    async def _view(self, acct: Account, history: History, now: int,
                    today: int) -> dict[str, Any]:
        lots = list(acct.lots.values())
        positions = [lot.position for lot in lots]
        values = await self.values.values(positions)
        cards = {lot.card_id: card for lot in lots
                 if (card := await self._card(lot.card_id)) is not None}
        valued = [v for v in (values.get(p) for p in positions) if v is not None]
        if valued or not lots:  # holdings none of which has a value: no snapshot (never 0)
            history.snap[today] = {"t": today, "value": sum(v.point for v in valued),
                                   "low": sum(v.low for v in valued),
                                   "high": sum(v.high for v in valued)}
            history.trim()
        view = portfolio_view(lots, values, cards, self._year_sales(positions),
                              acct.realised, history.twr(today),
                              await self._series(values, now, today), self.risk_free,
                              self.threshold)
        return view

    def _year_sales(self, positions: list[str]) -> dict[str, int]:
        return {p: self.values.sales_last_year(p) for p in positions}

    async def _series(self, values: dict[str, Any], now: int, today: int) -> Series | None:
        """A year of today's holdings priced back by their indexes, and the market's returns."""
        points: dict[str, int] = defaultdict(int)
        for position, value in values.items():
            if value is not None:
                points[position] += value.point
        if not points:
            return None
        days = np.arange(today - RISK_DAYS * DAY_MS, today + DAY_MS, DAY_MS, dtype=np.int64)
        index_of = {}
        for position in points:
            segment = self.values.index_of(position)
            series = await self.values.index(segment) if segment else None
            if series is not None:
                index_of[position] = series
        total = holdings_series(points, now, days, index_of)
        zero = np.zeros(len(days))
        market = await self.values.index("market")
        market_returns = None
        if market is not None:
            level = index_level(*market, days)
            market_returns = daily_returns(level, zero, zero)
        return Series(days, daily_returns(total, zero, zero), market_returns)

    def _event(self, user: str, view: dict[str, Any], news: bool) -> dict[str, Any] | None:
        """What a `portfolio` event tells the user: the totals, the holdings whose value
        changed since the last one and those gone (None: nothing changed but the return,
        which moves with every snapshot). The first computation after a start is news only
        when the user's holdings changed (`news`)."""
        by_asset = {h["asset_id"]: h["value"] for h in view["holdings"]}
        before = self.shown.get(user)
        self.shown[user] = {"total": view["totals"], "values": by_asset}
        if before is None:
            if not news:
                return None
            changed, removed = list(by_asset), []
        else:
            changed = [a for a, v in by_asset.items()
                       if a not in before["values"] or before["values"][a] != v]
            removed = sorted(set(before["values"]) - set(by_asset))
            if not changed and not removed and _sans_twr(before["total"]) == _sans_twr(
                    view["totals"]):
                return None
        return {"total": view["totals"], "removed": removed,
                "changed": [{"asset_id": a, "value": by_asset[a]} for a in changed]}


def _value_at(point: int | None, index: tuple[Any, Any] | None,
              now: int) -> Callable[[str, int], int | None]:
    """A position's value at a past time, for the cards a row moves in kind: today's value
    moved back by its index (`interpolated_level`), so that a rebuild folding old rows values
    them as they were then, as the live fold did."""
    def at(_position: str, when: int) -> int | None:
        if point is None or index is None or when >= now:
            return point
        then, today = interpolated_level(*index, [when, now])
        return round(float(point) * float(then) / float(today))
    return at


def _sans_twr(total: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in total.items() if k != "twr"}
