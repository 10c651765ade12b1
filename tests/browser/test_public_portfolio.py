"""A public portfolio in a real browser: a collector who bought a graded card makes her
portfolio public with the switch on #/portfolio; a visitor who is not signed in (a second
browser context) opens the link and sees her card valued at its price and the total, with no
cost or P/L column; once she makes it private again, the visitor sees "This collection is
private"."""

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
from tests.browser.test_auction_room import sign_up
from tests.browser.test_portfolio import point_of, portfolio, rest_user
from tests.browser.test_tokens import watch_console

pytestmark = pytest.mark.browser


def visibility(base: str, token: str) -> bool:
    response = requests.get(f"{base}/api/portfolio/visibility", timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()["public"]


def test_a_public_portfolio_is_seen_signed_out_without_money(start_server, new_page):
    server = start_server()
    base = server.base
    _, cleo = new_page()
    errors = watch_console(cleo)
    cleo_id = sign_up(cleo, base, "cleo_shows")
    cleo_token = token_of(cleo)
    sam = rest_user(base, "sam_sells_pub", 0)
    card = post(base, "/api/cards", sam[1], {
        "name": "Umbreon Gold Star", "set": "POP Series 5", "number": "17", "year": 2007,
        "category": "pokemon", "character": "Umbreon", "rarity": "Gold Star"})
    copy = mint_psa10(base, sam[1], card["card_id"], "80030001")
    sell_for_cash(base, sam, (cleo_id, cleo_token), copy["asset_id"], 5_000, "pub-1")
    until(lambda: point_of(portfolio(base, cleo_token), copy["asset_id"]) == 5_000,
          PROJECTION_MS / 1000)

    # A visitor, signed out, before she opts in: private.
    _, visitor = new_page()
    visitor.goto(f"{base}/#/users/{cleo_id}/portfolio")
    expect(visitor.get_by_test_id("public-portfolio-private")).to_contain_text(
        "This collection is private")

    cleo.get_by_test_id("nav-portfolio").click()
    switch = cleo.get_by_test_id("portfolio-public")
    expect(switch).to_be_enabled()
    expect(switch).not_to_be_checked()
    link = cleo.get_by_test_id("portfolio-public-link")
    expect(link).to_have_attribute("href", f"#/users/{cleo_id}/portfolio")
    switch.click()
    expect(cleo.get_by_test_id("portfolio-visibility")).to_have_attribute("data-public", "true")
    expect(switch).to_be_checked()
    assert visibility(base, cleo_token) is True

    visitor.reload()
    expect(visitor.get_by_test_id("public-portfolio-title")).to_have_text(
        "cleo_shows's collection")
    held = visitor.locator(f'[data-testid="holding"][data-asset-id="{copy["asset_id"]}"]')
    expect(held.get_by_test_id("holding-name")).to_have_text("Umbreon Gold Star #17")
    expect(held.get_by_test_id("holding-value")).to_have_text("$50.00")
    expect(visitor.get_by_test_id("public-portfolio-total")).to_have_text("$50.00")
    expect(visitor.get_by_test_id("holding-pnl")).to_have_count(0)
    expect(visitor.get_by_test_id("holdings").locator("thead")).not_to_contain_text(
        re.compile(r"Cost|P/L"))
    expect(visitor.get_by_test_id("allocation")).to_be_visible()
    expect(visitor.get_by_test_id("session-user")).to_have_count(0)  # signed out indeed
    visitor.screenshot(path="/tmp/ece-public-portfolio.png", full_page=True)
    cleo.screenshot(path="/tmp/ece-portfolio-switch.png")

    # Private again: the same link says so; the switch shows it after a reload too.
    switch.click()
    expect(cleo.get_by_test_id("portfolio-visibility")).to_have_attribute("data-public", "false")
    assert visibility(base, cleo_token) is False
    cleo.reload()
    expect(cleo.get_by_test_id("portfolio-public")).to_be_enabled()
    expect(cleo.get_by_test_id("portfolio-public")).not_to_be_checked()
    visitor.reload()
    expect(visitor.get_by_test_id("public-portfolio-private")).to_be_visible()
    assert errors == []
