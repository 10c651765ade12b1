"""The auction room in a real browser: two bidders, live updates, the result, reconnects."""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "gateway" / "static"
SCREENSHOT = "/tmp/ece-room.png"
PASSWORD = "correct-horse-9"


def short(user_id: str) -> str:
    return f"bidder {user_id[-6:]}"


def sign_up(page: Page, base: str, username: str, funds: int = 1_000_000) -> str:
    """Create an account through the page, with `funds` cents deposited over REST (0: none);
    returns the new user's id."""
    page.goto(f"{base}/#/signup")
    page.get_by_test_id("auth-username").fill(username)
    page.get_by_test_id("auth-password").fill(PASSWORD)
    page.get_by_test_id("auth-submit").click()
    user = page.get_by_test_id("session-user")
    expect(user).to_contain_text(username)
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "live")
    if funds:
        token = json.loads(page.evaluate("localStorage.getItem('ece.session')"))["token"]
        response = requests.post(f"{base}/api/wallet/deposits", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"},
                                 json={"amount": funds, "req_id": "opening"})
        assert response.status_code == 201, response.text
    return user.get_attribute("data-user-id")


def list_card(base: str, title: str, seller: str = "seller_sam", **terms) -> dict:
    """A new seller (over REST) mints a card and opens an auction on it (English unless
    `type` says otherwise)."""
    body = {"username": seller, "password": PASSWORD}
    response = requests.post(f"{base}/api/users", json=body, timeout=10)
    assert response.status_code == 201, response.text
    headers = {"Authorization": f"Bearer {response.json()['token']}"}
    response = requests.post(f"{base}/api/assets", headers=headers, timeout=10,
                             json={"title": title, "set": "Base Set", "grade": "PSA 9"})
    assert response.status_code == 201, response.text
    body = {"asset_id": response.json()["asset_id"], "type": "english", "start_price": 1000,
            **terms}
    response = requests.post(f"{base}/api/auctions", headers=headers, json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def open_from_list(page: Page, auction_id: str) -> None:
    item = page.locator(f'[data-testid="auction-item"][data-auction-id="{auction_id}"]')
    expect(item).to_be_visible(timeout=15_000)  # the list refreshes every few seconds
    item.click()
    expect(page.get_by_test_id("status")).to_have_text("Live")


def bid(page: Page, amount: str, expect_text: str | re.Pattern) -> None:
    page.get_by_test_id("bid-amount").fill(amount)
    page.get_by_test_id("bid-submit").click()
    expect(page.get_by_test_id("bid-feedback")).to_contain_text(expect_text)


def test_two_bidders_see_each_other_live_until_the_close(start_server, new_page):
    server = start_server()
    base = server.base
    # The seller lists first so the sign-ups overlap the auction's 40 s (keeps the test short);
    # if the bids land in the last 10 s, the soft close extends it and the test still holds.
    auction = list_card(base, "Charizard Holo 1st Edition", duration_ms=40_000,
                        soft_close_ms=10_000)
    auction_id = auction["auction_id"]
    _, ann = new_page()
    _, bob = new_page()
    ann_id = sign_up(ann, base, "ann_collects")
    bob_id = sign_up(bob, base, "bob_collects")
    for page in (ann, bob):
        open_from_list(page, auction_id)
        expect(page.get_by_test_id("room-title")).to_have_text("Charizard Holo 1st Edition")
        expect(page.get_by_test_id("price")).to_have_text("$10.00")
        expect(page.get_by_test_id("bid-count")).to_have_text("0")
        expect(page.get_by_test_id("bid-amount")).to_have_value("10.00")  # prefilled min_bid

    # Ann bids the prefilled minimum; Bob's page shows it without a reload.
    ann.get_by_test_id("bid-submit").click()
    expect(ann.get_by_test_id("bid-feedback")).to_contain_text(
        "you're the high bidder at $10.00")
    expect(ann.get_by_test_id("leader")).to_have_text("you")
    expect(bob.get_by_test_id("leader")).to_have_text(short(ann_id))
    expect(bob.get_by_test_id("bid-count")).to_have_text("1")
    expect(bob.get_by_test_id("price")).to_have_text("$10.00")
    expect(bob.locator('[data-testid="history-row"][data-type="bid"]')).to_have_text(
        [re.compile(rf"{short(ann_id)} bid \$10\.00")])
    expect(bob.get_by_test_id("bid-amount")).to_have_value("10.50")  # next minimum

    # Bob bids higher; proxy rules put the price one increment over Ann: $10.50.
    bid(bob, "15.00", "you're the high bidder at $10.50")
    expect(ann.get_by_test_id("price")).to_have_text("$10.50")
    expect(ann.get_by_test_id("leader")).to_have_text(short(bob_id))
    expect(ann.get_by_test_id("bid-count")).to_have_text("2")
    expect(ann.get_by_test_id("standing")).to_have_text("You've been outbid")
    expect(ann.get_by_test_id("bid-feedback")).not_to_contain_text("high bidder")  # taken back
    # Bob's maximum ($15.00) is his secret: rivals see his bid at the price it set.
    expect(ann.get_by_test_id("history-row").first).to_contain_text(
        f"{short(bob_id)} bid $10.50")
    expect(ann.get_by_test_id("history")).not_to_contain_text("$15.00")

    # A bid under the minimum is refused with the minimum spelled out; nothing changes.
    bid(ann, "10.75", "Bid too low — minimum $11.00")
    expect(ann.get_by_test_id("bid-amount")).to_have_value("11.00")
    expect(ann.get_by_test_id("bid-count")).to_have_text("2")
    ann.screenshot(path=SCREENSHOT)

    # The auction closes on time (~40 s after it opened): both pages show the result.
    for page in (ann, bob):
        expect(page.get_by_test_id("status")).to_have_text("Closed", timeout=60_000)
        expect(page.get_by_test_id("final-price")).to_have_text("$10.50")
        expect(page.get_by_test_id("bid-form")).to_be_hidden()
    expect(bob.get_by_test_id("winner")).to_have_text("you")
    expect(ann.get_by_test_id("winner")).to_have_text(short(bob_id))
    expect(bob.get_by_test_id("standing")).to_have_text("You won this card")
    expect(ann.get_by_test_id("history-row").first).to_have_text(
        re.compile(rf"Sold to {short(bob_id)} for \$10\.50"))
    ann.screenshot(path="/tmp/ece-room-closed.png")

    view = requests.get(f"{base}/api/auctions/{auction_id}", timeout=10).json()
    assert (view["status"], view["winner_id"], view["final_price"]) == ("closed", bob_id, 1050)


def test_room_recovers_after_a_dropped_connection(start_server, new_page):
    server = start_server()
    base = server.base
    ann_context, ann = new_page()
    _, bob = new_page()
    ann_id = sign_up(ann, base, "ann_collects")
    bob_id = sign_up(bob, base, "bob_collects")
    auction = list_card(base, "Black Lotus", duration_ms=120_000)
    room = f"{base}/#/auction/{auction['auction_id']}"
    for page in (ann, bob):
        page.goto(room)
        expect(page.get_by_test_id("status")).to_have_text("Live")
        expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "live")

    # Ann loses the network; Bob bids meanwhile.
    ann_context.set_offline(True)
    ann_state = ann.get_by_test_id("connection-state")
    expect(ann_state).to_have_attribute("data-state", re.compile("offline|reconnecting"))
    bid(bob, "10.00", "you're the high bidder at $10.00")
    expect(ann.get_by_test_id("bid-count")).to_have_text("0")
    expect(ann.get_by_test_id("bid-submit")).to_be_disabled()  # no bids into the void

    # Back online: Ann's page reconnects, resumes from its last seq and shows Bob's bid once.
    ann_context.set_offline(False)
    expect(ann_state).to_have_attribute("data-state", "live")
    expect(ann.get_by_test_id("bid-count")).to_have_text("1")
    expect(ann.get_by_test_id("leader")).to_have_text(short(bob_id))
    expect(ann.locator('[data-testid="history-row"][data-type="bid"]')).to_have_count(1)

    # The socket itself drops (as a server restart would) while Ann outbids Bob.
    bob.evaluate("window.ECE.live.simulateDrop()")
    bid(ann, "12.00", "you're the high bidder at $10.50")
    expect(bob.get_by_test_id("connection-state")).to_have_attribute("data-state", "live")
    expect(bob.get_by_test_id("price")).to_have_text("$10.50")
    expect(bob.get_by_test_id("leader")).to_have_text(short(ann_id))
    expect(bob.get_by_test_id("standing")).to_have_text("You've been outbid")
    rows = bob.locator('[data-testid="history-row"][data-type="bid"]')
    expect(rows).to_have_count(2)
    seqs = [int(s) for s in bob.locator('[data-testid="history-row"]').evaluate_all(
        "rows => rows.map(r => r.dataset.seq)")]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs))


def cents(text: str) -> int:
    """"$1,234.50" -> 123450"""
    whole, fraction = text.replace("$", "").replace(",", "").split(".")
    return int(whole) * 100 + int(fraction)


def test_minimum_and_dutch_price_come_from_the_server(start_server, new_page):
    """The page never computes an increment or a Dutch price: a custom increment shows up
    as the next minimum, and a Dutch price falls when the server says it does. Every module
    loads as JavaScript, without a console error."""
    server = start_server()
    base = server.base
    english = list_card(base, "Mew Promo", seller="seller_sam", duration_ms=120_000,
                        increment=77)
    _, ann = new_page()
    problems: list[str] = []
    ann.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    ann.on("pageerror", lambda error: problems.append(str(error)))
    scripts: dict[str, str] = {}
    ann.on("response", lambda r: scripts.__setitem__(r.url, r.headers.get("content-type", ""))
           if r.url.endswith(".js") else None)
    sign_up(ann, base, "ann_collects")

    # English with a custom increment of 77 cents: the next minimum is the event's min_bid.
    ann.goto(f"{base}/#/auction/{english['auction_id']}")
    expect(ann.get_by_test_id("status")).to_have_text("Live")
    bid(ann, "10.00", "you're the high bidder at $10.00")
    expect(ann.get_by_test_id("min-bid")).to_have_text("$10.77")
    expect(ann.get_by_test_id("price-note")).to_have_text("Next bid from $10.77")
    assert requests.get(f"{base}/api/auctions/{english['auction_id']}",
                        timeout=10).json()["min_bid"] == 1077

    # Dutch: the room shows the server's price and counts down to its next drop.
    dutch = list_card(base, "Lugia Neo Genesis", seller="seller_dee", type="dutch",
                      start_price=5000, floor_price=4000, step=100, step_ms=2000,
                      duration_ms=120_000)
    ann.goto(f"{base}/#/auction/{dutch['auction_id']}")
    expect(ann.get_by_test_id("status")).to_have_text("Live")
    price = ann.get_by_test_id("price")
    expect(ann.get_by_test_id("price-note")).to_have_text(
        re.compile(r"Floor \$40\.00 · drops \$1\.00 in [0-2]s"))
    first = cents(price.inner_text())
    assert 4000 <= first <= 5000 and first % 100 == 0
    # The next drop comes from the server (a REST view fetched at next_drop_at).
    expect(price).to_have_text(f"${(first - 100) // 100}.00", timeout=10_000)
    shown, minimum = ann.evaluate("""() => ["price", "min-bid"].map(
        (id) => document.querySelector(`[data-testid=${id}]`).textContent)""")
    assert shown == minimum  # a Dutch minimum is its current price
    view = requests.get(f"{base}/api/auctions/{dutch['auction_id']}", timeout=10).json()
    assert view["price"] <= first - 100 and view["price"] % 100 == 0, view  # may drop again
    assert view["next_drop_at"] is not None

    # Buying ends it at the server's current price.
    ann.get_by_test_id("bid-submit").click()
    expect(ann.get_by_test_id("bid-feedback")).to_contain_text("You bought it for $")
    expect(ann.get_by_test_id("status")).to_have_text("Closed")
    expect(ann.get_by_test_id("standing")).to_have_text("You won this card")
    expect(ann.get_by_test_id("price-note")).to_have_text("")
    final = requests.get(f"{base}/api/auctions/{dutch['auction_id']}", timeout=10).json()
    expect(ann.get_by_test_id("final-price")).to_have_text(f"${final['final_price'] // 100}.00")

    modules = {url: kind for url, kind in scripts.items() if "/static/" in url}
    assert any(url.endswith("/static/views/room.js") for url in modules), modules
    assert all(re.match(r"(text|application)/javascript", kind) for kind in modules.values()), \
        modules
    assert problems == []


def test_money_is_parsed_exactly(new_page):
    """Dollar input to integer cents without floating point (no server needed)."""
    _, page = new_page()

    def serve(route):
        name = route.request.url.split("/static/", 1)[-1]
        path = STATIC / name
        if "/static/" in route.request.url and path.is_file():
            route.fulfill(path=str(path), content_type=mimetypes.guess_type(name)[0])
        else:
            route.fulfill(body="<!doctype html><title>blank</title>", content_type="text/html")

    page.route("http://ece.test/**", serve)
    page.goto("http://ece.test/")
    result = page.evaluate("""async () => {
        const m = await import("/static/money.js");
        const inputs = ["52", "52.5", "52.50", "$1,052.50", " 0.29 ", ".75", "19.99",
                        "1.005", "-1", "abc", "", "1e3", "12,34", "90071992547409.92",
                        "90071992547409.93"];
        return {
            parsed: inputs.map((s) => m.parseDollars(s)).map((r) => (r.ok ? r.cents : null)),
            formatted: [0, 5, 1050, 123456789, 2 ** 53].map(m.formatCents),
            input: [1050, 7, 100].map(m.centsToInput),
        };
    }""")
    assert result["parsed"] == [5200, 5250, 5250, 105250, 29, 75, 1999, None, None, None, None,
                                None, None, 2**53, None]
    assert result["formatted"] == ["$0.00", "$0.05", "$10.50", "$1,234,567.89",
                                   "$90,071,992,547,409.92"]
    assert result["input"] == ["10.50", "0.07", "1.00"]
