"""What the offer-desk tests share: a SQLite store with funded users and minted assets (each
with a signed provenance chain), an injected clock, the commands the gateway would send, a
way to wait until a desk is idle, and a store wrapper that crashes or fails at a chosen call.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from actors.config import ClusterConfig
from actors.messages import OfferCommand, OfferReply, OfferViewed, Refused
from actors.offer_desk import OfferDesk
from market import ledger
from market.offers import Offer, Terms, offer_id_for
from market.provenance import (
    Ed25519Signer,
    Record,
    mint_record,
    next_record,
    public_key_b64,
    token_id_for,
    verify_chain,
)
from storage import Store, StoreError
from storage.records import AssetRecord, EntryRecord, ProvenanceRecord
from storage.sqlite import SqliteStore

T0 = 1_700_000_000_000
HOUR = 3_600_000
HOST = "unit:offers:0"
FEE_BPS = 250
SIGNER = Ed25519Signer.from_private_bytes(bytes(range(32)))
PUBLIC_KEY = public_key_b64(SIGNER)


def config(fee_bps: int = FEE_BPS) -> ClusterConfig:
    return ClusterConfig(store_url="sqlite:///unused", instance="unit", offer_fee_bps=fee_bps,
                         provenance_key=base64.b64encode(SIGNER.private_bytes()).decode())


class Clock:
    """The desk's clock: epoch ms, moved by the test (then `desk.wake()`)."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


async def open_store(path: Path | str) -> SqliteStore:
    store = SqliteStore(str(path), synchronous="OFF")
    await store.open()
    return store


async def fund(store: Store, user: str, amount: int, key: str = "funds") -> None:
    await store.post_entry(cast(EntryRecord, ledger.deposit(user, amount, key, T0 - 100)
                                .to_dict()))


async def balance(store: Store, user: str) -> int:
    return (await store.get_account(ledger.user_account(user)))["balance"]


async def fees(store: Store) -> int:
    return (await store.get_account(ledger.FEES))["balance"]


async def mint(store: Store, asset_id: str, owner: str) -> None:
    """A graded copy with its token minted to `owner`."""
    token = token_id_for(asset_id)
    asset = cast(AssetRecord, {"asset_id": asset_id, "owner_id": owner, "title": asset_id,
                               "metadata": {}, "created_at": T0 - 50, "token_id": token})
    await store.create_asset(asset, cast(ProvenanceRecord,
                                         mint_record(token, owner, T0 - 50, SIGNER)))


async def chain(store: Store, asset_id: str) -> list[ProvenanceRecord]:
    records = await store.load_provenance(token_id_for(asset_id))
    assert records is not None
    return records


async def transfer(store: Store, asset_id: str, to: str, *, reason: str = "admin",
                   ref: str | None = None, price: int | None = None,
                   at: int = T0) -> ProvenanceRecord:
    """Move an asset outside any offer: a signed transfer appended to its chain."""
    records = await chain(store, asset_id)
    tail = records[-1]
    record = cast(ProvenanceRecord, next_record(
        token_id_for(asset_id), cast(Record, tail), "transfer", frm=tail["to"], to=to,
        reason=reason, ref=ref, price=price, at=at, signer=SIGNER))
    await store.append_provenance(token_id_for(asset_id), record)
    return record


async def redeem(store: Store, asset_id: str, at: int = T0) -> None:
    """The card leaves the vault: its token is burned (the owner stays recorded)."""
    tail = (await chain(store, asset_id))[-1]
    record = cast(ProvenanceRecord, next_record(
        token_id_for(asset_id), cast(Record, tail), "redeem", frm=tail["to"], to=None, at=at,
        signer=SIGNER))
    await store.append_provenance(token_id_for(asset_id), record)


async def owner(store: Store, asset_id: str) -> str:
    asset = await store.get_asset(asset_id)
    assert asset is not None
    return asset["owner_id"]


async def check_asset(store: Store, asset_id: str) -> tuple[str, list[ProvenanceRecord]]:
    """The asset's owner, checked: one owner, the last record's `to`, a chain that verifies
    with the public key alone, and no lock left behind. Also its chain."""
    asset = await store.get_asset(asset_id)
    assert asset is not None
    records = await chain(store, asset_id)
    assert verify_chain(token_id_for(asset_id), cast(list[Record], records), PUBLIC_KEY) == []
    assert records[-1]["to"] == asset["owner_id"], f"{asset_id}: owner and chain disagree"
    assert asset.get("listed_in") is None, f"{asset_id} is still locked"
    return asset["owner_id"], records


def transfers_by(records: list[ProvenanceRecord], offer_id: str) -> list[ProvenanceRecord]:
    return [r for r in records if r["kind"] == "transfer" and r["ref"] == offer_id]


# -- commands, as the gateway builds them -------------------------------------------------------
def create(frm: str, to: str, req_id: str, now: int, **body: Any) -> OfferCommand:
    offer = Offer(offer_id_for(frm, req_id), frm, to, Terms.parse(body, now), now)
    return OfferCommand(offer.offer_id, offer.thread_id, "create", by=frm, req_id=req_id,
                        offer=offer.to_dict())


def command(offer: dict[str, Any], action: str, by: str, req_id: str,
            **terms: Any) -> OfferCommand:
    return OfferCommand(offer["offer_id"], offer["thread_id"], action, by=by, req_id=req_id,
                        terms=terms or None)


def get(offer_id: str) -> OfferCommand:
    return OfferCommand(offer_id, offer_id, "get")


async def one(desk: OfferDesk, cmd: OfferCommand) -> OfferReply:
    [reply] = await desk.submit([cmd])
    return reply


async def ok(desk: OfferDesk, cmd: OfferCommand) -> dict[str, Any]:
    reply = await one(desk, cmd)
    assert isinstance(reply, OfferViewed), f"{cmd.action} refused: {reply}"
    return reply.offer


async def refused(desk: OfferDesk, cmd: OfferCommand) -> Refused:
    reply = await one(desk, cmd)
    assert isinstance(reply, Refused), f"{cmd.action} not refused: {reply}"
    return reply


async def until(condition: Callable[[], Awaitable[Any] | Any], what: str,
                timeout: float = 10.0) -> Any:
    """Poll an asynchronous effect, for at most `timeout` seconds (`condition` may be a
    coroutine function)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def idle(desk: OfferDesk, timeout: float = 10.0) -> None:
    """Wait until the desk has nothing left to do: no command queued, no background step
    (notices, swaps, invalidations) running, after a pass that saw both (a `get` of no
    offer goes through the loop like any command)."""
    deadline = time.monotonic() + timeout
    while True:
        await desk.submit([get("of_flush")])
        if not desk._queue and not desk._background:
            await desk.submit([get("of_flush")])
            if not desk._queue and not desk._background:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"desk not idle after {timeout}s: {len(desk._queue)} queued,"
                                 f" {len(desk._background)} in the background")
        await asyncio.sleep(0.002)


# -- stores that misbehave ------------------------------------------------------------------------
class Hooked:
    """Delegates to a real store; a test replaces chosen methods by assigning them."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


Trigger = Callable[[int, tuple[Any, ...]], bool]


class CrashingStore:
    """Delegates to a real store; the first call of `method` for which `when(n, args)` holds
    (n counts that method's calls from 1) goes wrong, once, in one of three ways:

    - "before": raises StoreError without writing (the write failed);
    - "after": writes, then raises StoreError (the answer was lost);
    - "crash": writes, then the process is gone: that call and every later call of anyone
      never return (nothing after the crash point reaches the store); `crashed` is set.
    """

    def __init__(self, inner: Store, method: str, mode: str,
                 when: Trigger = lambda n, args: n == 1) -> None:
        assert mode in ("before", "after", "crash")
        self.inner = inner
        self.method = method
        self.mode = mode
        self.when = when
        self.calls = 0
        self.fired = False
        self.crashed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name.startswith("_") or not callable(real):
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.crashed.is_set():
                await asyncio.Event().wait()  # the process is gone
            if name != self.method or self.fired:
                return await real(*args, **kwargs)
            self.calls += 1
            if not self.when(self.calls, args):
                return await real(*args, **kwargs)
            self.fired = True
            if self.mode == "before":
                raise StoreError(f"injected: {name} failed")
            result = await real(*args, **kwargs)
            if self.mode == "after":
                raise StoreError(f"injected: {name} applied, answer lost")
            self.crashed.set()
            await asyncio.Event().wait()
            return result

        return call
