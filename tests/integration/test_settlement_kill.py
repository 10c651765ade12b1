"""Settlement happens exactly once, whatever moment the whole server is SIGKILLed at.

A burst of English auctions closes in groups a few seconds apart while the server (gateway,
Ray and every actor) is SIGKILLed three times at random moments of the burst, each time as
soon as a settlement saga is seen half-done in the store (or at the end of a random window),
and restarted on the same data dir. One bidder can pay for only one of the several auctions
they win, so some sales must end `payment_failed`. Once everything is settled, the store file
itself is checked: one sale or one payment failure per auction, money conserved and exactly
as the trades and fee settings say, every token with one owner and a verifying chain, and
each user's notices once each.

The seed of the kill moments is printed in every assertion (set ECE_KILL_SEED to replay it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import pytest

from market.ledger import entry_id_for
from market.provenance import verify_chain
from storage import open_store
from storage.base import SETTLE_PAYMENT_FAILED
from testkit.client import FUNDS, Api, User, connect, wait_for
from testkit.processes import MANY_USERS, Managed, crash, start_ece
from testkit.provenance import outsider_verifies

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow,
              pytest.mark.timeout(240)]

SELLER_FEE_BPS, PREMIUM_BPS = 500, 250  # every money leg of a sale is non-zero
FEE_ENV = {"ECE_SELLER_FEE_BPS": str(SELLER_FEE_BPS), "ECE_BUYER_PREMIUM_BPS": str(PREMIUM_BPS)}
GROUPS, PER_GROUP, GAP_MS = 7, 4, 4000  # 28 auctions, four closing at each instant
FIRST_CLOSE_MS = 8000  # after the listings start: room to place every bid first
KILLS = 3
KILL_WINDOW_S = 4.5  # a kill comes at a saga seen half-done, or at the end of this window
NO_BIDS = {5, 17}  # unsold: the card is released
POOR_WINS = {1, 2, 10, 11, 16, 22}  # the under-funded bidder wins these (two pairs at once)
POOR_ALONE = 16  # ... this one without a runner-up
# Each of the poor bidder's wins costs 4900..5300 with the premium: one fits, never two.
POOR_FUNDS = 6000
START_LIMIT_S = 90  # a restart that is not ready by then is a failure of its own
NEWS_GRACE_S = 10  # a settled auction's notices follow within milliseconds when they come
SETTLE_KEYS = ("won", "sold", "lost", "transfer_in", "transfer_out", "payment_failed",
               "second_chance")


def fee(amount: int, bps: int) -> int:
    return amount * bps // 10_000


@dataclass
class Planned:
    index: int
    seller: str  # role names: s0.., b0.., poor
    start_price: int
    bids: list[tuple[str, int]]  # in order; each bidder's amount is their maximum
    view: dict = field(default_factory=dict)

    @property
    def auction_id(self) -> str:
        return self.view["auction_id"]

    @property
    def asset_id(self) -> str:
        return self.view["asset_id"]

    def ranked(self) -> list[tuple[str, int]]:
        return sorted(self.bids, key=lambda bid: -bid[1])


def plan() -> list[Planned]:
    auctions = []
    for i in range(GROUPS * PER_GROUP):
        seller = f"s{i % 3}"
        funded = [f"b{(i + k) % 4}" for k in range(3)]
        if i in NO_BIDS:
            auctions.append(Planned(i, seller, 1000 + 10 * i, []))
        elif i == POOR_ALONE:
            auctions.append(Planned(i, seller, 4900, [("poor", 5000 + 10 * i)]))
        elif i in POOR_WINS:
            auctions.append(Planned(i, seller, 1000 + 10 * i,
                                    [(funded[0], 4800 + 10 * i), ("poor", 5000 + 10 * i)]))
        else:
            base = 1000 + 10 * i
            bids = [(funded[0], base + 100), (funded[1], base + 200)]
            if i % 2:
                bids.append((funded[2], base + 400))
            auctions.append(Planned(i, seller, base, bids))
    return auctions


# ---- looking at the store file while servers come and go -------------------------------------

_COUNTS = {
    "open": "SELECT COUNT(*) FROM auctions WHERE status IN ('scheduled','live')",
    # closed, saga not finished (maybe not started)
    "unsettled": "SELECT COUNT(*) FROM auctions WHERE status IN ('closed','cancelled')"
                 " AND settled=0",
    "settled": "SELECT COUNT(*) FROM auctions WHERE settled=1",
}
_HALF_DONE = {
    # step 1 done, step 2 not: the money moved, the card not yet
    "paid_unsettled": "SELECT a.auction_id FROM entries e JOIN auctions a"
                      " ON a.auction_id=e.cause_key WHERE e.cause='settlement' AND a.settled=0",
    # step 2 done, step 3 not: settled, the winner not told yet
    "settled_untold": "SELECT a.auction_id FROM auctions a WHERE a.settled=1"
                      " AND json_extract(a.view,'$.winner_id') IS NOT NULL AND NOT EXISTS ("
                      "SELECT 1 FROM notices n WHERE n.user_id=json_extract(a.view,'$.winner_id')"
                      " AND n.key IN ('won:'||a.auction_id, 'payment_failed:'||a.auction_id))",
}


@dataclass(frozen=True)
class Peek:
    counts: dict[str, int]
    half_done: dict[str, frozenset[str]]  # auctions by the step their saga is stuck after

    def __str__(self) -> str:
        return str({**self.counts, **{k: len(v) for k, v in self.half_done.items()}})


def peek(db_path: Path) -> Peek | None:
    """The store file, read-only (None if it cannot be read right now)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            return Peek({name: db.execute(sql).fetchone()[0] for name, sql in _COUNTS.items()},
                        {name: frozenset(r[0] for r in db.execute(sql))
                         for name, sql in _HALF_DONE.items()})
    except sqlite3.Error:
        return None


def mid_saga(state: Peek | None, before: Peek | None) -> bool:
    """A saga half-done now, and not the very one(s) an earlier kill left half-done."""
    return bool(state and any(state.half_done.values())
                and (before is None or state.half_done != before.half_done))


def all_settled(state: Peek | None, total: int) -> bool:
    return bool(state and state.counts["settled"] == total and not state.counts["open"]
                and not state.counts["unsettled"] and not state.half_done["paid_unsettled"])


def all_told(state: Peek | None) -> bool:
    return bool(state and not state.half_done["settled_untold"])


# ---- servers started without waiting, killed at once --------------------------------------


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    """`launch(**env)`: like `start_server`'s `start` (same data dir), but not waited for, so
    that a kill can land while it recovers; stopped after the test."""
    launched: list[Managed] = []

    def start(**env: str) -> Managed:
        name = f"launched-{len(launched)}"
        server = start_ece(tmp_path / f"{name}.log",
                           {"ECE_DATA_DIR": str(tmp_path / "data"), **MANY_USERS, **env}, name)
        launched.append(server)
        return server

    yield start
    for server in launched:
        server.stop()


async def healthy(http: aiohttp.ClientSession, server: Managed) -> bool:
    try:
        async with http.get(server.base + "/healthz",
                            timeout=aiohttp.ClientTimeout(total=0.5)) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


# ---- the test ---------------------------------------------------------------------------------


async def test_sigkill_during_a_burst_of_closes_settles_each_auction_once(start_server, launch,
                                                                            tmp_path):
    seed = int(os.environ.get("ECE_KILL_SEED") or time.time_ns() % 2**32)
    rng = random.Random(seed)
    story: list[str] = [f"seed {seed} (ECE_KILL_SEED={seed} replays the kill moments)"]

    def why(extra: str = "") -> str:
        return "\n".join([extra, *story])

    db_path = tmp_path / "data" / "ece.db"
    auctions = plan()
    started = time.monotonic()

    def clock() -> str:
        return f"+{time.monotonic() - started:.2f}s"

    # ---- set up: users, listings closing in a burst, every bid placed before the first close
    server = start_server(**FEE_ENV)
    story.append(f"server 0 ready in {server.ready_s:.1f}s")
    users: dict[str, User] = {}
    async with aiohttp.ClientSession() as http:
        api = Api(server.base, http)
        for role in ("s0", "s1", "s2"):
            users[role] = await api.signup(role, funds=0)
        for role in ("b0", "b1", "b2", "b3"):
            users[role] = await api.signup(role)
        users["poor"] = await api.signup("poor", funds=POOR_FUNDS)
        deposits = {role: (0 if role.startswith("s") else POOR_FUNDS if role == "poor"
                           else FUNDS) for role in users}
        role_of = {user.user_id: role for role, user in users.items()}

        first_close = int(time.time() * 1000) + FIRST_CLOSE_MS
        for a in auctions:
            a.view = await api.auction(
                users[a.seller], f"Card {a.index}", start_price=a.start_price, duration_ms=None,
                ends_at=first_close + (a.index // PER_GROUP) * GAP_MS, soft_close_ms=0)

        sockets = {role: await connect(http, server.base, users[role])
                   for role in ("b0", "b1", "b2", "b3", "poor")}
        gate = asyncio.Semaphore(6)

        async def bid_all(a: Planned) -> None:
            async with gate:
                for role, amount in a.bids:
                    answer = await sockets[role].bid(a.auction_id, amount)
                    assert answer["op"] == "ack", why(
                        f"bid {role} {amount} on #{a.index}: {answer} (setup slower than the"
                        f" {FIRST_CLOSE_MS} ms before the first close?)")

        await asyncio.gather(*(bid_all(a) for a in auctions))
        for sock in sockets.values():
            await sock.close()
    ms_left = first_close - int(time.time() * 1000)
    story.append(f"set up at {clock()}; first close in {ms_left} ms")
    assert ms_left > 0, why("every bid must be placed before the first close")

    # ---- the burst: SIGKILL everything at random moments of it, restart on the same data
    async def kill_in_window(victim: Managed, label: str, opens_at: float,
                             after_ready: tuple[float, float] | None = None) -> None:
        """From `opens_at` (monotonic) on, kill `victim` at the first half-done saga seen in
        the store, or at the end of the window: KILL_WINDOW_S after it opened or, for a
        server starting up (`after_ready` = (low, high)), a random while after it is ready
        (start-up resumes the sagas a kill interrupted and closes the overdue auctions)."""
        while time.monotonic() < opens_at:
            await asyncio.sleep(min(0.05, opens_at - time.monotonic()))
        closes_at = None if after_ready else opens_at + KILL_WINDOW_S
        known = victim.descendants()
        last_look = time.monotonic()
        before = state = peek(db_path)
        async with aiohttp.ClientSession() as http:
            while not mid_saga(state, before):
                now = time.monotonic()
                if closes_at is not None and now >= closes_at:
                    break
                if now - last_look > 0.2:  # new workers and the readiness, now and then
                    known, last_look = victim.descendants(), now
                    if closes_at is None and await healthy(http, victim):
                        closes_at = time.monotonic() + rng.uniform(*after_ready)
                        story.append(f"{victim.name} ready at {clock()}: {peek(db_path)}")
                    if victim.proc.poll() is not None or now - opens_at > START_LIMIT_S:
                        raise AssertionError(why(f"{victim.name} died or never got ready:\n"
                                                 f"{victim.log_tail()}"))
                await asyncio.sleep(0.002)
                state = peek(db_path)
        killed = crash(victim, known)  # SIGSTOP the tree, then SIGKILL it, as a power cut
        seen = "a half-done saga seen" if mid_saga(state, before) else "end of window"
        after = peek(db_path)
        story.append(f"{label} at {clock()} ({seen}: {state}); store after: {after}")
        # Nothing of the killed server may live on and write (the next one starts now).
        alive = [proc for proc in killed if proc.is_running()
                 and proc.status() != psutil.STATUS_ZOMBIE]
        await asyncio.sleep(0.3)
        assert not alive and peek(db_path) == after, why(
            f"{victim.name} lives on after its kill: {alive}, {peek(db_path)}")

    burst_start = time.monotonic() + ms_left / 1000
    await kill_in_window(server, "kill 1",
                         burst_start + rng.uniform(0.0, GAP_MS * 1.5 / 1000))
    for n in range(2, KILLS + 1):
        await kill_in_window(launch(**FEE_ENV), f"kill {n}", time.monotonic(),
                             after_ready=(0.0, GAP_MS / 1000))
    server = start_server(**FEE_ENV)
    story.append(f"server {KILLS} ready in {server.ready_s:.1f}s: {peek(db_path)}")

    # ---- wait for the last close (wall-clock) and every saga's card step, then its news
    last_close_s = (first_close + (GROUPS - 1) * GAP_MS) / 1000 - time.time()
    try:
        await wait_for(lambda: all_settled(peek(db_path), len(auctions)),
                       timeout=max(last_close_s, 0) + 45, interval=0.2,
                       message="every auction closed and settled")
    except AssertionError as exc:
        raise AssertionError(why(f"{exc}: {peek(db_path)}\n{server.log_tail()}")) from None
    with contextlib.suppress(AssertionError):  # if some never come, check_store says which
        await wait_for(lambda: all_told(peek(db_path)), timeout=NEWS_GRACE_S, interval=0.2,
                       message="every settled auction's notices")
    story.append(f"all settled at {clock()}")
    async with aiohttp.ClientSession() as http:
        key = (await Api(server.base, http).expect(200, "GET", "/api/tokens/key"))["public_key"]
    server.stop()

    # ---- the store file, checked directly
    store = open_store(f"sqlite:///{db_path}")
    await store.open()
    try:
        await check_store(store, auctions, users, role_of, deposits, key, why)
    finally:
        await store.close()
    print("\n".join(story))  # with -s: where the kills landed


async def check_store(store, auctions: list[Planned], users: dict[str, User],
                      role_of: dict[str, str], deposits: dict[str, int], key: str, why) -> None:
    paid: Counter[str] = Counter()  # role -> what they paid (price + premium)
    got: Counter[str] = Counter()  # role -> what they got (price - fee)
    fees_total = 0
    entries_of: defaultdict[str, set[str]] = defaultdict(set)  # role -> settlement entry ids
    expected_notices: defaultdict[str, set[str]] = defaultdict(set)  # role -> keys
    outcomes: Counter[str] = Counter()
    poor_paid = 0

    for a in auctions:
        record = await store.get_auction(a.auction_id)
        where = f"auction #{a.index} {a.auction_id}"
        assert record is not None, why(where)
        view = record["view"]
        assert record["status"] == "closed" and record.get("settled"), why(f"{where}: {record}")
        trades = await store.list_trades(asset_id=a.asset_id)
        entry_id = entry_id_for("settlement", a.auction_id)
        entry = await store.get_entry(entry_id)
        asset = await store.get_asset(a.asset_id)
        assert asset is not None and asset.get("listed_in") is None, why(f"{where}: {asset}")
        seller = users[a.seller].user_id
        error = record.get("settle_error")
        ranked = a.ranked()
        chance = await store.get_second_chance(a.auction_id)
        for refund in ("fees", f"user:{seller}"):
            assert await store.get_entry(
                entry_id_for("settlement", f"{a.auction_id}:refund:{refund}")) is None, why(where)

        if not ranked:
            outcomes["unsold"] += 1
            assert view.get("winner_id") is None and error is None, why(f"{where}: {record}")
            assert not trades and entry is None and chance is None, why(where)
            assert asset["owner_id"] == seller, why(where)
            continue

        winner_role, _ = ranked[0]
        winner = users[winner_role].user_id
        price = int(view["final_price"])
        premium, seller_fee = fee(price, PREMIUM_BPS), fee(price, SELLER_FEE_BPS)
        assert view["winner_id"] == winner, why(f"{where}: {view}")
        # Every other bidder lost, except a runner-up offered a second chance instead.
        losers = [role for role, _ in ranked[1:]]
        if error == SETTLE_PAYMENT_FAILED:
            losers = losers[1:]
        for role in losers:
            expected_notices[role].add(f"lost:{a.auction_id}")

        if error is None:  # sold: one trade, one entry, the card the winner's
            outcomes["sold"] += 1
            assert len(trades) == 1, why(f"{where}: trades {trades}")
            trade = trades[0]
            assert (trade["auction_id"], trade["buyer_id"], trade["seller_id"], trade["price"],
                    trade.get("premium"), trade.get("seller_fee")) == (
                a.auction_id, winner, seller, price, premium, seller_fee), why(f"{where}: {trade}")
            assert entry is not None, why(f"{where}: sold without a settlement entry")
            assert dict(map(tuple, entry["postings"])) == {
                f"user:{winner}": -(price + premium), f"user:{seller}": price - seller_fee,
                "fees": premium + seller_fee}, why(f"{where}: {entry}")
            assert asset["owner_id"] == winner, why(f"{where}: {asset}")
            assert chance is None, why(where)
            paid[winner_role] += price + premium
            got[a.seller] += price - seller_fee
            fees_total += premium + seller_fee
            entries_of[winner_role].add(entry_id)
            entries_of[a.seller].add(entry_id)
            expected_notices[winner_role] |= {f"won:{a.auction_id}",
                                              f"transfer_in:{a.auction_id}"}
            expected_notices[a.seller] |= {f"sold:{a.auction_id}", f"transfer_out:{a.auction_id}"}
            if winner_role == "poor":
                poor_paid += 1
        else:  # the winner could not pay: nothing moved, a second chance for the runner-up
            outcomes["payment_failed"] += 1
            assert error == SETTLE_PAYMENT_FAILED, why(f"{where}: {record}")
            assert winner_role == "poor", why(f"{where}: a funded winner failed to pay")
            assert not trades and entry is None, why(f"{where}: {trades} {entry}")
            assert asset["owner_id"] == seller, why(f"{where}: {asset}")
            expected_notices[winner_role].add(f"payment_failed:{a.auction_id}")
            expected_notices[a.seller].add(f"payment_failed:{a.auction_id}")
            if len(ranked) > 1:
                runner_role, runner_max = ranked[1]
                assert chance is not None, why(f"{where}: no second chance")
                assert (chance["user_id"], chance["price"], chance["asset_id"],
                        chance["seller_id"], chance["status"]) == (
                    users[runner_role].user_id, runner_max, a.asset_id, seller, "open"), why(
                    f"{where}: {chance}")
                expected_notices[runner_role].add(f"second_chance:{a.auction_id}")
            else:
                assert chance is None, why(f"{where}: {chance}")

    poor_wins = sum(1 for a in auctions if a.ranked() and a.ranked()[0][0] == "poor")
    assert poor_paid == 1 and outcomes["payment_failed"] == poor_wins - 1, why(
        f"the poor bidder can pay for exactly one of their {poor_wins} wins: {outcomes}")

    # ---- money: sound, conserved, and what the trades and fee settings say
    assert await store.check_ledger() == [], why()
    balances = {role: (await store.get_account(f"user:{user.user_id}"))["balance"]
                for role, user in users.items()}
    fees_account = (await store.get_account("fees"))["balance"]
    external = (await store.get_account("external"))["balance"]
    assert sum(balances.values()) + fees_account + external == 0, why(f"{balances}")
    assert set(await store.user_balances()) <= set(role_of), why()
    expected = {role: deposits[role] - paid[role] + got[role] for role in users}
    assert balances == expected, why(f"balances {balances} != expected {expected}")
    assert fees_account == fees_total and external == -sum(deposits.values()), why()
    payment_keys: dict[str, set[str]] = {}
    for role, user in users.items():
        postings = await store.list_postings(f"user:{user.user_id}", limit=1000)
        settled = {p["entry_id"] for p in postings if p["cause"] == "settlement"}
        assert settled == entries_of[role], why(f"{role}'s settlement postings")
        assert len(postings) == len({p["entry_id"] for p in postings}), why(role)
        assert sum(1 for p in postings if p["cause"] == "deposit") == (
            1 if deposits[role] else 0), why(role)
        payment_keys[role] = {f"payment:{p['entry_id']}" for p in postings}

    # ---- tokens: one owner each, the end of a chain that verifies with the published key
    for a in auctions:
        asset = await store.get_asset(a.asset_id)
        token_id = asset["token_id"]
        chain = await store.load_provenance(token_id)
        where = f"token of auction #{a.index}"
        assert chain, why(f"{where}: no chain")
        assert chain[-1]["to"] == asset["owner_id"], why(f"{where}: {chain[-1]} vs {asset}")
        assert outsider_verifies(token_id, chain, key), why(f"{where}: does not verify")
        assert verify_chain(token_id, chain, key) == [], why(where)
        transfers = [r for r in chain if r["kind"] == "transfer"]
        trade = await store.get_trade(a.auction_id)
        if trade is not None:
            assert [(r["ref"], r["from"], r["to"], r["price"]) for r in transfers] == [
                (a.auction_id, trade["seller_id"], trade["buyer_id"], trade["price"])], why(
                f"{where}: {chain}")
        else:
            assert transfers == [], why(f"{where}: {chain}")

    # ---- notices: every settlement notice once, the payments' too, nothing else of these kinds
    index_of = {a.auction_id: a.index for a in auctions}
    wrong: list[str] = []
    for role, user in users.items():
        notices = await store.load_notices(user.user_id, limit=10_000)
        assert [n["seq"] for n in notices] == list(range(1, len(notices) + 1)), why(role)
        keys = [n["key"] for n in notices]
        assert len(keys) == len(set(keys)), why(f"{role}: duplicate keys {keys}")
        told = {k for k in keys if k.split(":", 1)[0] in SETTLE_KEYS}
        for label, found in (("missing", expected_notices[role] - told),
                             ("unexpected", told - expected_notices[role])):
            wrong += [f"{role}: {label} {k} (auction #{index_of.get(k.split(':', 1)[1])})"
                      for k in sorted(found)]
        assert {k for k in keys if k.startswith("payment:")} == payment_keys[role], why(role)
        for n in notices:
            if n["type"] == "won":
                price = n["data"]["price"]
                assert n["data"]["total"] == price + fee(price, PREMIUM_BPS), why(f"{n}")
    assert not wrong, why("settlement notices (money, cards and tokens all checked fine):\n  "
                          + "\n  ".join(wrong))
