"""The portfolio in a real browser: a collector buys a graded card by a trade offer for cash;
her portfolio page shows the holding valued at that price (with its range, its confidence and
the sale behind it) and a card of hers that never sold as "no value yet", never $0.00. Then a
second copy of the same card and grade sells to someone else at a higher price: her page shows
the holding's new value and the new total without a reload, from the `portfolio` event of her
"me" channel."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.test_analytics import (
    PROJECTION_MS,
    mint_psa10,
    post,
    sell_for_cash,
    token_of,
    until,
)
from tests.browser.test_auction_room import PASSWORD, sign_up
from tests.browser.test_tokens import watch_console

pytestmark = pytest.mark.browser

SHOT = "/tmp/ece-portfolio.png"


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def rest_user(base: str, username: str, funds: int) -> tuple[str, str]:
    """A user signed up over REST with `funds` cents deposited (0: none): (user_id, token)."""
    response = requests.post(f"{base}/api/users", timeout=10,
                             json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    user = response.json()
    if funds:
        post(base, "/api/wallet/deposits", user["token"], {"amount": funds, "req_id": "opening"})
    return user["user_id"], user["token"]


def portfolio(base: str, token: str) -> dict:
    response = requests.get(f"{base}/api/portfolio", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def point_of(doc: dict, asset_id: str) -> int | None:
    held = [h for h in doc["holdings"] if h["asset_id"] == asset_id]
    return held[0]["value"]["point"] if held and held[0]["value"] else None


def test_a_comparable_sale_moves_the_holding_and_the_total_live(start_server, new_page):
    server = start_server()
    base = server.base
    _, cleo = new_page()
    errors = watch_console(cleo)
    events: list[str] = []
    def heard(frame: object) -> None:
        if '"type":"portfolio"' in str(frame).replace(" ", ""):
            events.append(str(frame))

    cleo.on("websocket", lambda ws: ws.on("framereceived", heard))
    cleo_id = sign_up(cleo, base, "cleo_collects")
    cleo_token = token_of(cleo)
    sam = rest_user(base, "sam_sells", 0)
    tess = rest_user(base, "tess_too", 1_000_000)

    # Sam's catalog card, two PSA 10 copies; Cleo buys the first for $50.00.
    card = post(base, "/api/cards", sam[1], {
        "name": "Espeon Gold Star", "set": "POP Series 5", "number": "16", "year": 2007,
        "category": "pokemon", "character": "Espeon", "rarity": "Gold Star"})
    first = mint_psa10(base, sam[1], card["card_id"], "80020001")
    second = mint_psa10(base, sam[1], card["card_id"], "80020002")
    sell_for_cash(base, sam, (cleo_id, cleo_token), first["asset_id"], 5_000, "pf-1")
    # And a card of her own that has never sold: no value.
    lonely = post(base, "/api/cards", cleo_token, {
        "name": "Unown Q", "set": "Aquapolis", "number": "52", "year": 2003, "category": "pokemon"})
    unvalued = post(base, "/api/assets", cleo_token,
                    {"card_id": lonely["card_id"], "grader": "PSA", "grade": 9, "cert": "80020003"})

    until(lambda: point_of(portfolio(base, cleo_token), first["asset_id"]) == 5_000,
          PROJECTION_MS / 1000)
    assert len(portfolio(base, cleo_token)["holdings"]) == 2

    cleo.get_by_test_id("nav-portfolio").click()
    expect(cleo).to_have_url(re.compile(r"#/portfolio$"))
    page = cleo.get_by_test_id("portfolio-page")
    expect(page).to_have_attribute("aria-busy", "false")
    held = cleo.locator(f'[data-testid="holding"][data-asset-id="{first["asset_id"]}"]')
    expect(held.get_by_test_id("holding-name")).to_have_text("Espeon Gold Star #16")
    expect(held.get_by_test_id("holding-value")).to_have_text("$50.00")
    expect(held.get_by_test_id("holding-range")).to_have_text(re.compile(r"^\$[\d,.]+–\$[\d,.]+$"))
    expect(held.get_by_test_id("holding-confidence")).to_contain_text("confidence")
    expect(cleo.get_by_test_id("portfolio-total")).to_have_text("$50.00")
    expect(cleo.get_by_test_id("portfolio-range")).to_contain_text("range $")
    # Bought today at $50, valued at $50: no change today, no P/L.
    expect(held.get_by_test_id("holding-pnl")).to_have_text("$0.00")
    never = cleo.locator(f'[data-testid="holding"][data-asset-id="{unvalued["asset_id"]}"]')
    expect(never.get_by_test_id("holding-value")).to_have_text("no value yet")
    expect(never.get_by_test_id("holding-sales")).to_have_count(0)
    expect(cleo.get_by_test_id("portfolio-total-sub")).to_contain_text("1 of 2 without a value yet")
    # The sale behind the value, on demand.
    held.get_by_test_id("holding-sales").click()
    expect(held.get_by_test_id("holding-sales")).to_have_attribute("aria-expanded", "true")
    expect(cleo.get_by_test_id("holding-sale-price")).to_have_text(["$50.00"])
    # One card is all of the valued collection: said in plain words; too little history for risk.
    expect(cleo.get_by_test_id("diversification-warning").first).to_contain_text(
        "Espeon Gold Star #16 is 100% of your collection's value — more than 25%")
    expect(cleo.get_by_test_id("risk-reason")).to_contain_text(
        "Risk figures are not shown yet: less than 50% of the value is at medium confidence")
    # Sorted by value, highest first (the unvalued last); by days to sell on a click.
    rows = cleo.get_by_test_id("holding")
    expect(rows.first).to_have_attribute("data-asset-id", first["asset_id"])
    cleo.get_by_test_id("sort-days").click()
    days = cleo.locator("th:has([data-testid=sort-days])")
    expect(days).to_have_attribute("aria-sort", "descending")

    # The second copy sells to Tess for $62.00 while Cleo's page is open: no reload.
    cleo.evaluate("window.__sameDocument = true")
    before = len(events)
    sell_for_cash(base, sam, tess, second["asset_id"], 6_200, "pf-2")
    until(lambda: (point_of(portfolio(base, cleo_token), first["asset_id"]) or 5_000) != 5_000,
          PROJECTION_MS / 1000)
    after = portfolio(base, cleo_token)
    now = point_of(after, first["asset_id"])
    assert now is not None and now > 5_000, after
    expect(held.get_by_test_id("holding-value")).to_have_text(money(now), timeout=PROJECTION_MS)
    expect(cleo.get_by_test_id("portfolio-total")).to_have_text(money(after["totals"]["value"]))
    expect(held.get_by_test_id("holding-pnl")).to_have_text(f"+{money(now - 5_000)}")
    # The listed sales were read again: both are behind the value now.
    expect(cleo.get_by_test_id("holding-sale-price")).to_have_text(["$62.00", "$50.00"],
                                                                    timeout=PROJECTION_MS)
    # Two sales within 90 days: medium confidence, so the risk panel (re-read after the event)
    # now shows its figures instead of the reason.
    assert after["risk"]["shown"] is True, after["risk"]
    expect(cleo.get_by_test_id("risk-volatility")).to_be_visible()
    expect(cleo.get_by_test_id("risk-reason")).to_have_count(0)
    assert cleo.evaluate("window.__sameDocument") is True
    assert len(events) > before, "no portfolio event reached the page after the sale"
    cleo.screenshot(path=SHOT, full_page=True)
    assert errors == []
