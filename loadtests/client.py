"""REST set-up the benchmark does before it measures: accounts, cards and auctions."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

PASSWORD = "bench-password-1"
# Unexpected answers met during set-up, reported by the bench: "503 POST auctions" -> bodies.
ANOMALIES: dict[str, list] = {}


class SetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Account:
    user_id: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Unavailable(SetupError):
    """A 503 answer: transient by the API's contract."""


async def _json(http: aiohttp.ClientSession, method: str, url: str, expect: int,
                retries: int = 4, **kwargs: Any) -> dict:
    for attempt in range(retries + 1):
        async with http.request(method, url, timeout=aiohttp.ClientTimeout(total=60),
                                **kwargs) as response:
            body = await response.json(content_type=None)
            if response.status == expect:
                return body
            path = url.rsplit("/api/", 1)[-1]
            if response.status != 503:
                raise SetupError(f"{method} {url} -> {response.status}: {body}")
            # 503 = host being placed / restarting: transient by contract, retry a little.
            ANOMALIES.setdefault(f"503 {method} {path}", []).append(body)
            if attempt == retries:
                raise Unavailable(f"{method} {url} -> 503 after {attempt} retries: {body}")
        await asyncio.sleep(0.2 * (attempt + 1))
    raise SetupError(f"{method} {url}: retries exhausted")


async def signup(http: aiohttp.ClientSession, base: str, prefix: str) -> Account:
    username = f"{prefix}{secrets.token_hex(4)}"
    body = await _json(http, "POST", f"{base}/api/users", 201,
                       json={"username": username, "password": PASSWORD})
    return Account(body["user_id"], username, body["token"])


async def signups(http: aiohttp.ClientSession, base: str, prefix: str, n: int) -> list[Account]:
    """`n` accounts at once (argon2 hashing runs in the server's threads)."""
    return list(await asyncio.gather(*(signup(http, base, f"{prefix}{i}-") for i in range(n))))


async def create_auction(http: aiohttp.ClientSession, base: str, seller: Account,
                         start_price: int = 100, duration_ms: int = 3_600_000) -> dict:
    """Mint a card and list it. A 503 on the listing is retried with a *new* card: after a
    503 the first card may already be held by the auction that failed (ASSET_LISTED)."""
    for attempt in range(3):
        asset = await _json(http, "POST", f"{base}/api/assets", 201, headers=seller.headers,
                            json={"title": "Bench Card"})
        try:
            return await _json(http, "POST", f"{base}/api/auctions", 201, retries=0,
                               headers=seller.headers,
                               json={"asset_id": asset["asset_id"], "start_price": start_price,
                                     "duration_ms": duration_ms, "soft_close_ms": 0})
        except Unavailable:
            if attempt == 2:
                raise
            await asyncio.sleep(0.5)
    raise SetupError("unreachable")


async def create_auctions(http: aiohttp.ClientSession, base: str, seller: Account, n: int,
                          concurrency: int = 16, deadline: float | None = None,
                          keep_going=None, errors: list[str] | None = None,
                          max_errors: int = 3) -> tuple[list[dict], float]:
    """Create up to `n` auctions with bounded concurrency; stop early at `deadline`
    (time.monotonic) or when `keep_going()` says no. Failures raise, unless `errors` is
    given: then they are collected there and creation stops after `max_errors`.
    Returns (views, seconds)."""
    views: list[dict] = []
    gate = asyncio.Semaphore(concurrency)
    stop = False
    started = time.monotonic()

    async def one() -> None:
        nonlocal stop
        async with gate:
            if stop:
                return
            if (deadline is not None and time.monotonic() > deadline) or (
                    keep_going is not None and not keep_going()):
                stop = True
                return
            try:
                views.append(await create_auction(http, base, seller))
            except SetupError as exc:
                if errors is None:
                    raise
                errors.append(str(exc))
                if len(errors) >= max_errors:
                    stop = True

    # Issue in chunks so a stop condition does not leave thousands of coroutines waiting.
    for first in range(0, n, concurrency * 4):
        if stop:
            break
        await asyncio.gather(*(one() for _ in range(min(concurrency * 4, n - first))))
    return views, time.monotonic() - started
