"""REST routes of a user's money: the wallet (balance, postings), deposits and withdrawals
(idempotent by `req_id`), and second-chance offers. The ledger's rules are `market.ledger`'s;
the store applies each entry once (`Store.post_entry`)."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from actors.clock import now_ms
from gateway.rest import ApiError, caller, json_body, query_int, take_quota
from gateway.state import Gateway, gateway_of
from market import ledger
from market.errors import FORBIDDEN, INSUFFICIENT_FUNDS, INVALID, MarketError
from market.money import MAX_AMOUNT
from storage import Conflict
from storage.records import EntryRecord, PostingRecord

routes = web.RouteTableDef()

PAGE = 50
MAX_PAGE = 200
# One deposit at most ($100M): with the per-user quota, no balance can approach 2**53.
MAX_DEPOSIT = 10_000_000_000


def posting_json(posting: PostingRecord) -> dict[str, Any]:
    """A posting as clients see it; `ref` is the auction id of a settlement and the
    request's req_id of a deposit or withdrawal."""
    return {"version": posting["version"], "entry_id": posting["entry_id"],
            "cause": posting["cause"], "ref": ledger.public_ref(posting["cause"],
                                                               posting["cause_key"]),
            "amount": posting["amount"],
            "balance": posting["balance"], "at": posting["at"]}


def _before(request: web.Request) -> int | None:
    raw = request.query.get("cursor")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= 16):
        raise ApiError(INVALID, "cursor: not one this server gave out")
    return int(raw)


@routes.get("/api/wallet")
async def wallet(request: web.Request) -> web.Response:
    user_id = caller(request)
    limit = query_int(request, "limit", PAGE, 1, MAX_PAGE)
    gateway = gateway_of(request)
    account = ledger.user_account(user_id)
    state = await gateway.store.get_account(account)
    page = await gateway.store.list_postings(account, _before(request), limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return web.json_response({
        "balance": state["balance"], "available": state["balance"],
        "postings": [posting_json(p) for p in page],
        "next_cursor": str(page[-1]["version"]) if more else None,
    })


async def _movement(request: web.Request, cause: str,
                    most: int) -> tuple[Gateway, str, int, str, EntryRecord | None]:
    """The caller, amount and req_id of a deposit or withdrawal (400 when malformed), and
    the entry of an earlier request with this req_id (a retry: its first outcome stands)."""
    user_id = caller(request)
    body = await json_body(request)
    amount, req_id = body.get("amount"), body.get("req_id")
    if not isinstance(req_id, str) or not 0 < len(req_id) <= ledger.MAX_ID_LEN:
        raise ApiError(INVALID, f"req_id: a string of 1..{ledger.MAX_ID_LEN} characters")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= most:
        raise ApiError(INVALID, f"amount: an integer number of cents in 1..{most}")
    gateway = gateway_of(request)
    entry_id = ledger.entry_id_for(cause, ledger.user_key(user_id, req_id))
    first = await gateway.store.get_entry(entry_id)
    if first is not None and abs(_amount_of(first, user_id)) != amount:
        raise ApiError(INVALID, "req_id: already used for another amount")
    return gateway, user_id, amount, req_id, first


def _amount_of(entry: EntryRecord, user_id: str) -> int:
    account = ledger.user_account(user_id)
    return next(int(n) for a, n in entry["postings"] if a == account)


async def _answer(gateway: Gateway, user_id: str, entry: EntryRecord) -> web.Response:
    account = ledger.user_account(user_id)
    state = await gateway.store.get_account(account)
    # This gateway's own bids see the new balance at once (others: through the feed).
    gateway.notices.balances.update(user_id, state["balance"], state["version"])
    return web.json_response({"entry_id": entry["entry_id"],
                              "amount": abs(_amount_of(entry, user_id)),
                              "balance": entry.get("after", {}).get(account)}, status=201)


@routes.post("/api/wallet/deposits")
async def deposit(request: web.Request) -> web.Response:
    gateway, user_id, amount, req_id, stored = await _movement(request, ledger.DEPOSIT,
                                                               MAX_DEPOSIT)
    if gateway.settings.deposits == "admin" and user_id not in gateway.settings.admins:
        raise ApiError(FORBIDDEN, "deposits are restricted to admins")
    if stored is None:
        balance = (await gateway.store.get_account(ledger.user_account(user_id)))["balance"]
        if balance + amount > MAX_AMOUNT:
            raise ApiError(INVALID, "amount: the balance would exceed 2**53 cents")
        entry = ledger.deposit(user_id, amount, req_id, now_ms())
        take_quota(request, "payments", user_id)
        stored = await gateway.store.post_entry(cast(EntryRecord, entry.to_dict()))
    return await _answer(gateway, user_id, stored)


@routes.post("/api/wallet/withdrawals")
async def withdraw(request: web.Request) -> web.Response:
    gateway, user_id, amount, req_id, stored = await _movement(request, ledger.WITHDRAWAL,
                                                               MAX_AMOUNT)
    if stored is None:  # not a retry of one that went through: check it now
        account = ledger.user_account(user_id)
        available = (await gateway.store.get_account(account))["balance"]
        try:
            entry = ledger.withdrawal(user_id, amount, req_id, now_ms(), available)
            take_quota(request, "payments", user_id)
            stored = await gateway.store.post_entry(cast(EntryRecord, entry.to_dict()))
        except MarketError as exc:
            raise ApiError.of(exc) from exc
        except Conflict as exc:  # spent meanwhile, through another request
            if exc.code != INSUFFICIENT_FUNDS:
                raise
            available = (await gateway.store.get_account(account))["balance"]
            raise ApiError(INSUFFICIENT_FUNDS, "withdrawal exceeds the available balance",
                           available=available, required=amount) from exc
    return await _answer(gateway, user_id, stored)


@routes.get("/api/second-chances")
async def second_chances(request: web.Request) -> web.Response:
    """The caller's second-chance offers: auctions whose winner could not pay, where the
    caller was the runner-up (acted on through trade offers, later)."""
    user_id = caller(request)
    items = await gateway_of(request).store.list_second_chances(user_id)
    return web.json_response({"items": items, "next_cursor": None})
