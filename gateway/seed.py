"""Demo data and bots for `make run`: they use the public API like any other client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import secrets
import time
from pathlib import Path

import aiohttp

from gateway.catalog import card_record
from gateway.config import Settings
from gateway.history import CATALOG_SEED, COPIES, seed_history
from gateway.state import Gateway
from market.catalog import Grading
from market.catalog_demo import demo_catalog, demo_copies
from storage import Conflict, Store

log = logging.getLogger("ece.demo")

DEMO_USERS = ("alice", "bob", "carol")
DEMO_FILE = "demo-accounts.json"
DEMO_FUNDS = 500_000  # cents: each demo user's opening deposit ($5,000)
BOT_FUNDS = 5_000_000  # each bot's ($50,000)
LIVE_TARGET = 6


def demo_passwords(data_dir: Path, names: list[str]) -> dict[str, str]:
    """Random passwords for the demo accounts, made once per data dir and kept there (0600),
    so a restart signs in to the same accounts and no password is published anywhere."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DEMO_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in names if name not in known]
    if missing:
        known |= {name: secrets.token_urlsafe(12) for name in missing}
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(known, handle)
        os.replace(temp, path)
    return known


async def _account(
    http: aiohttp.ClientSession, base: str, username: str, password: str
) -> dict:
    body = {"username": username, "password": password}
    async with http.post(f"{base}api/users", json=body) as response:
        if response.status == 201:
            return await response.json()
    async with http.post(f"{base}api/sessions", json=body) as response:
        response.raise_for_status()
        return await response.json()


async def _fund(http: aiohttp.ClientSession, base: str, account: dict, cents: int) -> None:
    """A demo account's opening deposit: its req_id makes it happen once per data dir."""
    headers = {"Authorization": f"Bearer {account['token']}"}
    body = {"amount": cents, "req_id": "demo-opening-deposit"}
    async with http.post(f"{base}api/wallet/deposits", headers=headers, json=body) as response:
        if response.status != 201:
            log.warning("demo deposit for %s refused: %s", account.get("user_id"),
                        await response.text())


async def seed_catalog(store: Store) -> list[tuple[str, Grading]]:
    """Import the demo catalog into the store (an operator's import, not a client's mint:
    idempotent, no quota) and return the graded copies the demo sellers mint from it."""
    cards = demo_catalog(CATALOG_SEED)
    now = int(time.time() * 1000)
    for card in cards:
        with contextlib.suppress(Conflict):  # imported by an earlier run
            await store.create_card(card_record(card, now))
    return demo_copies(cards, CATALOG_SEED, COPIES)


async def _mint(http: aiohttp.ClientSession, base: str, headers: dict[str, str],
                copies: list[tuple[str, Grading]], index: int) -> dict:
    """A graded copy from the demo list; copies minted by an earlier run are skipped."""
    for offset in range(len(copies)):
        card_id, grading = copies[(index + offset * 7919) % len(copies)]
        body = {"card_id": card_id, **grading.to_dict()}
        async with http.post(f"{base}api/assets", headers=headers, json=body) as response:
            if response.status == 409:
                continue  # CERT_EXISTS: this copy exists already
            response.raise_for_status()
            return await response.json()
    raise RuntimeError("every demo copy is minted")


async def _list_card(http: aiohttp.ClientSession, base: str, seller: dict, index: int,
                     copies: list[tuple[str, Grading]]) -> None:
    headers = {"Authorization": f"Bearer {seller['token']}"}
    asset = await _mint(http, base, headers, copies, index)
    kind = ("english", "english", "english", "dutch", "sealed")[index % 5]
    body: dict = {"asset_id": asset["asset_id"], "type": kind,
                  "duration_ms": random.randint(4, 12) * 60_000}
    if kind == "english":
        body |= {"start_price": random.choice((500, 1000, 2500, 5000)), "soft_close_ms": 30_000}
        if index % 3 == 0:
            body["reserve_price"] = body["start_price"] * 4
        if index % 4 == 1:
            body["buy_now_price"] = body["start_price"] * 20
    elif kind == "dutch":
        body |= {"start_price": 20_000, "floor_price": 5_000, "step": 250, "step_ms": 5_000}
    else:
        body |= {"start_price": 1_000}
    async with http.post(f"{base}api/auctions", headers=headers, json=body) as response:
        if response.status != 201:
            log.warning("demo listing failed: %s", await response.text())


async def _keep_listings(http: aiohttp.ClientSession, base: str, sellers: list[dict],
                         copies: list[tuple[str, Grading]]) -> None:
    counter = itertools.count(int(time.time()) % 1000)
    while True:
        async with http.get(f"{base}api/auctions?status=live") as response:
            live = (await response.json())["auctions"]
        for _ in range(max(0, LIVE_TARGET - len(live))):
            index = next(counter)
            await _list_card(http, base, sellers[index % len(sellers)], index, copies)
        await asyncio.sleep(5)


async def _bot(http: aiohttp.ClientSession, base: str, name: str, password: str,
               sellers: set[str]) -> None:
    """Bids now and then on the demo sellers' English auctions (never a real user's), with a
    private maximum, like a patient human."""
    account = await _account(http, base, name, password)
    await _fund(http, base, account, BOT_FUNDS)
    ws_url = base.replace("http", "ws", 1) + f"ws?token={account['token']}"
    req = itertools.count()
    while True:
        try:
            async with http.ws_connect(ws_url) as ws:
                while True:
                    await asyncio.sleep(random.uniform(2.0, 6.0))
                    async with http.get(f"{base}api/auctions?status=live") as response:
                        live = [a for a in (await response.json())["auctions"]
                                if a["type"] == "english" and a["seller_id"] in sellers
                                and a["leader_id"] != account["user_id"]]
                    if not live:
                        continue
                    auction = random.choice(live)
                    amount = auction["min_bid"]
                    await ws.send_json({"op": "bid", "req_id": f"{name}-{next(req)}",
                                        "auction_id": auction["auction_id"], "amount": amount,
                                        "max_amount": amount + random.randint(0, 4) * 100})
                    await ws.receive(timeout=10)
        except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
            log.info("bot %s reconnecting: %s", name, exc)
            await asyncio.sleep(1)


async def seed_market(gateway: Gateway) -> None:
    """Two years of simulated sales for the charts, unless the feed has them already."""
    gateway.seeding = True
    try:
        added = await seed_history(gateway.store, gateway.settings.seed_sales)
        if added:
            log.info("demo: added %d simulated sales of market history", added)
    finally:
        gateway.seeding = False


async def run_demo(base: str, settings: Settings, gateway: Gateway) -> None:
    copies = await seed_catalog(gateway.store)
    await seed_market(gateway)
    bot_names = [f"bot{i + 1}" for i in range(settings.bots)]
    passwords = demo_passwords(settings.data_dir, [*DEMO_USERS, *bot_names])
    bots: list[asyncio.Task] = []
    async with aiohttp.ClientSession() as http:
        try:
            sellers = [await _account(http, base, name, passwords[name]) for name in DEMO_USERS]
            for seller in sellers:
                await _fund(http, base, seller, DEMO_FUNDS)
            demo_sellers = {seller["user_id"] for seller in sellers}
            bots = [asyncio.create_task(_bot(http, base, name, passwords[name], demo_sellers))
                    for name in bot_names]
            print("Demo accounts (username / password, kept in "
                  f"{settings.data_dir / DEMO_FILE}):", flush=True)
            for name in DEMO_USERS:
                print(f"  {name} / {passwords[name]}", flush=True)
            await _keep_listings(http, base, sellers, copies)
        except asyncio.CancelledError:
            for task in bots:
                task.cancel()
            raise
        except Exception:
            log.exception("demo data failed")
