"""The user channel (`{"op":"subscribe","channel":"me"}`): a user's own events, live and
resumed with `since`, on every store and hosting setting."""

from __future__ import annotations

import pytest

from testkit.client import connect, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_anonymous_sockets_have_no_channel(ece):
    ws = await connect(ece.http, ece.base)
    answer = await ws.request({"op": "subscribe", "channel": "me"})
    assert (answer["op"], answer["code"]) == ("error", "UNAUTHORIZED")
    wrong = await ws.request({"op": "subscribe", "channel": "everyone"})
    assert wrong["code"] == "INVALID"
    await ws.close()


async def test_a_user_hears_outbid_won_sold_and_payments_and_resumes(ece):
    api = ece.api
    seller, a, b = await api.signup("s", funds=0), await api.signup("a"), await api.signup("b")
    me_a = await connect(ece.http, ece.base, a)
    ack = await me_a.request({"op": "subscribe", "channel": "me"})
    assert (ack["op"], ack["channel"], ack["seq"]) == ("ack", "me", 1)  # the opening deposit

    await api.deposit(a, 500, req_id="top-up")
    payment = await me_a.wait_mine("payment", ref="top-up")
    assert (payment["amount"], payment["cause"]) == (500, "deposit")
    assert payment["balance"] == await api.balance(a) and payment["seq"] == 2

    view = await api.auction(seller, "Blue Card", start_price=100, duration_ms=5_000,
                             soft_close_ms=0)
    auction_id = view["auction_id"]
    ws_b = await connect(ece.http, ece.base, b)
    assert (await me_a.bid(auction_id, 100))["op"] == "ack"
    assert (await ws_b.bid(auction_id, 400))["op"] == "ack"
    outbid = await me_a.wait_mine("outbid", auction_id=auction_id)
    assert outbid["title"] == "Blue Card" and outbid["amount"] == 125
    last_seen = outbid["seq"]
    await me_a.close()  # a misses what follows

    me_b = await connect(ece.http, ece.base, b)
    await me_b.request({"op": "subscribe", "channel": "me"})
    won = await me_b.wait_mine("won", timeout=30, auction_id=auction_id)
    assert (won["price"], won["premium"], won["total"]) == (125, 0, 125)
    await me_b.wait_mine("transfer_in", auction_id=auction_id)
    paid = await me_b.wait_mine("payment", ref=auction_id)
    assert paid["amount"] == -125 and paid["cause"] == "settlement"
    me_s = await connect(ece.http, ece.base, seller)
    await me_s.request({"op": "subscribe", "channel": "me", "since": 0})
    sold = await me_s.wait_mine("sold", auction_id=auction_id)
    assert (sold["price"], sold["seller_fee"], sold["net"]) == (125, 6, 119)
    assert [m["seq"] for m in me_s.mine()] == list(range(1, len(me_s.mine()) + 1))

    # a comes back: exactly what it missed, in order, then live ones.
    again = await connect(ece.http, ece.base, a)
    resumed = await again.request({"op": "subscribe", "channel": "me", "since": last_seen})
    assert resumed["seq"] >= last_seen + 1
    lost = await again.wait_mine("lost", auction_id=auction_id)
    assert lost["title"] == "Blue Card"
    missed = again.mine()
    assert [m["seq"] for m in missed] == list(range(last_seen + 1, missed[-1]["seq"] + 1))
    await api.deposit(a, 1, req_id="live-again")
    await again.wait_mine("payment", ref="live-again")
    assert [m["seq"] for m in again.mine()] == list(range(last_seen + 1,
                                                          again.mine()[-1]["seq"] + 1))
    for ws in (ws_b, me_b, me_s, again):
        await ws.close()


async def test_the_channel_follows_balances_made_on_another_socket(ece):
    """A deposit seen by one socket is known to the gateway's bid check at once."""
    api = ece.api
    seller, bidder = await api.signup("s"), await api.signup("b", funds=0)
    view = await api.auction(seller, start_price=100)
    ws = await connect(ece.http, ece.base, bidder)
    await ws.request({"op": "subscribe", "channel": "me"})
    await api.deposit(bidder, 300, req_id="d")
    await ws.wait_mine("payment", ref="d")

    async def accepted():
        answer = await ws.bid(view["auction_id"], 300)
        return answer if answer["op"] == "ack" else None

    await wait_for(accepted, timeout=10, message="bid accepted once funded")
    await ws.close()


async def test_an_unsubscribe_or_a_lost_identity_ends_the_channel_at_once(ece):
    """Found by an attack: a subscribe still being answered when the socket unsubscribed,
    closed or changed user kept delivering (and stayed in memory)."""
    api = ece.api
    user = await api.signup("u", funds=0)
    ws = await connect(ece.http, ece.base, user)
    # Subscribe and unsubscribe back to back: the unsubscribe wins.
    await ws.send({"op": "subscribe", "channel": "me", "req_id": "s1"})
    await ws.send({"op": "unsubscribe", "channel": "me", "req_id": "u1"})
    answer = await ws.expect(lambda m: m.get("req_id") == "s1")
    assert answer == {"op": "ack", "req_id": "s1", "channel": "me", "subscribed": False}
    # Subscribed for real, then a failed auth makes the socket anonymous: nothing more.
    ack = await ws.request({"op": "subscribe", "channel": "me"})
    assert ack["op"] == "ack" and ack["seq"] == 0
    await api.deposit(user, 100, req_id="heard")
    await ws.wait_mine("payment", ref="heard")
    refused = await ws.request({"op": "auth", "token": "not-a-token"})
    assert refused["code"] == "UNAUTHORIZED"
    await api.deposit(user, 100, req_id="unheard")
    pong = await ws.request({"op": "ping"})  # the socket answered what came before it
    assert pong["op"] == "pong"
    other = await connect(ece.http, ece.base, user)  # a fresh socket hears it, this one not
    await other.request({"op": "subscribe", "channel": "me", "since": 1})
    await other.wait_mine("payment", ref="unheard")
    assert [m["ref"] for m in ws.mine("payment")] == ["heard"]
    assert ece.gateway.notices.subscribers() == 1  # only `other`
    for sock in (ws, other):
        await sock.close()


async def test_resubscribing_in_a_loop_is_rate_limited(ece):
    """Found by an attack: each resume replays up to 1,000 stored events, so a socket
    resubscribing with since=0 in a loop made the gateway encode without end."""
    user = await ece.api.signup("loop")
    ws = await connect(ece.http, ece.base, user)
    answers = [await ws.request({"op": "subscribe", "channel": "me", "since": 0})
               for _ in range(15)]
    codes = [a.get("code") for a in answers if a["op"] == "error"]
    assert codes and set(codes) == {"RATE_LIMITED"}
    assert sum(1 for a in answers if a["op"] == "ack") <= 11
    await ws.close()
