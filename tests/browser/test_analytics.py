"""Prices in a real browser: a collector sells a graded card to another for cash; the market
page shows the index chart, the card among the movers and the sale in the ticker; the card
page shows its candlestick chart, its value and the sale. Then a second copy sells while both
pages are open: the card page's sales list and chart, and the market page's ticker, take it
live (no reload). The signed-in "My activity" page says honestly that there is nothing yet."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.test_auction_room import sign_up
from tests.browser.test_tokens import watch_console

pytestmark = pytest.mark.browser

SHOT_MARKET = "/tmp/ece-analytics-market.png"
SHOT_CARD = "/tmp/ece-analytics-card.png"
PROJECTION_MS = 30_000  # a sale reaches the projections' results within a few seconds


def until(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> None:
    """Poll `condition` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(every_s)


def token_of(page: Page) -> str:
    return json.loads(page.evaluate("localStorage.getItem('ece.session')"))["token"]


def post(base: str, path: str, token: str, body: dict) -> dict:
    response = requests.post(f"{base}{path}", json=body, timeout=20,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 201), response.text
    return response.json()


def mint_psa10(base: str, token: str, card_id: str, cert: str) -> dict:
    return post(base, "/api/assets", token,
                {"card_id": card_id, "grader": "PSA", "grade": 10, "cert": cert})


def sell_for_cash(base: str, seller: tuple[str, str], buyer: tuple[str, str], asset_id: str,
                  cents: int, req: str) -> None:
    """The buyer offers `cents` for the seller's card (a cash-only consideration: a sale at
    that price); the seller accepts; the swap settles."""
    (seller_id, seller_token), (_, buyer_token) = seller, buyer
    offer = post(base, "/api/offers", buyer_token, {
        "req_id": f"{req}-offer", "to_id": seller_id,
        "give": {"assets": [], "cash": cents}, "want": {"assets": [asset_id], "cash": 0}})
    done = post(base, f"/api/offers/{offer['offer_id']}/accept", seller_token,
                {"req_id": f"{req}-accept"})
    assert done["status"] in ("accepted", "settled"), done


def test_market_and_card_prices_update_live(start_server, new_page):
    server = start_server()
    base = server.base
    _, ann = new_page()
    _, ben = new_page()
    ann_errors, ben_errors = watch_console(ann), watch_console(ben)
    ann_id = sign_up(ann, base, "ann_prices")
    ben_id = sign_up(ben, base, "ben_prices")
    ann_token, ben_token = token_of(ann), token_of(ben)
    ann_side, ben_side = (ann_id, ann_token), (ben_id, ben_token)

    # Ann's catalog card and a PSA 10 copy of it, which Ben buys for $50.00.
    card = post(base, "/api/cards", ann_token, {
        "name": "Umbreon Gold Star", "set": "POP Series 5", "number": "17", "year": 2007,
        "category": "pokemon", "character": "Umbreon", "rarity": "Gold Star"})
    card_id = card["card_id"]
    first = mint_psa10(base, ann_token, card_id, "70010001")
    sell_for_cash(base, ann_side, ben_side, first["asset_id"], 5_000, "sale-1")

    # The projections take the sale in: the market's index, movers and tape, the card's values.
    # (The market's tape, index and movers are written together: the tape holding the sale
    # means the index and movers count it too.)
    def projected() -> bool:
        tape = requests.get(f"{base}/api/market/sales", timeout=10).json()["sales"]
        values = requests.get(f"{base}/api/cards/{card_id}/values", timeout=10).json()["values"]
        return (any(s["card_id"] == card_id for s in tape)
                and any(v["grader"] == "PSA" and v["count"] == 1 for v in values))

    # (Polled from here: a page's wait_for_function takes an async predicate's pending
    # Promise for a true answer, and went on before the results were there.)
    until(projected, PROJECTION_MS / 1000)

    # The market page: the index chart (its method said plainly), the card among the movers,
    # the sale in the ticker.
    ben.get_by_test_id("nav-market").click()
    expect(ben.get_by_test_id("market-page")).to_be_visible()
    chart = ben.get_by_test_id("index-chart")
    expect(chart).to_have_attribute("data-state", "ready")
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    expect(ben.get_by_test_id("index-empty")).to_be_hidden()
    expect(ben.get_by_test_id("index-method")).to_contain_text(
        re.compile(r"(Median index \(too few repeat sales\)|Repeat-sales index).*100 = "))
    expect(ben.get_by_test_id("index-changes").get_by_test_id("index-change-row").first).to_be_visible()
    mover = ben.get_by_test_id("movers-most_traded").locator(
        f'[data-testid="mover"][data-card-id="{card_id}"]')
    expect(mover).to_contain_text("Umbreon Gold Star")
    expect(mover).to_contain_text("PSA 10")
    ticker = ben.get_by_test_id("ticker")
    expect(ticker).to_have_attribute("aria-live", "polite")
    expect(ticker.locator(f'[data-testid="ticker-sale"][data-card-id="{card_id}"]')).to_have_count(1)
    ben.screenshot(path=SHOT_MARKET, full_page=True)

    # Ann follows the mover to the card page: the chart of its only grade sold, its value, the sale.
    ann.get_by_test_id("nav-market").click()
    ann.get_by_test_id("movers-most_traded").locator(
        f'[data-testid="mover"][data-card-id="{card_id}"] [data-testid="mover-link"]').click()
    expect(ann).to_have_url(re.compile(rf"#/card/{card_id}$"))
    price_chart = ann.get_by_test_id("price-chart")
    expect(price_chart).to_have_attribute("data-state", "ready")
    expect(price_chart).to_have_attribute("data-segment", "PSA|10")
    expect(price_chart).to_have_attribute("data-candles", "1")
    expect(price_chart).to_have_attribute("data-last-close", "5000")
    expect(ann.get_by_test_id("price-empty")).to_be_hidden()
    expect(ann.get_by_test_id("segment-select")).to_have_value("PSA|10")
    row = ann.locator('[data-testid="value-row"][data-segment="PSA|10"]')
    expect(row.get_by_test_id("value-value")).to_have_text("$50.00")
    expect(row.get_by_test_id("value-count")).to_have_text("1")
    sales = ann.get_by_test_id("sale")
    expect(sales).to_have_count(1)
    expect(sales.first.get_by_test_id("sale-price")).to_have_text("$50.00")
    expect(sales.first).to_have_attribute("data-suspect", "false")

    # A second PSA 10 copy sells for $62.00 while both pages are open: no reload, both update.
    ann.evaluate("window.__sameDocument = true")
    ben.evaluate("window.__sameDocument = true")
    second = mint_psa10(base, ann_token, card_id, "70010002")
    sell_for_cash(base, ann_side, ben_side, second["asset_id"], 6_200, "sale-2")

    expect(sales).to_have_count(2, timeout=PROJECTION_MS)
    expect(sales.first).to_have_attribute("data-price", "6200")
    expect(sales.first.get_by_test_id("sale-price")).to_have_text("$62.00")
    expect(price_chart).to_have_attribute("data-last-close", "6200")  # series.update, live
    expect(price_chart).to_have_attribute("data-state", "ready")
    expect(row.get_by_test_id("value-count")).to_have_text("2")  # the values, re-read
    # The grade's trend above the chart (two sales today: 30 days' count and money traded,
    # no value 7 days ago to compare with) and the moving averages' legend under it.
    trend = ann.get_by_test_id("price-trend")
    expect(trend.get_by_test_id("trend-count_30d")).to_contain_text("2")
    expect(trend.get_by_test_id("trend-volume_30d")).to_contain_text("$112.00")
    expect(trend.get_by_test_id("trend-change_7d")).to_contain_text("no data")
    expect(ann.get_by_test_id("price-legend")).to_contain_text("7-day average")
    newest = ticker.get_by_test_id("ticker-sale").first
    expect(newest).to_have_attribute("data-card-id", card_id)
    expect(newest).to_have_attribute("data-price", "6200")
    expect(ticker.locator(f'[data-testid="ticker-sale"][data-card-id="{card_id}"]')).to_have_count(2)
    assert ann.evaluate("window.__sameDocument") is True
    assert ben.evaluate("window.__sameDocument") is True
    ann.screenshot(path=SHOT_CARD, full_page=True)

    # My activity: signed in, no auctions bid on: an honest empty state.
    ann.get_by_test_id("nav-activity").click()
    expect(ann.get_by_test_id("activity-page")).to_be_visible()
    expect(ann.get_by_test_id("activity-empty")).to_contain_text("No activity yet")
    assert ann_errors + ben_errors == []
