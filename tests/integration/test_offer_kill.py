"""An accepted trade offer swaps exactly once, whatever moment the whole server is SIGKILLed at.

Thirty offers, each card-for-card (most with cash on one side), between six users, each on
cards of its own, are accepted in one concurrent burst. The server (gateway, Ray and every
actor) is SIGKILLed in the middle of it - as soon as a swap is seen half-done in the store
(assets locked or cash moved, the offer not yet settled) once a random number of accepts
were answered, or at the end of a short window - and restarted on the same data dir. Then:

- every offer whose accept was answered `settled`, or that the store held `accepted` (or
  `settled`) after the kill, ends `settled`; every other one is still `active`;
- each acknowledged accept, retried with its req_id, answers the same settled offer;
- in the store file: each asset has one owner, swapped for a settled offer and unchanged
  otherwise, and no lock left; each token chain has one transfer naming a settled offer
  (none for another) and verifies; the ledger is sound, money is conserved, each settled
  offer's cash leg was posted once (less the offer fee) and no other offer's ever; both
  parties were told of each settled swap.

The seed of the kill moment is printed in every assertion (set ECE_KILL_SEED to replay it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest

from market.ledger import entry_id_for
from market.provenance import verify_chain
from storage import open_store
from testkit.client import FUNDS, Api, User, unique, wait_for
from testkit.processes import crash
from testkit.provenance import outsider_verifies

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow,
              pytest.mark.timeout(300)]

FEE_BPS = 250  # the offer fee: every cash leg has three postings
ENV = {"ECE_OFFER_FEE_BPS": str(FEE_BPS)}
USERS, OFFERS = 6, 30
BURST_CONCURRENCY = 6  # accepts in flight at once: the burst's answers come in waves
MAX_ACKS_BEFORE_KILL = 20  # the kill waits for a random 0..this many answered accepts
KILL_WINDOW_S = 3.0  # ... then for a half-done swap in the store, at most this long
FINAL_WAIT_S = 60  # an offer the restarted server must finish, polled for
TOLD_WAIT_S = 30  # the notices of every change, once all offers are final
ACCEPT_TIMEOUT_S = 60


def fee(amount: int) -> int:
    return amount * FEE_BPS // 10_000


@dataclass
class Planned:
    index: int
    frm: int  # user indexes
    to: int
    give_cash: int
    want_cash: int
    give_asset: str = ""
    want_asset: str = ""
    offer_id: str = ""
    req_id: str = ""  # of the accept
    answer: str | None = None  # "settled", "<status> <body>" or "lost: <error>"

    def cash_leg(self) -> tuple[int, int, int] | None:
        """(payer, receiver, cents), as user indexes."""
        if self.give_cash:
            return self.frm, self.to, self.give_cash
        if self.want_cash:
            return self.to, self.frm, self.want_cash
        return None


def plan() -> list[Planned]:
    offers = []
    for k in range(OFFERS):
        frm = k % USERS
        to = (frm + 1 + (k // USERS) % (USERS - 1)) % USERS  # never frm
        give_cash = 1_000 + 37 * k if k % 3 == 0 else 0
        want_cash = 2_000 + 41 * k if k % 3 == 1 else 0
        offers.append(Planned(k, frm, to, give_cash, want_cash))
    return offers


# ---- the store file, read-only while servers come and go ---------------------------------

_HALF_DONE = (
    # accepted, and its swap started (assets locked or cash moved) but not finished
    "SELECT o.offer_id FROM offers o WHERE o.status='accepted' AND ("
    " EXISTS (SELECT 1 FROM assets a WHERE a.listed_in='offer:'||o.offer_id)"
    " OR EXISTS (SELECT 1 FROM entries e WHERE e.cause='offer' AND e.cause_key=o.offer_id))"
)


@dataclass(frozen=True)
class Peek:
    statuses: dict[str, str]  # offer id -> status
    half_done: frozenset[str]
    untold: int  # offers whose latest change's notices are not all stored

    def count(self) -> dict[str, int]:
        return {**Counter(self.statuses.values()), "half_done": len(self.half_done),
                "untold": self.untold}

    def __str__(self) -> str:
        return str(self.count())


def peek(db_path: Path) -> Peek | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            return Peek(dict(db.execute("SELECT offer_id, status FROM offers").fetchall()),
                        frozenset(r[0] for r in db.execute(_HALF_DONE)),
                        db.execute("SELECT count(*) FROM offers WHERE told_seq < seq")
                        .fetchone()[0])
    except sqlite3.Error:
        return None


# ---- the test ------------------------------------------------------------------------------


async def test_sigkill_during_a_burst_of_accepts_swaps_each_offer_once(start_server, tmp_path):
    seed = int(os.environ.get("ECE_KILL_SEED") or time.time_ns() % 2**32)
    rng = random.Random(seed)
    story: list[str] = [f"seed {seed} (ECE_KILL_SEED={seed} replays the kill moment)"]

    def why(extra: str = "") -> str:
        return "\n".join([extra, *story])

    db_path = tmp_path / "data" / "ece.db"
    offers = plan()
    started = time.monotonic()

    def clock() -> str:
        return f"+{time.monotonic() - started:.2f}s"

    # ---- set up: users, two cards per offer, the offers
    server = start_server(**ENV)
    story.append(f"server 0 ready in {server.ready_s:.1f}s")
    async with aiohttp.ClientSession() as http:
        api = Api(server.base, http)
        users: list[User] = list(await asyncio.gather(*(api.signup(f"u{i}-")
                                                        for i in range(USERS))))
        gate = asyncio.Semaphore(8)

        async def make(p: Planned) -> None:
            async with gate:
                frm, to = users[p.frm], users[p.to]
                p.give_asset = (await api.mint(frm, f"Give {p.index}"))["asset_id"]
                p.want_asset = (await api.mint(to, f"Want {p.index}"))["asset_id"]
                made = await api.expect(201, "POST", "/api/offers", frm, json={
                    "to_id": to.user_id, "req_id": unique("o"),
                    "give": {"assets": [p.give_asset], "cash": p.give_cash},
                    "want": {"assets": [p.want_asset], "cash": p.want_cash}})
                assert made["status"] == "active", made
                p.offer_id, p.req_id = made["offer_id"], unique("acc")

        await asyncio.gather(*(make(p) for p in offers))
        balances_before = {i: await api.balance(u) for i, u in enumerate(users)}
        assert balances_before == dict.fromkeys(range(USERS), FUNDS), why()
        story.append(f"set up at {clock()}: {peek(db_path)}")

        # ---- the burst, and a SIGKILL in the middle of it
        answered = 0
        start = asyncio.Event()
        in_flight = asyncio.Semaphore(BURST_CONCURRENCY)

        async def accept(p: Planned) -> None:
            await start.wait()
            async with in_flight:
                await answer(p)

        async def answer(p: Planned) -> None:
            nonlocal answered
            try:
                status, body = await api.request(
                    "POST", f"/api/offers/{p.offer_id}/accept", users[p.to],
                    json={"req_id": p.req_id},
                    timeout=aiohttp.ClientTimeout(total=ACCEPT_TIMEOUT_S))
            except (aiohttp.ClientError, TimeoutError) as exc:
                p.answer = f"lost: {exc!r}"
                return
            answered += 1
            p.answer = ("settled" if status == 200 and body.get("status") == "settled"
                        else f"{status} {body}")

        burst = [asyncio.ensure_future(accept(p)) for p in offers]
        min_acks = rng.randint(0, MAX_ACKS_BEFORE_KILL)
        known = server.descendants()
        await asyncio.sleep(0)
        start.set()
        burst_start = time.monotonic()
        window_end = None
        state = None
        while not all(t.done() for t in burst):
            if answered >= min_acks:
                window_end = window_end or time.monotonic() + KILL_WINDOW_S
                state = peek(db_path)
                if (state is not None and state.half_done) or time.monotonic() > window_end:
                    break
            await asyncio.sleep(0.001)
        answered_at_kill, into_burst = answered, time.monotonic() - burst_start
        killed = crash(server, known)
        seen = ("a half-done swap seen" if state is not None and state.half_done
                else "end of window or burst")
        after = peek(db_path)
        story.append(f"kill at {clock()}, {into_burst:.3f}s into the burst, {answered_at_kill}"
                     f" accepts answered (waited for {min_acks}); {seen}: {state};"
                     f" store after: {after}")
        alive = [proc for proc in killed if proc.is_running()
                 and proc.status() != psutil.STATUS_ZOMBIE]
        await asyncio.gather(*burst)
        assert not alive, why(f"the killed server lives on: {alive}")
        assert after is not None and peek(db_path) == after, why(
            f"the store changed after the kill: {peek(db_path)}")
        acked = {p.offer_id for p in offers if p.answer == "settled"}
        story.append("answers: " + str(Counter(
            (p.answer or "none").split(":")[0].split(" ")[0] for p in offers)))
        odd = [p.answer for p in offers if p.answer != "settled"
               and not (p.answer or "").startswith("lost")]
        assert not odd, why(f"accepts answered other than settled: {odd}")
        must_settle = acked | {o for o, s in after.statuses.items() if s in ("accepted",
                                                                               "settled")}
        assert answered_at_kill < len(offers), why("the kill must land in the burst")
        story.append(f"{len(acked)} acknowledged, {len(must_settle)} must settle;"
                     f" in flight at the kill: {len(offers) - answered_at_kill}")

    # ---- restart on the same data dir: every accepted offer ends settled, once
    server = start_server(**ENV)
    story.append(f"server 1 ready in {server.ready_s:.1f}s at {clock()}: {peek(db_path)}")
    async with aiohttp.ClientSession() as http:
        api = Api(server.base, http)
        finals: dict[str, dict] = {}
        for p in offers:
            async def ended(p: Planned = p) -> dict | None:
                body = await api.expect(200, "GET", f"/api/offers/{p.offer_id}", users[p.frm])
                return body if body["status"] != "accepted" else None

            try:
                finals[p.offer_id] = await wait_for(ended, timeout=FINAL_WAIT_S, interval=0.1,
                                                    message=f"offer #{p.index} to end")
            except AssertionError as exc:
                raise AssertionError(why(f"{exc}: {peek(db_path)}\n{server.log_tail()}")) \
                    from None
        for p in offers:
            status = finals[p.offer_id]["status"]
            expected = "settled" if p.offer_id in must_settle else "active"
            assert status == expected, why(
                f"offer #{p.index} {p.offer_id} is {status}, expected {expected}"
                f" (answer {p.answer})")
        story.append(f"all final at {clock()}: {peek(db_path)}")
        # A retried acknowledged accept answers the same settled offer.
        for p in offers:
            if p.offer_id in acked:
                again = await api.expect(200, "POST", f"/api/offers/{p.offer_id}/accept",
                                         users[p.to], json={"req_id": p.req_id})
                assert again == finals[p.offer_id], why(f"offer #{p.index}: retry {again}")
        key = (await api.expect(200, "GET", "/api/tokens/key"))["public_key"]
        try:
            await wait_for(lambda: (s := peek(db_path)) is not None and s.untold == 0,
                           timeout=TOLD_WAIT_S, interval=0.2,
                           message="every offer's notices stored")
        except AssertionError as exc:
            raise AssertionError(why(f"{exc}: {peek(db_path)}")) from None
    assert server.stop() == 0, why(server.log_tail())

    # ---- the store file, checked directly
    store = open_store(f"sqlite:///{db_path}")
    await store.open()
    try:
        await check_store(store, offers, users, must_settle, key, why)
    finally:
        await store.close()
    print("\n".join(story))  # with -s: where the kill landed


async def check_store(store, offers: list[Planned], users: list[User], must_settle: set[str],
                      key: str, why) -> None:
    paid: Counter[int] = Counter()
    got: Counter[int] = Counter()
    fees_total = 0
    entries_of: defaultdict[int, set[str]] = defaultdict(set)
    for p in offers:
        where = f"offer #{p.index} {p.offer_id}"
        record = await store.get_offer(p.offer_id)
        assert record is not None, why(where)
        settled = p.offer_id in must_settle
        assert record["status"] == ("settled" if settled else "active"), why(f"{where}: {record}")
        frm, to = users[p.frm].user_id, users[p.to].user_id

        # ---- the cards: one owner each, swapped exactly when settled, no lock left
        for asset_id, owner, new_owner in ((p.give_asset, frm, to), (p.want_asset, to, frm)):
            asset = await store.get_asset(asset_id)
            assert asset is not None, why(where)
            assert asset["owner_id"] == (new_owner if settled else owner), why(
                f"{where}: {asset}")
            assert asset.get("listed_in") is None, why(f"{where}: {asset}")
            token_id = asset["token_id"]
            chain = await store.load_provenance(token_id)
            assert chain, why(f"{where}: no chain for {asset_id}")
            assert chain[-1]["to"] == asset["owner_id"], why(f"{where}: {chain[-1]}")
            assert outsider_verifies(token_id, chain, key), why(f"{where}: does not verify")
            assert verify_chain(token_id, chain, key) == [], why(where)
            mine = [(r["kind"], r["from"], r["to"], r["reason"]) for r in chain
                    if r.get("ref") == p.offer_id]
            assert mine == ([("transfer", owner, new_owner, "offer")] if settled else []), why(
                f"{where}: the records naming it on {asset_id}: {chain}")
            assert [r["kind"] for r in chain] == (["mint", "transfer"] if settled
                                                  else ["mint"]), why(f"{where}: {chain}")

        # ---- the cash leg: one entry when settled, none otherwise
        entry = await store.get_entry(entry_id_for("offer", p.offer_id))
        leg = p.cash_leg()
        if settled and leg is not None:
            payer, receiver, cash = leg
            assert entry is not None, why(f"{where}: settled without its cash entry")
            assert dict(map(tuple, entry["postings"])) == {
                f"user:{users[payer].user_id}": -cash,
                f"user:{users[receiver].user_id}": cash - fee(cash),
                "fees": fee(cash)}, why(f"{where}: {entry}")
            paid[payer] += cash
            got[receiver] += cash - fee(cash)
            fees_total += fee(cash)
            entries_of[payer].add(entry["entry_id"])
            entries_of[receiver].add(entry["entry_id"])
        else:
            assert entry is None, why(f"{where}: cash moved for a {record['status']} offer")

    # ---- money: sound, conserved, and each settled leg once
    assert await store.check_ledger() == [], why()
    balances = {i: (await store.get_account(f"user:{u.user_id}"))["balance"]
                for i, u in enumerate(users)}
    fees_account = (await store.get_account("fees"))["balance"]
    external = (await store.get_account("external"))["balance"]
    assert sum(balances.values()) + fees_account + external == 0, why(f"{balances}")
    expected = {i: FUNDS - paid[i] + got[i] for i in range(USERS)}
    assert balances == expected, why(f"balances {balances} != expected {expected}")
    assert fees_account == fees_total and external == -FUNDS * USERS, why(
        f"fees {fees_account} (expected {fees_total}), external {external}")
    for i, u in enumerate(users):
        postings = await store.list_postings(f"user:{u.user_id}", limit=1000)
        assert len(postings) == len({p["entry_id"] for p in postings}), why(f"user {i}")
        assert {p["entry_id"] for p in postings if p["cause"] == "offer"} == entries_of[i], why(
            f"user {i}'s offer postings")
        assert sum(1 for p in postings if p["cause"] == "deposit") == 1, why(f"user {i}")

    # ---- notices: both parties told of each settled swap, each card's move once
    wrong: list[str] = []
    for i, u in enumerate(users):
        notices = await store.load_notices(u.user_id, limit=10_000)
        assert [n["seq"] for n in notices] == list(range(1, len(notices) + 1)), why(f"user {i}")
        keys = Counter(n["key"] for n in notices)
        assert max(keys.values(), default=1) == 1, why(f"user {i}: duplicate notices")
        for p in offers:
            if u.user_id not in (users[p.frm].user_id, users[p.to].user_id):
                continue
            settled = p.offer_id in must_settle
            gets = p.want_asset if i == p.frm else p.give_asset
            gives = p.give_asset if i == p.frm else p.want_asset
            for kind, asset_id in (("transfer_in", gets), ("transfer_out", gives)):
                name = f"{kind}:{p.offer_id}:{asset_id}"
                if (name in keys) != settled:
                    state = "settled" if settled else "active"
                    wrong.append(f"user {i}: offer #{p.index} ({state})"
                                 f" {'lacks' if settled else 'has'} {kind}")
            told = [n for n in notices if n["key"].startswith(f"offer:{p.offer_id}:")
                    and n["data"]["status"] == "settled"]
            if len(told) != (1 if settled else 0):
                wrong.append(f"user {i}: offer #{p.index} settled notices {len(told)}")
    assert not wrong, why("notices (cards, cash and tokens all checked fine):\n  "
                          + "\n  ".join(wrong))
