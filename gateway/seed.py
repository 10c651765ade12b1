"""Demo data and bots for `make run`: they use the public API like any other client."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import secrets
import time
from pathlib import Path

import aiohttp

from gateway.config import Settings

log = logging.getLogger("ece.demo")

DEMO_USERS = ("alice", "bob", "carol")
DEMO_FILE = "demo-accounts.json"
CARDS = (
    ("Charizard Holo 1st Edition", "Base Set", "PSA 9"),
    ("Black Lotus", "Alpha", "BGS 8.5"),
    ("Michael Jordan Rookie", "Fleer 1986", "PSA 8"),
    ("Pikachu Illustrator", "Promo 1998", "PSA 7"),
    ("Blue-Eyes White Dragon", "LOB 1st", "PSA 10"),
    ("Mewtwo Holo", "Base Set", "PSA 10"),
    ("Mickey Mantle", "Topps 1952", "SGC 6"),
    ("Dark Magician", "SDY", "PSA 9"),
    ("Shining Charizard", "Neo Destiny", "CGC 9.5"),
    ("Lugia Holo", "Neo Genesis", "PSA 9"),
)
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


async def _list_card(http: aiohttp.ClientSession, base: str, seller: dict, index: int) -> None:
    headers = {"Authorization": f"Bearer {seller['token']}"}
    title, set_name, grade = CARDS[index % len(CARDS)]
    async with http.post(f"{base}api/assets", headers=headers,
                         json={"title": title, "set": set_name, "grade": grade}) as response:
        response.raise_for_status()
        asset = await response.json()
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


async def _keep_listings(http: aiohttp.ClientSession, base: str, sellers: list[dict]) -> None:
    counter = itertools.count(int(time.time()) % 1000)
    while True:
        async with http.get(f"{base}api/auctions?status=live") as response:
            live = (await response.json())["auctions"]
        for _ in range(max(0, LIVE_TARGET - len(live))):
            index = next(counter)
            await _list_card(http, base, sellers[index % len(sellers)], index)
        await asyncio.sleep(5)


async def _bot(http: aiohttp.ClientSession, base: str, name: str, password: str) -> None:
    """Bids now and then on English auctions, with a private maximum, like a patient human."""
    account = await _account(http, base, name, password)
    ws_url = base.replace("http", "ws", 1) + f"ws?token={account['token']}"
    req = itertools.count()
    while True:
        try:
            async with http.ws_connect(ws_url) as ws:
                while True:
                    await asyncio.sleep(random.uniform(2.0, 6.0))
                    async with http.get(f"{base}api/auctions?status=live") as response:
                        live = [a for a in (await response.json())["auctions"]
                                if a["type"] == "english" and a["seller_id"] != account["user_id"]
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


async def run_demo(base: str, settings: Settings) -> None:
    bot_names = [f"bot{i + 1}" for i in range(settings.bots)]
    passwords = demo_passwords(settings.data_dir, [*DEMO_USERS, *bot_names])
    bots: list[asyncio.Task] = []
    async with aiohttp.ClientSession() as http:
        try:
            sellers = [await _account(http, base, name, passwords[name]) for name in DEMO_USERS]
            bots = [asyncio.create_task(_bot(http, base, name, passwords[name]))
                    for name in bot_names]
            print("Demo accounts (username / password, kept in "
                  f"{settings.data_dir / DEMO_FILE}):", flush=True)
            for name in DEMO_USERS:
                print(f"  {name} / {passwords[name]}", flush=True)
            await _keep_listings(http, base, sellers)
        except asyncio.CancelledError:
            for task in bots:
                task.cancel()
            raise
        except Exception:
            log.exception("demo data failed")
