"""A buyer's whole journey in a real browser: demo funds in the wallet, a bid that shows what
it costs with the buyer's premium, the win heard on the user channel, the balance down by
price + premium, and the card in "My cards" with its provenance verified in the page."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from testkit.client import PASSWORD
from tests.browser.test_auction_room import sign_up
from tests.browser.test_tokens import HAS_ED25519, watch_console

pytestmark = pytest.mark.browser


def list_graded(base: str, seller: str, duration_ms: int) -> dict:
    """A seller (over REST) adds a catalog card, mints a PSA 9 copy and auctions it."""
    response = requests.post(f"{base}/api/users", timeout=10,
                             json={"username": seller, "password": PASSWORD})
    assert response.status_code == 201, response.text
    headers = {"Authorization": f"Bearer {response.json()['token']}"}
    card = {"name": "Blastoise", "set": "Base Set", "number": "2", "year": 1999,
            "category": "pokemon", "character": "Blastoise"}
    response = requests.post(f"{base}/api/cards", headers=headers, json=card, timeout=10)
    assert response.status_code == 201, response.text
    body = {"card_id": response.json()["card_id"], "grader": "PSA", "grade": 9,
            "cert": "77001122"}
    response = requests.post(f"{base}/api/assets", headers=headers, json=body, timeout=10)
    assert response.status_code == 201, response.text
    body = {"asset_id": response.json()["asset_id"], "start_price": 1000,
            "duration_ms": duration_ms, "soft_close_ms": 0}
    response = requests.post(f"{base}/api/auctions", headers=headers, json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_deposit_win_and_see_the_card_verified(start_server, new_page):
    server = start_server(ECE_BUYER_PREMIUM_BPS="1000")  # a 10% buyer's premium
    base = server.base
    _, page = new_page()
    errors = watch_console(page)
    sign_up(page, base, "bea_buys", funds=0)

    page.get_by_test_id("nav-wallet").click()
    expect(page.get_by_test_id("wallet-balance")).to_have_text("$0.00")
    page.get_by_role("button", name="Add $1,000 demo funds").click()
    expect(page.get_by_test_id("wallet-balance")).to_have_text("$1,000.00")
    expect(page.get_by_test_id("header-balance")).to_contain_text("$1,000.00")
    expect(page.get_by_test_id("posting")).to_have_count(1)
    expect(page.get_by_test_id("posting").first.get_by_test_id("posting-amount")).to_contain_text(
        "1,000.00")

    view = list_graded(base, "sid_sells", duration_ms=8_000)
    page.goto(f"{base}/#/auction/{view['auction_id']}")
    expect(page.get_by_test_id("bid-amount")).to_have_value("10.00")
    expect(page.get_by_test_id("bid-you-pay")).to_contain_text("$11.00")
    page.get_by_test_id("bid-submit").click()
    expect(page.get_by_test_id("bid-feedback")).to_contain_text(
        "you're the high bidder at $10.00")

    # The close comes at the auction's end; the win and the payment arrive on the channel.
    expect(page.get_by_test_id("header-balance")).to_contain_text("$989.00", timeout=30_000)
    expect(page.get_by_test_id("notices-unread")).not_to_have_text("0")
    page.get_by_test_id("notices-bell").click()
    expect(page.locator('[data-testid="notice"][data-type="won"]')).to_have_count(1)

    page.get_by_test_id("nav-my-cards").click()
    card = page.locator(f'[data-testid="owned-card"][data-asset-id="{view["asset_id"]}"]')
    expect(card.get_by_test_id("owned-title")).to_have_text("Blastoise")
    expect(card.get_by_test_id("owned-grade")).to_have_text("PSA 9")
    card.get_by_test_id("owned-provenance").click()
    expect(page).to_have_url(re.compile(r"#/token/\d+$"))
    records = page.get_by_test_id("provenance-record")
    expect(records).to_have_count(2)
    transfer = page.locator('[data-testid="provenance-record"][data-kind="transfer"]')
    expect(transfer).to_have_attribute("data-seq", "2")
    badge = page.get_by_test_id("verify-badge")
    expect(badge).to_have_attribute(
        "data-state", "verified" if page.evaluate(HAS_ED25519) else "server-verified")
    expect(page.get_by_test_id("token-owner")).to_have_text("Owned by you")

    page.get_by_test_id("nav-wallet").click()
    expect(page.get_by_test_id("wallet-balance")).to_have_text("$989.00")
    settlement = page.get_by_test_id("posting").first
    expect(settlement.get_by_test_id("posting-cause")).to_contain_text(
        re.compile("settle|purchase|sale|won", re.IGNORECASE))
    expect(settlement.get_by_test_id("posting-amount")).to_contain_text("11.00")
    page.screenshot(path="/tmp/ece-wallet.png", full_page=True)
    assert errors == []
