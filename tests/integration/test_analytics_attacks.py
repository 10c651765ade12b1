"""The analytics surface against a hostile client, on a real gateway with its analytics actor:
query parameters (history, values, index, movers, tape), the `card:`/`market` channels
(names, floods, many sockets, frames after a close, msgpack), the behaviour route's tokens
and a consumer too slow for the `market` channel.

Every refusal must be a clear 4xx (never a 500), change nothing and be cheap (refused before
any store read); the gateway's channel registry (`Channels._subs` / `_of`) must hold nothing
of a socket once it is gone.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import socket
import struct
import time
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import msgpack
import pytest
import pytest_asyncio
from yarl import URL

from gateway.ws import TRY_AGAIN_LATER, Connection
from storage.records import SaleRecord
from testkit.client import Api, Socket, User, connect, unique, wait_for
from tests.integration.conftest import Ece, gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "test-secret-of-at-least-thirty-two-bytes"  # conftest.make_settings'
PRICES = (10_000, 11_000, 12_000)  # three offer sales of one card, to three buyers
# Calls of the store the analytics routes read with: a refused query makes none of them.
READS = ("get_card", "scan_projection", "get_projection_doc", "get_projection_docs")
KINDS = ("sale", "candle", "segment", "index", "movers", "market", "behaviour",
         "behaviour_market")


# --- the shared instance: one card with three clean sales ------------------------------------

@dataclass
class Market:
    ece: Ece
    card_id: str
    seller: User
    sales: list[dict]  # the card's PSA 9 sales, newest first

    @property
    def api(self) -> Api:
        return self.ece.api


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def market(ray_cluster, tmp_path_factory) -> AsyncIterator[Market]:
    async with gateway_with(tmp_path_factory.mktemp("attacks"), analytics=True) as ece:
        api = ece.api
        seller = await api.signup("sel")
        card = await api.expect(201, "POST", "/api/cards", seller, json={
            "name": unique("Charizard"), "set": "Base Set", "number": "4/102",
            "year": 1999, "category": "pokemon"})
        card_id = card["card_id"]
        for price in PRICES:  # a buyer each: no two accounts trade twice (no `linked`)
            buyer = await api.signup("buy")
            asset = await api.expect(201, "POST", "/api/assets", seller, json={
                "card_id": card_id, "grader": "PSA", "grade": 9,
                "cert": unique("c").replace("_", "")[-12:]})
            made = await api.expect(201, "POST", "/api/offers", buyer, json={
                "to_id": seller.user_id, "give": {"cash": price},
                "want": {"assets": [asset["asset_id"]]}, "req_id": unique("o")})
            done = await api.expect(200, "POST", f"/api/offers/{made['offer_id']}/accept",
                                    seller, json={"req_id": unique("a")})
            assert done["status"] == "settled", done

        async def folded() -> list[dict] | None:
            page = await api.expect(200, "GET",
                                    f"/api/cards/{card_id}/history?grader=PSA&grade=9")
            return page["sales"] if len(page["sales"]) == len(PRICES) else None

        sales = await wait_for(folded, timeout=30, message="the three sales in the history")
        assert not any(s["suspect"] for s in sales), sales
        store = ece.gateway.store
        head = await store.sales_position()

        async def every_projection_folded() -> bool:  # and recomputed: a quiet store
            summary = await store.get_projection_doc("market", "summary") or {}
            return summary.get("sales_total") == head and all(
                [await store.projection_checkpoint(n) == head for n in ("prices.0", "market")])

        await wait_for(every_projection_folded, timeout=30, message="every projection folded")
        yield Market(ece, card_id, seller, sales)


async def snapshot(m: Market) -> dict[str, Any]:
    """What a refused request must not change: the store's analytics state and the routes."""
    store = m.ece.gateway.store
    api = m.api
    return {
        "sales": await store.sales_position(),
        "closings": await store.closings_position(),
        "log": await store.analytics_log_position(),
        "docs": {k: await store.count_projection(k) for k in KINDS},
        "checkpoints": {n: await store.projection_checkpoint(n)
                        for n in ("prices.0", "market", "behaviour.0")},
        "history": await api.expect(200, "GET",
                                    f"/api/cards/{m.card_id}/history?grader=PSA&grade=9"),
        "values": await api.expect(200, "GET", f"/api/cards/{m.card_id}/values"),
        "tape": await api.expect(200, "GET", "/api/market/sales"),
    }


@contextlib.contextmanager
def counting_reads(ece: Ece) -> Any:
    """Count the analytics routes' store reads while the block runs (the gateway runs in
    this process: its store's methods are wrapped on the instance, then restored)."""
    store = ece.gateway.store
    counts: collections.Counter[str] = collections.Counter()
    originals = {name: getattr(store, name) for name in READS}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await fn(*args, **kwargs)
        return counted

    for name, fn in originals.items():
        setattr(store, name, wrap(name, fn))
    try:
        yield counts
    finally:
        for name in READS:
            delattr(store, name)  # the class's method again


async def get_raw(ece: Ece, path_and_query: str, **kwargs: Any) -> tuple[int, Any]:
    """GET with the path and query sent exactly as written (percent escapes kept)."""
    async with ece.http.get(URL(ece.base + path_and_query, encoded=True), **kwargs) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except json.JSONDecodeError:
            return r.status, text


# --- REST: malformed queries ------------------------------------------------------------------

H = "/api/cards/{card}/history?grader=PSA&grade=9"
REFUSED = [
    # grades: not numbers, not finite, not halves, out of range, not text
    *(f"/api/cards/{{card}}/history?grader=PSA&grade={g}" for g in (
        "nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "0x9", "", "9.25", "0",
        "0.5", "10.5", "11", "-9", "9%00", "%00", "%ED%A0%80", "%FF", "9,5", "nine")),
    # graders
    *(f"/api/cards/{{card}}/history?grader={g}&grade=9" for g in (
        "XYZ", "P%00SA", "", "P%20SA", "%ED%A0%80", "PSA,BGS", "PSA%00")),
    "/api/cards/{card}/history?grade=9",
    "/api/cards/{card}/history?grader=PSA",
    "/api/cards/{card}/history",
    "/api/cards/{card}/history?grader=%20raw&grade=9",
    # from / to: signs, spaces, fractions, exponents, hex, non-ASCII digits, beyond 2**53 - 1
    *(f"{H}&{p}={v}" for p in ("from", "to") for v in (
        "-1", "-0", "1.5", "%2B5", "%205", "5%20", "1e3", "0x10", "", "%D9%A9", "%EF%BC%99",
        "9007199254740992", "99999999999999999999999", "1_000", "NaN", "inf")),
    f"{H}&from=10&to=5",
    f"{H}&from=9007199254740991&to=0",
    # limit
    *(f"{H}&limit={v}" for v in ("0", "201", "-1", "1e2", "abc", "", "%D9%A1", "50.0",
                                 "000000000000000000050", "18446744073709551617")),
    # interval
    *(f"{H}&interval={v}" for v in ("1h", "1D", "", "1d%00", "1w%20", "1mo")),
    # cursors that no page gives out
    *(f"{H}&cursor={c}" for c in (
        "x", "", "1700000000000%7C1", "1700000000000|000000000001%0A",
        "-700000000000|000000000001", "1700000000000%7C000000000001%7C1",
        "card_x%7CPSA%7C9%7C1700000000000%7C000000000001", "%00" * 26)),
    # card ids: not ids (NUL, '|' the key separator, non-ASCII, 65 chars, encoded slashes)
    *(f"/api/cards/{c}/history?grader=PSA&grade=9" for c in (
        "nope!", "card%7C1", "%C3%A9", "a" * 65, "card_x%00", "..%2F..%2Fhealthz",
        "%ED%A0%80", "card_x%20", "%2E%2E")),
    *(f"/api/cards/{c}/values" for c in (
        "nope!", "card%7C1", "%C3%A9", "a" * 65, "card_x%00", "..%2F..%2Fhealthz",
        "%ED%A0%80", "card_x%20")),
    # market index
    *(f"/api/market/index?segment={s}" for s in (
        "set:", "set:" + "a" * 81, "set:" + "b" * 7_000, "category:", "category:POKEMON",
        "category:pokemon%20", "MARKET", "market%20", "%20market", "", "planet:mars", "set",
        "category", "market:", "market%00")),
    *(f"/api/market/index?interval={i}" for i in ("1d", "1W", "", "1mo%00", "1y")),
    "/api/market/index?from=-1", "/api/market/index?from=5&to=4",
    "/api/market/index?to=9007199254740992", "/api/market/index?from=1e3",
    # movers and tape
    *(f"/api/market/movers?window={w}" for w in ("1y", "7D", "", "7d%00", "30")),
    *(f"/api/market/movers?limit={v}" for v in ("0", "51", "%2010", "-1", "1e1", "", "1.0")),
    *(f"/api/market/sales?limit={v}" for v in ("0", "51", "-0", "000000000000000000001",
                                               "1.0", "%D9%A1", "99999999999999999999999")),
]


async def test_malformed_queries_are_400_before_any_store_read(market):
    """Every case answers 400 INVALID with the error envelope, reads nothing from the store
    and changes nothing."""
    ece = market.ece
    before = await snapshot(market)
    wrong: list[tuple[str, int, Any, dict]] = []
    for template in REFUSED:
        path = template.replace("{card}", market.card_id)
        with counting_reads(ece) as reads:
            status, body = await get_raw(ece, path)
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        if (status, code) != (400, "INVALID") or sum(reads.values()):
            wrong.append((path[:120], status, str(body)[:160], dict(reads)))
    assert not wrong, "\n".join(map(str, wrong))
    assert await snapshot(market) == before


@pytest.mark.parametrize("path", [
    "/api/cards/card_none/history?grader=RAW",
    "/api/cards/card_none/history?grader=PSA&grade=9",
    "/api/cards/card_none/values",
    "/api/cards/" + "a" * 64 + "/values",
    "/api/market/index?segment=set:Nowhere",
    "/api/market/index?segment=set:%00",
    "/api/market/index?segment=set:%ED%A0%80",  # invalid UTF-8: decoded to U+FFFD
    "/api/market/index?segment=set:..%2F..%2F..",
    "/api/market/index?segment=set:" + "%E2%82%AC" * 80,  # 80 characters, 240 bytes
])
async def test_unknown_things_are_a_cheap_4xx(market, path):
    """Well-formed but unknown: a clear 4xx after at most a read or two."""
    with counting_reads(market.ece) as reads:
        status, body = await get_raw(market.ece, path)
    assert status in (400, 404), (path, status, body)
    assert body["error"]["code"] in ("INVALID", "CARD_NOT_FOUND", "INDEX_NOT_FOUND"), body
    assert sum(reads.values()) <= 2, dict(reads)


@pytest.mark.parametrize("path", [
    "/api/cards/" + "a" * 10_000 + "/history?grader=PSA&grade=9",
    "/api/cards/" + "a" * 10_000 + "/values",
    "/api/market/index?segment=set:" + "a" * 10_000,
    "/api/cards/{card}/history?grader=PSA&grade=9&cursor=" + "1" * 10_000,
])
async def test_huge_request_lines_are_4xx_not_500(market, path):
    """Beyond aiohttp's 8 KiB request line the parser answers 400 itself (a text body, not
    the JSON envelope: it never reaches the app); the server goes on serving."""
    status, _ = await get_raw(market.ece, path.replace("{card}", market.card_id))
    assert 400 <= status < 500, status
    assert (await market.api.request("GET", "/healthz"))[0] == 200


async def test_lenient_grade_spellings_resolve_to_the_canonical_segment(market):
    """`float()` takes " 9", "+9", "9e0", "1_0", "９" (full width) and Arabic-Indic digits,
    the grader any case and surrounding whitespace: each answer is a 400 or exactly the
    canonical segment's page, never another segment."""
    ece = market.ece
    canonical = await market.api.expect(
        200, "GET", f"/api/cards/{market.card_id}/history?grader=PSA&grade=9")
    for grade in ("9", "9.0", "%209", "9%20", "%2B9", "9e0", "90e-1", "09", "9.000000000001",
                  "%EF%BC%99", "%D9%A9", "%099"):
        status, body = await get_raw(
            ece, f"/api/cards/{market.card_id}/history?grader=psa&grade={grade}")
        assert status in (200, 400), (grade, status, body)
        if status == 200:
            assert body == canonical, grade
        else:
            assert body["error"]["code"] == "INVALID"
    for grader in ("psa", "Psa", "%20PSA%20", "PSA%0A%0D", "%09psa"):  # case and whitespace
        status, body = await get_raw(
            ece, f"/api/cards/{market.card_id}/history?grader={grader}&grade=9")
        assert (status, body) == (200, canonical), grader


async def test_repeated_parameters_are_answered_not_crashed(market):
    """A repeated parameter: the first one is read; whatever the others say, the answer is
    a 200 or a 400, never a 500."""
    ece = market.ece
    base = f"/api/cards/{market.card_id}/history?grader=PSA&grade=9"
    for extra in ("&limit=5&limit=abc", "&limit=abc&limit=5", "&grade=11", "&grader=XYZ",
                  "&interval=1d&interval=1h", "&from=1&from=-1", "&cursor=x&cursor=y"):
        status, body = await get_raw(ece, base + extra)
        assert status in (200, 400), (extra, status, body)
    for path in ("/api/market/index?segment=market&segment=planet:x",
                 "/api/market/movers?limit=5&limit=500", "/api/market/sales?limit=1&limit=0"):
        status, body = await get_raw(ece, path)
        assert status in (200, 400), (path, status, body)


async def test_history_windows_and_cursors_within_13_digits(market):
    """from/to/limit/cursor as a client pages: consistent pages, `to` exclusive, `from`
    inclusive, from == to an empty window."""
    api, card = market.api, market.card_id
    base = f"/api/cards/{card}/history?grader=PSA&grade=9"
    newest, middle, oldest = market.sales
    page = await api.expect(200, "GET", f"{base}&to={newest['at']}")
    assert page["sales"] == [middle, oldest]
    page = await api.expect(200, "GET", f"{base}&from={middle['at']}")
    assert page["sales"] == [newest, middle]
    page = await api.expect(200, "GET", f"{base}&from={middle['at']}&to={middle['at']}")
    assert page["sales"] == [] and page["cursor"] is None
    seen, cursor = [], None
    while True:
        page = await api.expect(200, "GET", f"{base}&limit=1"
                                + (f"&cursor={cursor}" if cursor else ""))
        seen += page["sales"]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == market.sales


# --- REST: bugs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("query, want", [("from=10000000000000", 0), ("to=10000000000000", 3)])
async def test_bounds_of_14_digits_are_compared_as_numbers(market, query, want):
    page = await market.api.expect(
        200, "GET", f"/api/cards/{market.card_id}/history?grader=PSA&grade=9&{query}")
    assert len(page["sales"]) == want, page["sales"]
    assert bool(page["candles"]) == bool(want), page["candles"]


async def test_a_forged_cursor_cannot_escape_to(market):
    newest = market.sales[0]
    status, page = await get_raw(
        market.ece, f"/api/cards/{market.card_id}/history?grader=PSA&grade=9"
        f"&to={newest['at']}&cursor=9999999999999%7C999999999999")
    assert status == 400 or all(s["at"] < newest["at"] for s in page["sales"]), page["sales"]


async def test_a_cursor_of_non_ascii_digits_is_400(market):
    forged = "%D9%A1" * 13 + "%7C" + "%D9%A1" * 12  # ١١١...|١١١...
    status, body = await get_raw(
        market.ece, f"/api/cards/{market.card_id}/history?grader=PSA&grade=9&cursor={forged}")
    assert (status, body.get("error", {}).get("code")) == (400, "INVALID"), (status, body)


@pytest.mark.parametrize("grade", ["9", "garbage", "nan"])
async def test_a_grade_for_raw_is_400(market, grade):
    status, body = await get_raw(
        market.ece, f"/api/cards/{market.card_id}/history?grader=RAW&grade={grade}")
    assert (status, body.get("error", {}).get("code")) == (400, "INVALID"), (status, body)


async def test_my_behaviour_names_me_even_before_any_bid(market):
    user = await market.api.signup("nobid", funds=0)
    body = await market.api.expect(200, "GET", "/api/analytics/me", user)
    assert body["user_id"] == user.user_id, body


# --- the behaviour route's tokens ---------------------------------------------------------------

def _token(claims: dict, key: str = SECRET, alg: str = "HS256", **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers or None)


def _none_token(claims: dict) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return (b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "."
            + b64(json.dumps(claims).encode()) + ".")


async def test_behaviour_route_refuses_forged_and_expired_tokens(market):
    api = market.api
    user = market.seller
    now = int(time.time())
    good = {"sub": user.user_id, "name": user.username, "iat": now, "exp": now + 3600}
    real = user.token
    head, payload, sig = real.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered["sub"] = "u_someone_else"
    forged_payload = base64.urlsafe_b64encode(
        json.dumps(tampered).encode()).rstrip(b"=").decode()
    with warnings.catch_warnings():  # the key is short for HS512: beside the point
        warnings.simplefilter("ignore")
        hs512 = _token(good, alg="HS512")
    tokens = {
        "other secret": _token(good, key="another-secret-of-at-least-thirty-two-bytes"),
        "alg none": _none_token(good),
        "HS512, right secret": hs512,
        "expired": _token({**good, "iat": now - 7200, "exp": now - 3600}),
        "expires now": _token({**good, "exp": now}),
        "exp a string": _token({**good, "exp": "tomorrow"}),
        "exp a float inf": _token({**good, "exp": 1e308 * 10}),
        "no exp": _token({"sub": user.user_id}),
        "no sub": _token({"exp": now + 3600}),
        "payload swapped": f"{head}.{forged_payload}.{sig}",
        "signature cut": real[:-4],
        "empty": "",
        "garbage": "a.b.c",
        "huge": "x" * 6_000,
        "two tokens": f"{real} {real}",
    }
    wrong = {}
    for what, token in tokens.items():
        status, body = await api.request("GET", "/api/analytics/me",
                                         headers={"Authorization": f"Bearer {token}"})
        if status != 401 or body["error"]["code"] != "UNAUTHORIZED":
            wrong[what] = (status, body)
    for headers in ({"Authorization": f"bearer {real}"}, {"Authorization": f"Basic {real}"},
                    {"Authorization": real}, {"X-Token": real}):
        status, body = await api.request("GET", "/api/analytics/me", headers=headers)
        if status != 401:
            wrong[str(headers)[:40]] = (status, body)
    status, _ = await api.request("GET", f"/api/analytics/me?token={real}")
    if status != 401:
        wrong["query token"] = status
    assert not wrong, wrong
    mine = await api.expect(200, "GET", "/api/analytics/me", user)  # the real one works
    assert mine["bids"] == 0


# --- the channels -------------------------------------------------------------------------------

def registry(ece: Ece) -> tuple[dict[str, set], dict[Any, set]]:
    channels = ece.gateway.channels
    return channels._subs, channels._of


def assert_consistent(ece: Ece) -> None:
    """Both indexes of Channels say the same, no socket follows more than 20 channels and
    every subscriber is an open socket of this gateway."""
    subs, of = registry(ece)
    for channel, conns in subs.items():
        assert conns, f"empty subscriber set kept for {channel!r}"
        for conn in conns:
            assert channel in of.get(conn, set()), channel
            assert conn in ece.gateway.connections, "a gone socket is still subscribed"
    for conn, channels in of.items():
        assert len(channels) <= 20
        for channel in channels:
            assert conn in subs.get(channel, set()), channel


async def wait_registry_empty(ece: Ece) -> None:
    def empty() -> bool:
        subs, of = registry(ece)
        return not subs and not of and not ece.gateway.connections
    await wait_for(empty, timeout=15, message="no socket left in the channel registry")
    assert ece.gateway.channels.subscribers() == 0


async def new_conn(ece: Ece, before: set[Connection]) -> Connection:
    def found() -> Connection | None:
        fresh = ece.gateway.connections - before
        return next(iter(fresh)) if len(fresh) == 1 else None
    return await wait_for(found, timeout=10, message="the server side of the socket")


BAD_CHANNELS: list[Any] = [
    "card:" + "a" * 65, "market ", " market", "MARKET", "Market", "card:", "card", "card:a|b",
    "card:../x", "card:a/b", "card:é", "card:a\n", "card:a\x00", "market\x00", "", "cards:x",
    "card::x", "card:a b", 5, 0, -1, 1.5, False, True, [], ["market"], {"name": "market"}, {},
    {"channel": "market"}, [["market"]],
]


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_bad_channel_names_are_invalid_and_register_nothing(market, encoding):
    ece = market.ece
    sock = await connect(ece.http, ece.base, encoding=encoding)
    try:
        for i, channel in enumerate(BAD_CHANNELS):
            for op in ("subscribe", "unsubscribe"):
                answer = await sock.request({"op": op, "channel": channel, "req_id": f"{op}{i}"})
                assert (answer["op"], answer["code"]) == ("error", "INVALID"), (channel, answer)
        subs, of = registry(ece)
        assert not subs and all(not chans for chans in of.values()), (subs, of)
        # the edges that are channels: 64 characters, never-subscribed unsubscribes
        ok = await sock.request({"op": "subscribe", "channel": "card:" + "z" * 64})
        assert ok == {"op": "ack", "req_id": ok["req_id"], "channel": "card:" + "z" * 64}
        for channel in ("market", "card:never", "card:" + "z" * 64, "card:never"):
            ack = await sock.request({"op": "unsubscribe", "channel": channel})
            assert ack["op"] == "ack" and ack["channel"] == channel, ack
        assert_consistent(ece)
        assert not registry(ece)[0]
        anonymous_me = await sock.request({"op": "subscribe", "channel": "me"})
        assert anonymous_me["code"] == "UNAUTHORIZED"
    finally:
        await sock.close()
    await wait_registry_empty(ece)


async def test_msgpack_frames_with_channel_ops(market):
    """Analytics ops in msgpack: answered in msgpack; bytes, ext types and non-string keys
    are INVALID; a live sale reaches the socket in msgpack (its latest request's encoding)."""
    ece = market.ece
    ws = await ece.http.ws_connect(ece.base.replace("http", "ws", 1) + "/ws")
    frames: list[aiohttp.WSMessage] = []

    async def read() -> None:
        async for msg in ws:
            frames.append(msg)

    reader = asyncio.get_running_loop().create_task(read())

    def decoded() -> list[dict]:
        return [msgpack.unpackb(f.data, raw=False) for f in frames
                if f.type == aiohttp.WSMsgType.BINARY]

    async def answer(req_id: Any) -> dict:
        return await wait_for(lambda: next((m for m in decoded() if m.get("req_id") == req_id),
                                           None), timeout=10, message=f"answer {req_id}")

    try:
        bad: list[tuple[str, Any]] = [
            ("bytes", {"op": "subscribe", "channel": b"market"}),
            ("ext", {"op": "subscribe", "channel": msgpack.ExtType(1, b"market")}),
            ("bin in a list", {"op": "subscribe", "channel": [b"market"]}),
            ("map", {"op": "subscribe", "channel": {"market": 1}}),
            ("65", {"op": "unsubscribe", "channel": "card:" + "q" * 65}),
            ("bytes op", {"op": b"subscribe", "channel": "market"}),
        ]
        for req_id, message in bad:
            await ws.send_bytes(msgpack.packb({**message, "req_id": req_id}, use_bin_type=True))
            got = await answer(req_id)
            assert (got["op"], got["code"]) == ("error", "INVALID"), (req_id, got)
        garbage = [
            msgpack.packb({1: "x", "op": "subscribe", "channel": "market"}),  # int key
            msgpack.packb({"op": "subscribe", "channel": "market"}) + b"\x00",  # extra data
            b"\xc1",  # never used
            msgpack.packb([{"op": "subscribe", "channel": "market"}]),  # not a map
            b"\x91" * 40 + b"\x80",  # nested 40 deep
        ]
        for data in garbage:
            await ws.send_bytes(data)
        await ws.send_bytes(msgpack.packb({"op": "ping", "req_id": "after"}))
        await answer("after")
        invalid = [m for m in decoded() if m.get("code") == "INVALID" and "req_id" not in m]
        assert len(invalid) == len(garbage), decoded()
        assert not registry(ece)[0]

        owner = await market.api.signup("mp", funds=0)
        made = await market.api.expect(201, "POST", "/api/cards", owner, json={
            "name": unique("Mew"), "set": "Promo", "number": "8", "year": 2000,
            "category": "pokemon"})
        card = f"card:{made['card_id']}"
        for req_id, channel in (("m", "market"), ("c", card)):
            await ws.send_bytes(msgpack.packb({"op": "subscribe", "channel": channel,
                                               "req_id": req_id}))
            assert await answer(req_id) == {"op": "ack", "req_id": req_id, "channel": channel}
        # a live external sale of the card (the store's add_sales, as imports do)
        now = int(time.time() * 1000)
        sale = external_sale(made["card_id"], 10_500, now)
        assert await ece.gateway.store.add_sales([sale]) == 1

        def pushed(channel: str) -> dict | None:
            return next((m for m in decoded() if m.get("op") == "event"
                         and m.get("channel") == channel and m.get("type") == "sale"
                         and m["sale"]["ref"] == sale["ref"]), None)

        on_card = await wait_for(lambda: pushed(card), timeout=30, message="sale on card:")
        on_market = await wait_for(lambda: pushed("market"), timeout=30,
                                   message="sale on market")
        assert on_card["sale"]["price"] == 10_500 and on_market["sale"]["name"]
        assert not [f for f in frames if f.type == aiohttp.WSMsgType.TEXT], "a text frame"
    finally:
        await ws.close()
        await reader
    await wait_registry_empty(ece)


def external_sale(card_id: str, price: int, at: int) -> SaleRecord:
    ref = unique("ext")
    return SaleRecord(key=f"external:{ref}", card_id=card_id, grader="PSA", grade=9,
                      price=price, at=at, source="external", ref=ref, seller_id=None,
                      buyer_id=None)


async def test_a_subscribe_flood_leaves_a_bounded_consistent_registry(market):
    """Thousands of subscribe/unsubscribe frames sent at once without waiting: the socket
    is answered (acks, RATE_LIMITED, OVERLOADED past 20 channels) or cut with 1013 for
    not reading its answers fast enough; either way it never follows more than 20 channels,
    both indexes of the registry agree, and nothing of it is left once it is gone."""
    ece = market.ece
    before = set(ece.gateway.connections)
    sock = await connect(ece.http, ece.base)
    conn = await new_conn(ece, before)
    frames = []
    for i in range(4_000):
        channel = "market" if i % 7 == 0 else f"card:flood{i % 45}"
        frames.append(json.dumps({"op": "subscribe" if i % 3 else "unsubscribe",
                                  "channel": channel, "req_id": i}))
    for frame in frames:
        await sock.ws.send_str(frame)
    # One answer a frame (pushes on `market` are no answers); the frame limiter refuses most.
    await wait_for(lambda: sock.closed_code is not None or sum(
        1 for m in sock.messages if m["op"] != "event") >= len(frames), timeout=30,
        message="the flood's end")
    codes = collections.Counter(m.get("code") for m in sock.messages if m["op"] == "error")
    assert set(codes) <= {"RATE_LIMITED", "OVERLOADED"}, codes
    assert sock.closed_code in (None, TRY_AGAIN_LATER), sock.closed_code
    assert len(registry(ece)[1].get(conn, ())) <= 20
    assert_consistent(ece)
    await sock.close()
    await wait_registry_empty(ece)


async def test_paced_subscribe_churn_is_answered_in_full(market):
    """2,000 subscribe/unsubscribe frames in paced rounds (each round's answers read before
    the next): every frame is answered, the socket stays open, and after the last round
    it follows exactly what its last answered requests say."""
    ece = market.ece
    before = set(ece.gateway.connections)
    sock = await connect(ece.http, ece.base)
    conn = await new_conn(ece, before)
    sent = 0

    def answers() -> list[dict]:  # live pushes on `market` (index, movers) are no answers
        return [m for m in sock.messages if m["op"] != "event"]

    for round_ in range(20):
        for i in range(100):
            n = round_ * 100 + i  # 31 channels (beyond the 20 allowed), on and off in turn
            await sock.send({"op": "subscribe" if (n // 31) % 2 == 0 else "unsubscribe",
                             "channel": f"card:p{n % 31}" if n % 31 else "market",
                             "req_id": n})
        await sock.send({"op": "ping", "req_id": f"round{round_}"})
        sent += 101
        await wait_for(lambda s=sent: len(answers()) >= s, timeout=20,
                       message="one answer to every frame")
    assert sock.closed_code is None
    assert len(answers()) == sent
    codes = collections.Counter((m["op"], m.get("code")) for m in answers())
    assert set(codes) <= {("ack", None), ("pong", None), ("error", "RATE_LIMITED"),
                          ("error", "OVERLOADED")}, codes
    followed = registry(ece)[1].get(conn, set())
    acked: dict[str, bool] = {}
    for m in answers():
        if m["op"] == "ack" and isinstance(m.get("req_id"), int):
            acked[m["channel"]] = (m["req_id"] // 31) % 2 == 0
    assert followed == {c for c, on in acked.items() if on}
    assert_consistent(ece)
    await sock.close()
    await wait_registry_empty(ece)


async def test_many_sockets_gone_gracefully_or_abruptly_leave_nothing(market):
    """80 sockets (27 signed in as one user) each follow `market` and 19 card channels, some shared;
    half close cleanly, half drop their TCP connection without a close frame."""
    ece = market.ece
    user = await market.api.signup("many", funds=0)
    socks: list[Socket] = []
    for n in range(80):
        socks.append(await connect(ece.http, ece.base, user if n % 3 == 0 else None))
    for n, sock in enumerate(socks):
        channels = ["market", *(f"card:many{(n + k) % 25}" for k in range(19))]
        for channel in channels:
            await sock.send({"op": "subscribe", "channel": channel, "req_id": channel})
        over = await sock.request({"op": "subscribe", "channel": "card:one_too_many"})
        assert over["code"] == "OVERLOADED"
        last = channels[-1]
        await sock.expect(lambda m, last=last: m.get("req_id") == last)
        assert all(m["op"] == "ack" for m in sock.messages if m.get("req_id") in channels)
    subs, of = registry(ece)
    assert len(subs["market"]) == 80 and len(of) == 80
    assert sum(len(c) for c in of.values()) == 80 * 20 == ece.gateway.channels.subscribers()
    assert_consistent(ece)
    for n, sock in enumerate(socks):
        if n % 2:
            await sock.close()
        else:
            # no close frame: the server learns it from the TCP reset
            sock.ws._conn.transport.abort()
    await wait_registry_empty(ece)


# --- a raw WebSocket client: frames written byte by byte, reading when the test says ------------

class RawSocket:
    """A minimal RFC 6455 client over a plain TCP socket: exact frames out (even after a
    close frame), and nothing read until `read_frame` is called (with a small receive
    buffer, the peer's writes back up quickly)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str, rcvbuf: int | None = None) -> RawSocket:
        parts = urlsplit(base)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @staticmethod
    def frame(opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65_536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    @classmethod
    def text(cls, message: dict) -> bytes:
        return cls.frame(0x1, json.dumps(message).encode())

    @classmethod
    def close_frame(cls, code: int = 1000) -> bytes:
        return cls.frame(0x8, struct.pack("!H", code))

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def read_until_close(self) -> tuple[list[dict], int | None]:
        """Every data frame until the close frame (its code) or the end of the stream."""
        messages: list[dict] = []
        while True:
            try:
                opcode, payload = await self.read_frame()
            except (asyncio.IncompleteReadError, ConnectionError):
                return messages, None
            if opcode == 0x8:
                return messages, struct.unpack("!H", payload[:2])[0] if payload else None
            if opcode == 0x1:
                messages.append(json.loads(payload))

    def abort(self) -> None:
        self.writer.transport.abort()


async def test_frames_after_a_close_frame_subscribe_nothing(market):
    """subscribe, close, then subscribe again in one TCP write: the server stops reading at
    the close frame; nothing of the socket stays subscribed."""
    ece = market.ece
    raw = await RawSocket.open(ece.base)
    await raw.write(RawSocket.text({"op": "subscribe", "channel": "market", "req_id": "a"})
                    + RawSocket.close_frame()
                    + RawSocket.text({"op": "subscribe", "channel": "card:late", "req_id": "b"})
                    + RawSocket.text({"op": "subscribe", "channel": "market", "req_id": "c"}))
    messages, code = await asyncio.wait_for(raw.read_until_close(), 10)
    assert code == 1000
    assert [m.get("req_id") for m in messages] in ([], ["a"]), messages
    raw.abort()
    await wait_registry_empty(ece)
    assert "card:late" not in registry(ece)[0]


async def test_subscribes_racing_an_abrupt_disconnect_leave_nothing(market):
    """Sockets that send a burst of subscribes and drop the TCP connection at once, before
    reading anything: whatever the server read in between is undone when it notices."""
    ece = market.ece
    for _ in range(10):
        raws = [await RawSocket.open(ece.base) for _ in range(10)]
        for n, raw in enumerate(raws):
            burst = b"".join(RawSocket.text({"op": "subscribe", "channel": f"card:r{k}",
                                             "req_id": k}) for k in range(25))
            raw.writer.write(burst + (RawSocket.text({"op": "subscribe", "channel": "market"})
                                      if n % 2 else b""))
        for raw in raws:
            raw.abort()
        await wait_registry_empty(ece)


# --- a consumer too slow for `market` ------------------------------------------------------------

SLOW_QUEUE = 1_024  # ECE_SEND_QUEUE's default
BATCH = 250  # sales per add_sales: a price batch pushes at most 500 live messages


async def test_a_slow_market_consumer_is_cut_with_1013_and_forgotten(ray_cluster, tmp_path):
    """A socket following `market` and a card that reads nothing (its receive buffer 4 KiB)
    while live external sales arrive batch after batch (`Store.add_sales`): once its send
    queue (1,024 frames) is full it is cut with 1013, which it reads once it reads again;
    the server holds no more than the queue and about 64 KiB in the transport, queues
    nothing more for it afterwards, and keeps nothing of it subscribed. A socket that reads,
    on `market`, meanwhile receives every sale."""
    async with gateway_with(tmp_path, analytics=True) as ece:
        assert ece.settings.send_queue == SLOW_QUEUE
        api = ece.api
        owner = await api.signup("slow", funds=0)
        card = await api.expect(201, "POST", "/api/cards", owner, json={
            "name": unique("Pikachu"), "set": "Jungle", "number": "60/64", "year": 1999,
            "category": "pokemon"})
        card_id = card["card_id"]
        store = ece.gateway.store
        before = set(ece.gateway.connections)
        slow = await RawSocket.open(ece.base, rcvbuf=4096)
        await slow.write(RawSocket.text({"op": "subscribe", "channel": "market"})
                         + RawSocket.text({"op": "subscribe", "channel": f"card:{card_id}"}))
        conn = await new_conn(ece, before)
        await wait_for(lambda: len(registry(ece)[1].get(conn, ())) == 2, timeout=10,
                       message="the slow socket's two channels")
        reader = await connect(ece.http, ece.base)
        await reader.request({"op": "subscribe", "channel": "market"})

        now = int(time.time() * 1000)

        async def one_batch(batch: int) -> None:
            """BATCH live external sales, folded and delivered to the sockets."""
            sales = [external_sale(card_id, 10_000 + (i % 50), now - 60_000 + batch * BATCH + i)
                     for i in range(BATCH)]
            assert await store.add_sales(sales) == BATCH
            head = await store.sales_position()

            async def folded() -> bool:
                return await store.projection_checkpoint("prices.0") >= head

            await wait_for(folded, timeout=30, message="the batch folded")
            log_head = await store.analytics_log_position()
            await wait_for(lambda: ece.gateway.channels._cursor.pos >= log_head,
                           timeout=30, message="the batch delivered to the sockets")

        pushed = 0
        most_buffered = 0
        for batch in range(60):  # ~25 batches fill 1,024 frames plus the kernel's buffers
            await one_batch(batch)
            pushed += BATCH
            assert conn.queue.qsize() <= SLOW_QUEUE
            if conn.transport is not None and not conn.transport.is_closing():
                most_buffered = max(most_buffered, conn.transport.get_write_buffer_size())
            if conn.closing:
                break
        assert conn.closing, f"still open after {pushed} sales on market"

        assert most_buffered <= 1 << 20, most_buffered  # aiohttp drains at 64 KiB
        # Cut loose: more sales queue nothing more for it.
        queued = conn.queue.qsize()
        await one_batch(60)
        pushed += BATCH
        assert conn.queue.qsize() <= queued
        # The reader got every market sale so far (it keeps up).
        await wait_for(lambda: sum(1 for m in reader.messages if m.get("type") == "sale")
                       >= pushed, timeout=30, message="every sale on the reading socket")
        assert reader.closed_code is None

        messages, code = await asyncio.wait_for(slow.read_until_close(), 30)
        assert code == TRY_AGAIN_LATER, (code, len(messages))
        assert len(messages) <= 2 * pushed + 2
        slow.abort()
        await reader.close()
        await wait_registry_empty(ece)
