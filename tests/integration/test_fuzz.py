"""Hypothesis fuzzing of every REST route and every WebSocket op against a real `ece serve`.

One server (its own Ray and SQLite store) serves the whole module. A little real state is seeded
through the API so the fuzzer hits real ids as well as made-up ones. Properties:

* REST: never a 5xx; every 4xx under /api is `{"error": {"code", "message"}}`; a 429 carries
  `Retry-After`; a refused request (any 4xx) and every GET leave the store unchanged.
* WebSocket: the socket stays open (apart from the documented closes), every `error` has a
  documented code (never INTERNAL), every well-formed bid is answered, and the store is
  unchanged unless a bid was accepted.
* The server survives it all (`/healthz` is 200) and logs no traceback.

The store is compared through a read-only SQLite connection. Seeded auctions run for hours and
scheduled ones start in days, so time changes nothing; an auction the fuzzer itself creates with
a deadline within the hour is "volatile" and its time-driven fields are left out of the digest.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import struct
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import msgpack
import pytest
import requests
import websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.protocol import ProtocolError, decode, parse_bid, req_id_of
from gateway.rest import USERNAME
from testkit.processes import MANY_USERS, Managed, start_ece

SECRET = "fuzz-secret-0123456789abcdefghijklmnopqr"  # 40 chars
assert len(SECRET) == 40
PASSWORD = "Zq8-fuzzing-pass-77"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
TIMEOUT = 10
BID_ANSWER_S = 5.0
MAX_FRAME = 64 * 1024
WS_CODES = {"INVALID", "UNAUTHORIZED", "AUCTION_NOT_FOUND", "AUCTION_NOT_LIVE", "BID_TOO_LOW",
            "SELF_BID", "RATE_LIMITED", "OVERLOADED", "UNAVAILABLE", "LIMIT_EXCEEDED",
            "INSUFFICIENT_FUNDS"}
WS_OPS = {"pong", "ack", "error", "snapshot", "event"}
OPEN = ("scheduled", "live")
# The RFC 6455 close a server must send for a text frame that is not UTF-8.
CLOSE_INVALID_UTF8 = 1007
CLOSE_TOO_BIG = 1009

FUZZ_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large],
    "database": None,
}


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------
# The store, read-only


def visible(state: dict, volatile: set[str]) -> dict[str, Any]:
    """`state` without what time may change: volatile auctions, their cards, logs and trades."""
    auctions = state["auctions"]
    volatile_assets = {auctions[a][0] for a in volatile if a in auctions}
    return {
        "users": state["users"],
        "assets": {k: "volatile" if k in volatile_assets else v
                   for k, v in state["assets"].items()},
        "auctions": {k: "volatile" if k in volatile else v for k, v in auctions.items()},
        "events": {k: v for k, v in state["events"].items() if k not in volatile},
        "trades": {k: v for k, v in state["trades"].items()
                   if k not in volatile and v[0] not in volatile_assets},
    }


def read_state(db: Path, volatile: set[str]) -> dict[str, Any]:
    """Everything a request could change, in one read transaction. Adds to `volatile` every
    open auction whose next deadline (start or end) is within the hour."""
    horizon = now_ms() + HOUR_MS
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN")
        users = frozenset(conn.execute("SELECT user_id, username_key, password_hash FROM users"))
        assets = {row[0]: row[1:] for row in conn.execute(
            "SELECT asset_id, owner_id, listed_in, title, metadata FROM assets")}
        auctions = {}
        unsettled = set()
        for auction_id, asset_id, seller_id, status, seq, ends_at, spec, settled in conn.execute(
                "SELECT auction_id, asset_id, seller_id, status, seq, ends_at, spec, settled "
                "FROM auctions"):
            if status in OPEN:
                starts_at = json.loads(spec).get("starts_at") or 0
                deadline = starts_at if status == "scheduled" else ends_at
                if not isinstance(deadline, int) or deadline < horizon:
                    volatile.add(auction_id)
            elif not settled:
                unsettled.add(auction_id)  # finished; its settlement is still to come
            auctions[auction_id] = (asset_id, seller_id, status, seq, settled)
        events = {row[0]: row[1:] for row in conn.execute(
            "SELECT auction_id, COUNT(*), MAX(seq), SUM(LENGTH(data)) FROM events "
            "GROUP BY auction_id")}
        trades = {row[0]: row[1:] for row in conn.execute(
            "SELECT auction_id, asset_id, seller_id, buyer_id, data FROM trades")}
        accounts = frozenset(conn.execute("SELECT account, balance, version FROM accounts"))
        entries = frozenset(row[0] for row in conn.execute("SELECT entry_id FROM entries"))
        redeemed = frozenset(row[0] for row in conn.execute(
            "SELECT asset_id FROM assets WHERE redeemed=1"))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {"users": users, "assets": assets, "auctions": auctions, "events": events,
            "trades": trades, "unsettled": unsettled, "accounts": accounts, "entries": entries,
            "redeemed": redeemed}


def describe_change(before: dict, after: dict) -> str:
    lines = []
    for part, old in before.items():
        new = after[part]
        if old == new:
            continue
        if isinstance(old, dict):
            for key in sorted(set(old) | set(new), key=str):
                if old.get(key) != new.get(key):
                    lines.append(f"{part}[{key}]: {old.get(key)!r} -> {new.get(key)!r}")
        else:
            lines.append(f"{part}: -{sorted(old - new)} +{sorted(new - old)}")
    return "\n".join(lines[:20])


# ---------------------------------------------------------------------------------------------
# The server and its seeded state


class Fuzz:
    """The running server, its seeded ids and tokens, and the store baseline."""

    def __init__(self, server: Managed, db: Path, http: requests.Session) -> None:
        self.server, self.db, self.http = server, db, http
        self.users: list[dict] = []  # {user_id, username, token}
        self.assets: list[str] = []
        self.auctions: list[str] = []
        self.tokens: list[str] = []  # valid ones first, then bad ones
        self.token_identity: dict[str, str] = {}  # token -> the user id it signs in as
        self.sellers: dict[str, str] = {}  # auction id -> seller id
        self.volatile: set[str] = set()
        self.baseline: dict | None = None
        self.accepted = 0
        self.refused = 0
        self.outcomes: Counter[str] = Counter()  # what the fuzzer hit, printed at the end

    @property
    def base(self) -> str:
        return self.server.base

    def __repr__(self) -> str:
        return f"Fuzz({self.base})"

    def state(self) -> dict:
        return read_state(self.db, self.volatile)

    def rebaseline(self, settle: bool) -> None:
        """After an accepted request: wait until what it set off is done, then re-read."""
        current = self.state()
        if settle:  # until nothing changes for a moment and every finished auction is settled
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.15)
                again = self.state()
                if (visible(again, self.volatile) == visible(current, self.volatile)
                        and not again["unsettled"] - self.volatile):
                    break
                current = again
        self.baseline = current

    def assert_unchanged(self, what: str) -> None:
        assert self.baseline is not None
        after = self.state()
        # Auctions that turned volatile since the baseline are left out on both sides.
        before, after = visible(self.baseline, self.volatile), visible(after, self.volatile)
        if after != before:
            raise AssertionError(f"state changed by {what}:\n{describe_change(before, after)}")

    def api(self, method: str, path: str, user: int | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if user is not None:
            headers["Authorization"] = f"Bearer {self.users[user]['token']}"
        response = self.http.request(method, self.base + path, headers=headers,
                                     timeout=TIMEOUT, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json()


def _ws_url(base: str, query: str = "") -> str:
    return base.replace("http", "ws", 1) + "/ws" + query


def _recv(ws: websocket.WebSocket) -> tuple[int, Any]:
    """(opcode, decoded message); for a close, (OPCODE_CLOSE, close code). Raw frames, so a
    close is seen even when the server has already dropped the connection after it."""
    while True:
        frame = ws.recv_frame()
        opcode, data = frame.opcode, frame.data
        while not frame.fin:  # aiohttp does not fragment, but be correct
            frame = ws.recv_frame()
            data += frame.data
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return opcode, strict_json(data)
        if opcode == websocket.ABNF.OPCODE_BINARY:
            return opcode, msgpack.unpackb(data, raw=False, strict_map_key=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            return opcode, code
        if opcode == websocket.ABNF.OPCODE_PING:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.pong(data)


def _seed(fz: Fuzz) -> None:
    now = now_ms()
    for name in ("fuzz_alice", "fuzz_bob"):
        body = fz.api("POST", "/api/users", json={"username": name, "password": PASSWORD})
        fz.users.append(body)
        fz.api("POST", "/api/wallet/deposits", len(fz.users) - 1,
               json={"amount": 10**8, "req_id": "fuzz-funds"})
    alice, bob = 0, 1
    minted: dict[int, list[str]] = {alice: [], bob: []}
    for user, count in ((alice, 8), (bob, 4)):
        for n in range(count):
            asset = fz.api("POST", "/api/assets", user,
                           json={"title": f"Seed card {user}-{n}", "grade": "PSA 9"})
            minted[user].append(asset["asset_id"])
            fz.assets.append(asset["asset_id"])
    long = {"duration_ms": 3 * HOUR_MS}
    specs = [
        (alice, {"type": "english", "start_price": 1000, **long}),  # gets a bid below
        (alice, {"type": "english", "start_price": 500, "reserve_price": 5000,
                 "buy_now_price": 10**9, "increment": 100, **long}),
        (alice, {"type": "english", "start_price": 1000, "starts_at": now + 3 * DAY_MS,
                 "duration_ms": HOUR_MS}),
        (alice, {"type": "dutch", "start_price": 10**8, "floor_price": 10**7, "step": 1000,
                 "step_ms": 60_000, **long}),
        (alice, {"type": "sealed", "start_price": 100, "reserve_price": 1000, **long}),
        (bob, {"type": "english", "start_price": 200, **long}),
    ]
    for user, spec in specs:
        asset = minted[user].pop()
        view = fz.api("POST", "/api/auctions", user, json={"asset_id": asset, **spec})
        fz.auctions.append(view["auction_id"])
        fz.sellers[view["auction_id"]] = view["seller_id"]
    # A real bid, so the first auction cannot be cancelled (HAS_BIDS) and has history.
    ws = websocket.create_connection(
        _ws_url(fz.base), timeout=TIMEOUT,
        header=[f"Authorization: Bearer {fz.users[bob]['token']}"])
    try:
        ws.send(json.dumps({"op": "bid", "req_id": "seed-1", "auction_id": fz.auctions[0],
                            "amount": 1000}))
        while True:
            _, message = _recv(ws)
            if isinstance(message, dict) and message.get("req_id") == "seed-1":
                assert message["op"] == "ack", message
                break
    finally:
        ws.close()

    t = int(time.time())
    other = "another-secret-of-forty-characters-xxxxx"
    alice_id = fz.users[alice]["user_id"]
    fz.tokens = [
        fz.users[alice]["token"], fz.users[bob]["token"],  # valid (indices 0, 1)
        jwt.encode({"sub": alice_id, "exp": t - 5}, SECRET, algorithm="HS256"),  # expired
        jwt.encode({"sub": alice_id, "exp": t + 600}, other, algorithm="HS256"),  # forged
        jwt.encode({"sub": alice_id, "exp": t + 600}, "", algorithm="none"),  # unsigned
        jwt.encode({"sub": alice_id}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"exp": t + 600}, SECRET, algorithm="HS256"),  # no sub
        jwt.encode({"sub": 5, "exp": t + 600}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": alice_id, "exp": "soon"}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": alice_id, "exp": float("inf")}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": alice_id, "exp": float("nan")}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": alice_id, "exp": [1]}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": alice_id, "exp": 2**70}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "u_nobody_here", "exp": t + 600}, SECRET, algorithm="HS256"),
        "garbage", "", "a.b.c", "Bearer", "x" * 4000, fz.users[alice]["token"][:-3] + "AAA",
    ]
    # Who each token signs in as, by the server's own word (an `auth` op for each).
    ws = websocket.create_connection(_ws_url(fz.base), timeout=TIMEOUT)
    try:
        for n, token in enumerate(fz.tokens):
            ws.send(json.dumps({"op": "auth", "token": token, "req_id": n}))
            _, answer = _recv(ws)
            assert answer.get("req_id") == n, answer
            if answer["op"] == "ack":
                fz.token_identity[token] = answer["user_id"]
    finally:
        ws.close()
    assert fz.token_identity[fz.tokens[0]] == fz.users[alice]["user_id"]
    assert fz.token_identity[fz.tokens[1]] == fz.users[bob]["user_id"]


@pytest.fixture(scope="module")
def fz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    root = tmp_path_factory.mktemp("fuzz")
    data = root / "data"
    server = start_ece(root / "server-0.log",
                       {"ECE_DATA_DIR": str(data), "ECE_SECRET": SECRET, **MANY_USERS})
    try:
        server.wait_ready()
        with requests.Session() as http:
            state = Fuzz(server, data / "ece.db", http)
            _seed(state)
            state.rebaseline(settle=True)
            yield state
            print(f"\nfuzz: {state.accepted} accepted, {state.refused} refused; "
                  f"server log {server.log_path}")
            for outcome, count in sorted(state.outcomes.items()):
                print(f"  {count:4} {outcome}")
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Strategies. Real ids and tokens are drawn as `Ref`s, resolved against the seeded pools.


@dataclass(frozen=True)
class Ref:
    kind: str  # asset, auction, user, username, token
    index: int

    def resolve(self, fz: Fuzz) -> Any:
        if self.kind == "asset":
            return fz.assets[self.index % len(fz.assets)]
        if self.kind == "auction":
            return fz.auctions[self.index % len(fz.auctions)]
        if self.kind == "user":
            return fz.users[self.index % len(fz.users)]["user_id"]
        if self.kind == "username":
            name = fz.users[self.index % len(fz.users)]["username"]
            return name.upper() if self.index % 3 == 1 else name
        if self.kind == "token":
            return fz.tokens[self.index % len(fz.tokens)]
        raise AssertionError(self.kind)


def resolve(value: Any, fz: Fuzz) -> Any:
    if isinstance(value, Ref):
        return value.resolve(fz)
    if isinstance(value, dict):
        return {resolve(k, fz): resolve(v, fz) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, fz) for v in value]
    return value


def refs(kind: str) -> st.SearchStrategy[Ref]:
    return st.builds(Ref, st.just(kind), st.integers(0, 40))


def weighted(*options: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """A one_of with these weights. (Hypothesis's own one_of favours some branches heavily; a
    seeded Random picks the branch instead, still derandomized and reproducible.)"""

    @st.composite
    def pick(draw: st.DrawFn) -> Any:
        rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
        strategy = rnd.choices([s for _, s in options], [w for w, _ in options])[0]
        return draw(strategy)

    return pick()


SPECIAL_INTS = [0, 1, -1, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, -(2**70), 10**30, -(10**30)]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(SPECIAL_INTS),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=16,
)
amounts = st.one_of(
    st.integers(0, 2 * 10**6), st.integers(0, 2**53), st.sampled_from(SPECIAL_INTS),
    st.sampled_from([1.5, 1000.0, 1e300, True, False, "1000", "", None, [], {}, float("nan")]),
)
ids = st.one_of(
    refs("auction"), refs("asset"), refs("user"),
    st.sampled_from(["a_0000000000000000", "a" * 64, "a" * 65, "", " ", "..", "a/b", "ä",
                     "a_%2F", "0", "null", "-", "_"]),
    st.text(max_size=70), st.integers(), st.none(),
)
ZALGO = "a\u0300\u0301\u0302"
LONG_INT = "9" * 5000  # over Python's int-from-str limit (4,300 digits): a ValueError to parse
weird_strings = st.sampled_from(["", " ", "\x00", "null", "-1", "1e9", "NaN", "Infinity",
                                 "\u202e", "😀" * 10, ZALGO, "x" * 300])
strings = st.one_of(st.text(max_size=40), weird_strings)
timestamps = st.one_of(
    st.builds(lambda d: now_ms() + d, st.integers(-DAY_MS, 40 * DAY_MS)),
    st.sampled_from(SPECIAL_INTS), st.sampled_from([1.5, "tomorrow", None, True]),
)
durations = st.one_of(st.integers(-1, 31 * DAY_MS), st.sampled_from([0, 3 * HOUR_MS, 30 * DAY_MS,
                                                                    30 * DAY_MS + 1, 2**64]),
                      st.sampled_from([1.5, "1h", None, False]))


# --- REST


@dataclass(frozen=True)
class RestRequest:
    method: str
    path: Any  # a str or a tuple of segments (str | Ref)
    params: tuple = ()
    raw_query: str | None = None
    body: Any = None  # None, ("json", value), ("raw", bytes | str)
    content_type: str | None = None
    auth: Any = None  # None, Ref(token), or a raw header value


AUCTION_FIELDS = ["asset_id", "type", "start_price", "reserve_price", "buy_now_price",
                  "starts_at", "ends_at", "duration_ms", "soft_close_ms", "increment",
                  "floor_price", "step", "step_ms"]


@st.composite
def mutated(draw: st.DrawFn, template: dict, wrong: dict[str, st.SearchStrategy]) -> dict:
    """`template` (a valid body) with 0-2 of its fields removed or set from `wrong`."""
    body = dict(template)
    for _ in range(random.Random(draw(st.integers(0, 2**32 - 1))).choice([0, 1, 1, 2])):
        name = draw(st.sampled_from(sorted(wrong)))
        if name in body and draw(st.booleans()):
            del body[name]
        else:
            body[name] = draw(wrong[name])
    return body


@st.composite
def auction_bodies(draw: st.DrawFn) -> dict:
    """A valid-looking listing of a random card, with a few fields made wrong (or right)."""
    kind = draw(st.sampled_from(["english", "dutch", "sealed"]))
    body: dict[str, Any] = {"asset_id": draw(refs("asset")), "type": kind,
                            "start_price": draw(st.integers(0, 10**6)),
                            "duration_ms": 3 * HOUR_MS}
    if kind == "dutch":
        body |= {"floor_price": 0, "step": 10, "step_ms": 1000}
    wrong = {name: amounts for name in AUCTION_FIELDS}
    wrong |= {"asset_id": ids, "type": st.one_of(strings, scalars), "starts_at": timestamps,
              "ends_at": timestamps, "duration_ms": durations, "extra": json_values,
              "seller_id": refs("user"), "__proto__": json_values}
    return draw(mutated(body, wrong))


usernames = st.one_of(strings, scalars,
                      st.sampled_from(["ab", "x" * 33, "bad name", "ünïcode", "a" * 64]),
                      st.from_regex(USERNAME.pattern, fullmatch=True))
passwords = st.one_of(strings, scalars,
                      st.sampled_from(["short", "password123", "x" * 257, "y" * 256]))
credentials = st.builds(
    dict, username=refs("username"), password=st.sampled_from([PASSWORD, "Wr0ng-but-long"]),
).flatmap(lambda body: mutated(body, {"username": usernames, "password": passwords,
                                      "extra": json_values}))
asset_bodies = mutated({"title": "Fuzz card"}, {
    "title": st.one_of(strings, scalars, st.sampled_from([" ", "x" * 200, "y" * 201])),
    "owner_id": refs("user"), "asset_id": ids, "listed_in": refs("auction"),
    "created_at": scalars, "metadata": json_values,
    "blob": st.sampled_from(["z" * 4100, "z" * 10]),
})

money_bodies = mutated({"amount": 100, "req_id": "fuzz"}, {
    "amount": st.one_of(scalars, st.sampled_from([0, -1, 1, 2**53, 2**53 + 1, 10**12, 1.5])),
    "req_id": st.one_of(strings, scalars, st.sampled_from(["", "r" * 160, "r" * 161])),
})

ROUTES: list[tuple[str, tuple, Any]] = [
    # (method, path segments, body strategy for near-valid bodies)
    ("GET", ("healthz",), None),
    ("GET", ("metrics",), None),
    ("POST", ("api", "users"), credentials),
    ("POST", ("api", "sessions"), credentials),
    ("GET", ("api", "me"), None),
    ("POST", ("api", "assets"), asset_bodies),
    ("GET", ("api", "assets"), None),
    ("GET", ("api", "assets", "{asset}"), None),
    ("POST", ("api", "auctions"), auction_bodies()),
    ("GET", ("api", "auctions"), None),
    ("GET", ("api", "auctions", "{auction}"), None),
    ("GET", ("api", "auctions", "{auction}", "events"), None),
    ("POST", ("api", "auctions", "{auction}", "cancel"), None),
    ("GET", ("api", "trades"), None),
    ("GET", ("api", "wallet"), None),
    ("POST", ("api", "wallet", "deposits"), money_bodies),
    ("POST", ("api", "wallet", "withdrawals"), money_bodies),
    ("POST", ("api", "assets", "{asset}", "redeem"), None),
    ("GET", ("api", "second-chances"), None),
]
# Routes that change state are drawn more often; listing has the most rules, so most often.
WRITES = [i for i, route in enumerate(ROUTES) if route[0] == "POST"] + [
    i for i, route in enumerate(ROUTES) if route[:2] == ("POST", ("api", "auctions"))] * 3
UNKNOWN_PATHS = ["/api", "/api/", "/api/nope", "/api/users/x", "/api//users", "/api/assets/",
                 "/api/auctions/a/b/c", "/api/auctions//events", "/nope", "/ws/x",
                 "/static/../../etc/passwd", "/api/%00", "/api/auctions/%ff",
                 "/api/auctions/%2e%2e", "/api/assets/%2F", "/" + "a" * 3000]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
QUERY_KEYS = ["limit", "since", "status", "owner", "user", "asset_id", "token", "x"]
query_values = st.one_of(
    st.integers().map(str), st.sampled_from(SPECIAL_INTS).map(str),
    st.integers(10**29, 10**30 - 1).map(str),
    st.sampled_from(["", "me", "live", "scheduled", "closed", "cancelled", "LIVE", " 5", "+5",
                     "5.0", "0x10", "1e3", "١٢", "²", "-0", "0", "500", "501", "1",
                     str(2**53), str(2**53 + 1), "NaN", "%", "none"]),
    strings, refs("user"), refs("asset"), refs("auction"),
)
RAW_QUERIES = ["limit=%ff", "limit=%", "since=%00", "status=%E2%82", "limit", "=5", "&&",
               "limit=1&limit=0", "owner=%ff%fe", "user=me&user=x", "since=1&since=-1",
               "a=" + "b" * 5000]
valid_tokens = st.builds(Ref, st.just("token"), st.integers(0, 1))
auth_values = weighted(
    (45, valid_tokens), (20, st.none()), (20, refs("token")),
    (8, st.sampled_from(["Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer ", "bearer x",
                         "Bearer  ", "Token abc"])),
    # Field-value characters only: others are refused by the HTTP parser, before the app.
    (7, st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                       exclude_characters="\x7f"), max_size=60)
     .map(lambda s: "Bearer " + s)),
)
CONTENT_TYPES = ["application/json", "application/json; charset=bogus",
                 "application/json; charset=latin-1", "application/json; charset=utf-8",
                 "application/json; charset=UTF8", "application/json; charset=", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/msgpack"]


def deep(n: int, kind: str) -> str:
    if kind == "list":
        return "[" * n + "]" * n
    return '{"a":' * n + "1" + "}" * n


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '{"title": NaN}', '{"title": Infinity}',
                     '{"a": 1e999}', "{", "}", '{"a":1,}', "null", "[]", '""', "1", "true",
                     '{"title":"x"}\x00', "\ufeff{}", '{"title":"\\ud800"}',
                     '{"username":"a","username":"b"}', LONG_INT,
                     '{"title":"x","n":' + LONG_INT + "}", '{"title":"x","n":1e' + LONG_INT + "}"]),
    st.builds(deep, st.integers(5_000, 30_000), st.just("list")),
    st.builds(deep, st.integers(5_000, 10_000), st.just("dict")),
    st.builds(lambda n: '{"title": "' + "x" * n + '"}', st.integers(MAX_FRAME, MAX_FRAME + 9000)),
    st.builds(lambda n: b"\xff" * n, st.sampled_from([1, 70_000])),
)


@st.composite
def rest_requests(draw: st.DrawFn) -> RestRequest:
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    choice = rnd.choice([*range(len(ROUTES)), *WRITES, len(ROUTES), len(ROUTES) + 1])
    near = None
    if choice < len(ROUTES):
        method, template, near = ROUTES[choice]
        path: Any = tuple(
            draw(refs(seg[1:-1]) if rnd.random() < 0.7 else ids)
            if seg.startswith("{") else seg for seg in template)
        if rnd.random() < 0.08:  # a wrong method on a real route
            method = draw(st.sampled_from([m for m in METHODS if m != method]))
    elif choice == len(ROUTES):
        method, path = draw(st.sampled_from(METHODS)), draw(st.sampled_from(UNKNOWN_PATHS))
    else:
        method, path = draw(st.sampled_from(["GET", "POST"])), draw(st.sampled_from(
            ["/api/auctions", "/api/trades", "/api/assets"]))
    params: tuple = ()
    raw_query = None
    if rnd.random() < 0.1:
        raw_query = draw(st.sampled_from(RAW_QUERIES))
    else:
        params = tuple(draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), query_values),
                                     max_size=3)))
    body_kind = rnd.choices(["near", "none", "json", "raw"], [60, 10, 15, 15])[0]
    body = None
    if body_kind == "near" and near is not None:
        body = ("json", draw(near))
    elif body_kind == "json" or (body_kind == "near" and method == "POST"):
        body = ("json", draw(json_values))
    elif body_kind == "raw":
        body = ("raw", draw(raw_bodies))
    content_type = None
    if body is not None:
        content_type = rnd.choice([
            "application/json", "application/json", "application/json", None,
            draw(st.sampled_from(CONTENT_TYPES))])
    return RestRequest(method, path, params, raw_query, body, content_type,
                       draw(auth_values))


def _encode_path(path: Any, fz: Fuzz) -> str:
    if isinstance(path, str):
        return path
    return "".join("/" + urllib.parse.quote(str(resolve(seg, fz)), safe="") for seg in path)


def send_rest(fz: Fuzz, req: RestRequest) -> requests.Response:
    path = _encode_path(req.path, fz)
    url = fz.base + path + (f"?{req.raw_query}" if req.raw_query is not None else "")
    params = [(k, resolve(v, fz)) for k, v in req.params]
    headers = {}
    if req.auth is not None:
        token = resolve(req.auth, fz)
        headers["Authorization"] = f"Bearer {token}" if isinstance(req.auth, Ref) else token
    data: bytes | None = None
    if req.body is not None:
        kind, value = req.body
        text = json.dumps(resolve(value, fz)) if kind == "json" else value
        latin = "latin-1" in (req.content_type or "")
        data = text if isinstance(text, bytes) else text.encode(
            "latin-1" if latin else "utf-8", errors="replace" if latin else "surrogatepass")
    if req.content_type is not None:
        headers["Content-Type"] = req.content_type
    return fz.http.request(req.method, url, params=params, data=data, headers=headers,
                           timeout=TIMEOUT, allow_redirects=False)


# --- WebSocket

good_req_ids = st.one_of(st.text(min_size=1, max_size=128), st.integers(0, 2**53),
                        st.sampled_from(["r" * 128, "1", 0, 2**53]))
req_ids = st.one_of(
    good_req_ids, st.sampled_from(["", "r" * 129, 2**53 + 1, -1, 2**64, 1.5, True, None, [], {}]),
    st.text(min_size=129, max_size=140), st.integers(),
)
sinces = st.one_of(st.integers(-5, 20), st.sampled_from(SPECIAL_INTS),
                   st.sampled_from([1.5, "1", True, None, float("inf")]))
bid_amounts = st.one_of(st.integers(0, 2 * 10**5), st.integers(0, 2 * 10**8),
                        st.sampled_from([100, 200, 1000, 1050, 5000, 10**8, 10**9, 2**53]))
WS_FIELDS = ["op", "req_id", "auction_id", "amount", "max_amount", "since", "token",
             "bidder_id", "extra"]
ws_weird = {
    "op": st.one_of(strings, scalars, st.sampled_from(["BID", "snapshot", "ack", "pong"])),
    "req_id": req_ids, "auction_id": ids, "amount": amounts, "max_amount": amounts,
    "since": sinces, "token": st.one_of(refs("token"), scalars, strings),
    "bidder_id": refs("user"), "extra": json_values,
}


@st.composite
def ws_messages(draw: st.DrawFn) -> dict:
    """A well-formed request of a random op, then 0-2 of its fields removed or made wrong."""
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    op = rnd.choice(["bid", "bid", "bid", "subscribe", "subscribe", "unsubscribe", "ping", "auth",
                     "other"])
    message: dict[str, Any] = {"op": op}
    if op == "bid":
        message |= {"req_id": draw(good_req_ids), "auction_id": draw(refs("auction")),
                    "amount": draw(bid_amounts)}
        if rnd.random() < 0.3:
            message["max_amount"] = message["amount"] + draw(st.integers(0, 10**6))
    elif op in ("subscribe", "unsubscribe"):
        message["auction_id"] = draw(refs("auction"))
        if op == "subscribe" and draw(st.booleans()):
            message["since"] = draw(st.integers(0, 5))
    elif op == "auth":
        message["token"] = draw(st.one_of(valid_tokens, refs("token")))
    elif op == "other":
        message["op"] = draw(ws_weird["op"])
    if op != "bid" and rnd.random() < 0.5:
        message["req_id"] = draw(good_req_ids)
    for _ in range(rnd.choice([0, 0, 1, 2])):
        name = draw(st.sampled_from(WS_FIELDS))
        if name in message and draw(st.booleans()):
            del message[name]
        else:
            message[name] = draw(ws_weird[name])
    return message


# msgpack cannot carry ints outside int64/uint64
mp_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                       st.floats(), st.text(max_size=30), st.binary(max_size=30))
mp_values = st.recursive(
    mp_scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-5, 5), st.binary(max_size=4)),
                        kids, max_size=4)),
    max_leaves=16,
)
DEEP_MSGPACK = [b"\x91" * 5000 + b"\xc0", b"\x81\xa1a" * 3000 + b"\xc0", b"\xdd\xff\xff\xff\xff",
                b"\xc1", b"\xd4\x00\x00", b"\xc7\x01\x05x", b"\x80\x80"]


@dataclass(frozen=True)
class Frame:
    kind: str  # json, text, badutf8, msgpack, bytes
    payload: Any


frames = weighted(
    (40, st.builds(Frame, st.just("json"), ws_messages())),
    (20, st.builds(Frame, st.just("msgpack"), ws_messages())),
    (6, st.builds(Frame, st.just("json"), json_values)),
    (6, st.builds(Frame, st.just("msgpack"), mp_values)),
    (6, st.builds(Frame, st.just("text"), st.one_of(
        st.text(max_size=200), st.sampled_from([
            "NaN", '{"op":"ping","req_id":NaN}', "{", '{"op":"ping"} {}', "\ufeff{}", "[]", "null",
            '{"op":"bid","req_id":"x","auction_id":"a_1","amount":' + LONG_INT + "}",
            '{"op":"ping","req_id":' + LONG_INT + "}"])))),
    (2, st.builds(Frame, st.just("text"),
                  st.builds(deep, st.integers(5_000, 30_000), st.just("list")))),
    (6, st.builds(Frame, st.just("bytes"), st.one_of(st.binary(max_size=200),
                                                     st.sampled_from(DEEP_MSGPACK)))),
    (1, st.builds(Frame, st.just("badutf8"), st.binary(max_size=40).map(
        lambda b: b"{\xff\xfe" + b))),
)
# How the socket says who it is: (where, token ref)
places = st.sampled_from(["header", "query"])
ws_auths = weighted(
    (25, st.none()), (50, st.tuples(places, valid_tokens)), (15, st.tuples(places, refs("token"))),
    (10, st.tuples(st.just("query"), st.text(max_size=30))),
)


def _packable(value: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        # An int out of msgpack's range in a near-valid message: the closest one that packs.
        return msgpack.packb(json.loads(json.dumps(value), parse_int=lambda s: 2**64 - 1
                                        if int(s) >= 2**64 else max(int(s), -(2**63))),
                             use_bin_type=True)


def _answer_key(value: Any) -> tuple[str, Any]:
    return type(value).__name__, value


@dataclass
class BidSent:
    key: tuple[str, Any]  # the req_id, typed
    auction_id: str
    identity: str | None  # who the socket was when the frame was sent


class Session:
    """One fuzzed socket: what was sent (and who the socket was at each frame), what came back.

    Every frame is decoded with the server's own parser, so the test knows which bids are
    well-formed (each must be answered) and models the socket's identity: the connect token,
    then each `auth` op with a string token (a token that fails leaves the socket anonymous)."""

    def __init__(self, fz: Fuzz, auth: Any) -> None:
        query, header = "", []
        self.identity: str | None = None
        if auth is not None:
            where, token = auth
            token = resolve(token, fz)
            if where == "header":
                header = [f"Authorization: Bearer {token}"]
            else:
                query = "?token=" + urllib.parse.quote(token, safe="")
            self.identity = fz.token_identity.get(token)
        self.ws = websocket.create_connection(_ws_url(fz.base, query), timeout=TIMEOUT,
                                              header=header)
        self.answers: list[dict] = []
        self.close_code: int | None = None
        self.bids: list[BidSent] = []
        # Well-formed bids whose socket closed before their answer: they may still run.
        self.unanswered = 0
        self.req_ids: Counter[tuple[str, Any]] = Counter()  # over every decodable request

    def encode(self, frame: Frame, fz: Fuzz) -> tuple[Any, int]:
        if frame.kind == "json":
            return json.dumps(resolve(frame.payload, fz)), websocket.ABNF.OPCODE_TEXT
        if frame.kind in ("text", "badutf8"):
            return frame.payload, websocket.ABNF.OPCODE_TEXT
        if frame.kind == "msgpack":
            return _packable(resolve(frame.payload, fz)), websocket.ABNF.OPCODE_BINARY
        return frame.payload, websocket.ABNF.OPCODE_BINARY

    def send_all(self, frames: list[Frame], fz: Fuzz, pipelined: bool) -> None:
        """Send the frames one write each, or all in one write (so the server reads them as
        one batch, without a turn of its event loop in between)."""
        encoded = [self.encode(frame, fz) for frame in frames]
        for data, opcode in encoded:
            self._model(data, opcode, fz)
        with contextlib.suppress(websocket.WebSocketConnectionClosedException, OSError):
            if pipelined:
                raw = b"".join(websocket.ABNF.create_frame(data, opcode).format()
                               for data, opcode in encoded)
                self.ws.sock.sendall(raw)
            else:
                for data, opcode in encoded:
                    self.ws.send(data, opcode=opcode)

    def _model(self, data: Any, opcode: int, fz: Fuzz) -> None:
        if opcode == websocket.ABNF.OPCODE_TEXT and isinstance(data, bytes):
            return  # not UTF-8: the server closes the socket
        try:
            message = decode(data, "json" if opcode == websocket.ABNF.OPCODE_TEXT else "msgpack")
        except ProtocolError:
            return
        req_id = req_id_of(message)
        if req_id is not None:
            self.req_ids[_answer_key(req_id)] += 1
        if message.get("op") == "auth" and isinstance(message.get("token"), str):
            self.identity = fz.token_identity.get(message["token"])
        elif message.get("op") == "bid":
            try:
                bid = parse_bid(message)
            except ProtocolError:
                return
            self.bids.append(BidSent(_answer_key(bid.req_id), bid.auction_id, self.identity))

    def drain(self, ping_id: str) -> None:
        """Read until the pong to `ping_id` and an answer to every well-formed bid arrived, or
        the socket closed."""
        pending = Counter(bid.key for bid in self.bids)
        ponged = False
        while not ponged or any(pending.values()):
            if ponged:  # bids take milliseconds: after the pong, a few seconds is plenty
                self.ws.settimeout(BID_ANSWER_S)
            try:
                opcode, message = _recv(self.ws)
            except websocket.WebSocketTimeoutException as exc:
                raise AssertionError(
                    f"no answer in time (pong: {ponged}, bids never answered: "
                    f"{ [k for k, v in pending.items() if v] }); got {self.answers[-5:]}"
                ) from exc
            except (websocket.WebSocketConnectionClosedException, OSError):
                self.unanswered = sum(pending.values())
                return  # dropped without a close frame: close_code stays None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = message
                self.unanswered = sum(pending.values())
                return
            self.answers.append(message)
            if not isinstance(message, dict):
                continue
            req_id = message.get("req_id")
            if message.get("op") == "pong" and req_id == ping_id:
                ponged = True
            elif message.get("op") in ("ack", "error") and req_id is not None:
                key = _answer_key(req_id)
                if pending.get(key) and (message.get("op") == "error"
                                         or "bid_count" in message):
                    pending[key] -= 1

    def check_bidders(self, fz: Fuzz) -> None:
        """A bid acts as whoever the socket was when it was sent: anonymous -> UNAUTHORIZED,
        the seller -> never accepted, anyone else -> never SELF_BID."""
        for bid in self.bids:
            if self.req_ids[bid.key] != 1:
                continue  # its answer cannot be told from another request's
            answers = [m for m in self.answers if isinstance(m, dict)
                       and m.get("op") in ("ack", "error")
                       and _answer_key(m.get("req_id")) == bid.key]
            assert len(answers) == 1, (bid, answers)
            answer = answers[0]
            code = answer.get("code")
            seller = fz.sellers.get(bid.auction_id)
            if bid.identity is None:
                assert code == "UNAUTHORIZED", (bid, answer)
            elif seller is not None and bid.identity == seller:
                assert answer["op"] == "error" and code != "UNAUTHORIZED", (bid, answer)
            else:
                assert code not in ("SELF_BID", "UNAUTHORIZED"), (bid, answer)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=2)


_pings = iter(range(10**9))
LOW_BID = {"op": "bid", "auction_id": Ref("auction", 1), "amount": 1}


# Found by this fuzzer: a bid answered after a later `auth` on the same socket.
@example(auth=("header", Ref("token", 1)), pipelined=True, sent=[
    Frame("json", {**LOW_BID, "req_id": "bid-then-bad-auth"}),
    Frame("json", {"op": "auth", "token": "garbage", "req_id": "bad-auth"}),
])
@example(auth=("header", Ref("token", 1)), pipelined=True, sent=[
    Frame("json", {**LOW_BID, "req_id": "bid-then-auth-as-seller"}),
    Frame("json", {"op": "auth", "token": Ref("token", 0), "req_id": "auth-as-seller"}),
])
@settings(max_examples=100, **FUZZ_SETTINGS)
@given(auth=ws_auths, sent=st.lists(frames, min_size=1, max_size=6), pipelined=st.booleans())
def test_websocket_fuzz(fz: Fuzz, auth: Any, sent: list[Frame], pipelined: bool) -> None:
    session = Session(fz, auth)
    try:
        session.send_all(sent, fz, pipelined)
        ping_id = f"fuzz-ping-{next(_pings)}"
        with contextlib.suppress(websocket.WebSocketConnectionClosedException, OSError):
            session.ws.send(json.dumps({"op": "ping", "req_id": ping_id}))
        session.drain(ping_id)
    finally:
        session.close()

    answers = session.answers
    for message in answers:
        fz.outcomes[f"WS {message.get('op')} {message.get('code', '')}"] += 1
    if session.close_code is not None:
        fz.outcomes[f"WS close {session.close_code}"] += 1
    if session.close_code is not None or not any(
            isinstance(m, dict) and m.get("req_id") == ping_id for m in answers):
        # Only a text frame that is not UTF-8 may close a socket under 64 KiB (RFC 6455: 1007).
        assert any(f.kind == "badutf8" for f in sent), (session.close_code, answers[-5:])
        assert session.close_code == CLOSE_INVALID_UTF8, (session.close_code, answers[-5:])
    else:
        session.check_bidders(fz)
    for message in answers:
        assert isinstance(message, dict) and message.get("op") in WS_OPS, message
        if message["op"] == "error":
            assert message.get("code") in WS_CODES, message
            assert isinstance(message.get("message"), str), message
    if any(m["op"] == "ack" and "bid_count" in m for m in answers) or session.unanswered:
        # Accepted, or a bid sent before the socket closed whose outcome nobody heard: it
        # may still be running (and be accepted), so the state is re-read once it settles.
        fz.accepted += 1
        fz.rebaseline(settle=True)
    else:
        fz.refused += 1
        fz.assert_unchanged(f"websocket frames {sent!r} -> {answers!r}")


def test_alive_after_websocket_fuzz(fz: Fuzz) -> None:
    response = fz.http.get(fz.base + "/healthz", timeout=TIMEOUT)
    assert (response.status_code, response.json()["status"]) == (200, "ok")


def _ping_of_size(size: int, binary: bool) -> bytes | str:
    message = {"op": "ping", "req_id": "big", "pad": ""}
    encode = _packable if binary else json.dumps
    pad = size - len(encode(message))
    for _ in range(5):
        message["pad"] = "p" * pad
        data = encode(message)
        if len(data) == size:
            return data
        pad += size - len(data)
    raise AssertionError(f"cannot make a {size}-byte frame")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
@pytest.mark.parametrize("size", [MAX_FRAME - 1, MAX_FRAME + 1])
def test_websocket_frame_size_limit(fz: Fuzz, size: int, binary: bool) -> None:
    """Under 64 KiB a frame is answered; over 64 KiB closes the socket with 1009."""
    data = _ping_of_size(size, binary)
    ws = websocket.create_connection(_ws_url(fz.base), timeout=TIMEOUT)
    try:
        ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY if binary
                else websocket.ABNF.OPCODE_TEXT)
        opcode, answer = _recv(ws)
    finally:
        with contextlib.suppress(Exception):
            ws.close(timeout=2)
    if size > MAX_FRAME:
        assert (opcode, answer) == (websocket.ABNF.OPCODE_CLOSE, CLOSE_TOO_BIG)
    else:
        assert answer == {"op": "pong", "req_id": "big"}
    fz.assert_unchanged(f"a {size}-byte frame")


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def strict_json(text: str | bytes) -> Any:
    """Parse as RFC 8259 JSON: the NaN and Infinity that Python's json module allows are not."""
    return json.loads(text, parse_constant=_not_json)


# Found by this fuzzer: a number literal too big for a float (1e999) is taken as Infinity.
@example(req=RestRequest("POST", ("api", "assets"), body=("raw", '{"title": "x", "n": 1e999}'),
                         content_type="application/json", auth=Ref("token", 0)))
@settings(max_examples=150, **FUZZ_SETTINGS)
@given(req=rest_requests())
def test_rest_fuzz(fz: Fuzz, req: RestRequest) -> None:
    response = send_rest(fz, req)
    status = response.status_code
    where = f"{req.method} {response.request.url} -> {status} {response.text[:300]!r}"
    body = None
    if response.headers.get("Content-Type", "").startswith("application/json") and (
            req.method != "HEAD"):
        try:
            body = strict_json(response.content)
        except ValueError as exc:
            raise AssertionError(f"not JSON ({exc}): {where}") from exc
    code = body.get("error", {}).get("code", "") if isinstance(body, dict) else ""
    route = "/".join(seg if isinstance(seg, str) else "{id}" for seg in req.path) if isinstance(
        req.path, tuple) else req.path[:20]
    fz.outcomes[f"REST {req.method} {route} {status} {code}"] += 1
    assert status < 500, where
    path = response.request.path_url
    if 400 <= status < 500 and path.startswith("/api") and req.method != "HEAD":
        assert isinstance(body, dict) and set(body) == {"error"}, where
        assert isinstance(body["error"].get("code"), str), where
        assert isinstance(body["error"].get("message"), str), where
    if status == 429:
        assert int(response.headers["Retry-After"]) >= 1, where
    if status < 400 and req.method not in ("GET", "HEAD", "OPTIONS"):
        fz.accepted += 1
        created = body if status == 201 and isinstance(body, dict) else {}
        if "auction_id" in created:
            fz.auctions.append(created["auction_id"])
            fz.sellers[created["auction_id"]] = created["seller_id"]
        elif "asset_id" in created:
            fz.assets.append(created["asset_id"])
        fz.rebaseline(settle=path.startswith("/api/auctions"))
    else:
        fz.refused += status >= 400
        fz.assert_unchanged(where)


def test_server_survived(fz: Fuzz) -> None:
    response = fz.http.get(fz.base + "/healthz", timeout=TIMEOUT)
    assert (response.status_code, response.json()["status"]) == (200, "ok")
    log = fz.server.log_path.read_text(errors="replace")
    for sign in ("Traceback", "unhandled error", "exception was never retrieved"):
        assert sign not in log, log[max(0, log.find(sign) - 2000):log.find(sign) + 3000]
