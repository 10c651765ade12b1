"""A trade between two collectors in two browsers: Ann offers her card and $2.00 for Ben's
(from his card's token page); Ben's inbox shows it live and he counters in one click, asking
$5.00; Ann's inbox shows the counter live and she accepts; both pages show it settled, the
cards and cash have moved, both tokens' provenance ends with the offer's transfer, and Ann's
"My cards" (open in another tab) shows Ben's card at once."""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.test_auction_room import sign_up
from tests.browser.test_tokens import watch_console

pytestmark = pytest.mark.browser

FUNDS = 1_000_000  # what sign_up deposits: $10,000.00
SHOT = "/tmp/ece-offers.png"


def token_of(page: Page) -> str:
    return json.loads(page.evaluate("localStorage.getItem('ece.session')"))["token"]


def mint(base: str, token: str, title: str, grade: str) -> dict:
    response = requests.post(f"{base}/api/assets", timeout=10,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"title": title, "set": "Base Set", "grade": grade})
    assert response.status_code == 201, response.text
    return response.json()


def get(base: str, path: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{base}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def pick(page: Page, side: str, asset_id: str):
    return page.get_by_test_id(f"composer-{side}").locator(
        f'[data-testid="pick"][data-asset-id="{asset_id}"] input')


def an_offer(page: Page, offer_id: str):
    return page.locator(f'[data-testid="offer"][data-offer-id="{offer_id}"]')


def test_offer_counter_and_accept_live_in_two_browsers(start_server, new_page):
    server = start_server()
    base = server.base
    ann_context, ann = new_page()
    _, ben = new_page()
    ann_errors, ben_errors = watch_console(ann), watch_console(ben)
    ann_id = sign_up(ann, base, "ann_trades")
    ben_id = sign_up(ben, base, "ben_trades")
    ann_token, ben_token = token_of(ann), token_of(ben)
    charizard = mint(base, ann_token, "Charizard", "PSA 9")
    blastoise = mint(base, ben_token, "Blastoise", "PSA 10")
    expect(ann.get_by_test_id("header-balance")).to_contain_text("$10,000.00")

    # Ben waits on his inbox: nothing yet.
    ben.get_by_test_id("nav-offers").click()
    expect(ben.get_by_test_id("offers-tab-in")).to_have_attribute("aria-selected", "true")
    expect(ben.get_by_test_id("offers-empty")).to_be_visible()

    # Ann opens Ben's card and makes an offer: the composer comes addressed to him, his card wanted.
    ann.goto(f"{base}/#/token/{blastoise['token_id']}")
    ann.get_by_test_id("token-make-offer").click()
    expect(ann).to_have_url(re.compile(r"#/offers/new\?to="))
    expect(pick(ann, "want", blastoise["asset_id"])).to_be_checked()
    pick(ann, "give", charizard["asset_id"]).check()
    ann.get_by_label("I add cash").check()
    ann.get_by_label("Amount").fill("2.00")
    ann.get_by_label("Message").fill("My Charizard and $2 for your Blastoise?")
    expect(ann.get_by_test_id("composer-summary")).to_have_text(
        "You give: Charizard + $2.00 · You get: Blastoise")
    ann.get_by_test_id("composer-submit").click()
    expect(ann).to_have_url(re.compile(r"#/offers\?box=out$"))
    sent = ann.get_by_test_id("offer").first
    expect(sent.get_by_test_id("offer-status")).to_have_text("Active")
    first_id = sent.get_attribute("data-offer-id")
    assert first_id and first_id.startswith("of_")

    # Ben's inbox shows it live (no reload), from his side; the header counts it.
    offer = an_offer(ben, first_id)
    expect(offer.get_by_test_id("offer-you-get")).to_contain_text("Charizard")
    expect(offer.get_by_test_id("offer-you-get").get_by_test_id("offer-cash")).to_have_text(
        "+ $2.00")
    expect(offer.get_by_test_id("offer-you-give")).to_contain_text("Blastoise")
    expect(offer.get_by_test_id("offer-message")).to_contain_text("My Charizard and $2")
    expect(offer.get_by_test_id("offer-expiry")).to_have_text(
        re.compile(r"^Expires in (6d 23h|7d 00h)$"))
    expect(offer.get_by_test_id("offer-cancel")).to_be_hidden()
    expect(ben.get_by_test_id("offers-badge")).to_have_text("1")
    expect(ben.get_by_test_id("offers-announce")).to_contain_text("New offer from")

    # Ann watches her inbox for an answer.
    ann.get_by_test_id("offers-tab-in").click()
    expect(ann).to_have_url(re.compile(r"#/offers\?box=in$"))
    expect(ann.get_by_test_id("offers-empty")).to_be_visible()

    # Ben counters in one click: the composer comes turned to his side; he asks $5.00 instead.
    offer.get_by_test_id("offer-counter").click()
    expect(ben).to_have_url(re.compile(rf"#/offers/{first_id}/counter$"))
    expect(ben.get_by_test_id("composer-to-fixed")).to_contain_text(ann_id[-6:])
    expect(pick(ben, "give", blastoise["asset_id"])).to_be_checked()
    expect(pick(ben, "want", charizard["asset_id"])).to_be_checked()
    expect(ben.get_by_test_id("composer-cash-want")).to_be_checked()
    expect(ben.get_by_test_id("composer-cash")).to_have_value("2.00")
    ben.get_by_test_id("composer-cash").fill("5.00")
    expect(ben.get_by_test_id("composer-summary")).to_have_text(
        "You give: Blastoise · You get: Charizard + $5.00")
    ben.get_by_test_id("composer-submit").click()
    expect(ben).to_have_url(re.compile(r"#/offers\?box=out$"))
    counter = ben.get_by_test_id("offer").first
    expect(counter.get_by_test_id("offer-status")).to_have_text("Active")
    counter_id = counter.get_attribute("data-offer-id")
    assert counter_id and counter_id != first_id
    expect(counter.get_by_test_id("offer-parent")).to_have_attribute("href", f"#/offers/{first_id}")
    expect(ben.get_by_test_id("offers-badge")).to_be_hidden()  # Ann's offer is countered

    # Ann's inbox shows the counter live; her badge counts it.
    answer = an_offer(ann, counter_id)
    expect(answer.get_by_test_id("offer-status")).to_have_text("Active")
    expect(answer.get_by_test_id("offer-you-give")).to_contain_text("Charizard")
    expect(answer.get_by_test_id("offer-you-give").get_by_test_id("offer-cash")).to_have_text(
        "+ $5.00")
    expect(answer.get_by_test_id("offer-you-get")).to_contain_text("Blastoise")
    expect(ann.get_by_test_id("offers-badge")).to_have_text("1")

    # Ann's cards, open in another tab, follow the swap without a reload.
    cards = ann_context.new_page()
    cards_errors = watch_console(cards)
    cards.goto(f"{base}/#/me/cards")
    owned = cards.get_by_test_id("owned-card")
    expect(owned).to_have_count(1)
    expect(owned.first).to_have_attribute("data-asset-id", charizard["asset_id"])

    answer.get_by_test_id("offer-accept").click()
    expect(answer.get_by_test_id("offer-status")).to_have_text("Settled")
    expect(answer.get_by_test_id("offer-accept")).to_be_hidden()
    expect(counter.get_by_test_id("offer-status")).to_have_text("Settled")  # Ben's page, live
    expect(ann.get_by_test_id("offers-badge")).to_be_hidden()
    expect(ann.get_by_test_id("header-balance")).to_contain_text("$9,995.00")
    expect(ben.get_by_test_id("header-balance")).to_contain_text("$10,005.00")
    expect(owned).to_have_count(1)
    expect(owned.first).to_have_attribute("data-asset-id", blastoise["asset_id"])
    expect(owned.first.get_by_test_id("owned-title")).to_have_text("Blastoise")
    ann.screenshot(path=SHOT, full_page=True)

    # The exchange agrees: owners swapped, $5.00 moved, the chains end with the offer's transfer.
    assert get(base, f"/api/assets/{charizard['asset_id']}")["owner_id"] == ben_id
    assert get(base, f"/api/assets/{blastoise['asset_id']}")["owner_id"] == ann_id
    assert get(base, "/api/wallet", ann_token)["balance"] == FUNDS - 500
    assert get(base, "/api/wallet", ben_token)["balance"] == FUNDS + 500
    for asset, owner in ((charizard, ben_id), (blastoise, ann_id)):
        last = get(base, f"/api/tokens/{asset['token_id']}/provenance")["records"][-1]
        assert (last["kind"], last["to"], last["reason"], last["ref"]) == (
            "transfer", owner, "offer", counter_id)
    first = get(base, f"/api/offers/{first_id}", ann_token)
    assert (first["status"], first["child_id"]) == ("countered", counter_id)

    # Ann's sent offer reads countered, linking to the counter that settled.
    ann.get_by_test_id("offers-tab-out").click()
    mine = an_offer(ann, first_id)
    expect(mine.get_by_test_id("offer-status")).to_have_text("Countered")
    mine.get_by_test_id("offer-child").click()
    expect(ann).to_have_url(re.compile(rf"#/offers/{counter_id}$"))
    expect(an_offer(ann, counter_id).get_by_test_id("offer-status")).to_have_text("Settled")

    # And in "My cards" of the page she traded from.
    ann.get_by_test_id("nav-my-cards").click()
    card = ann.locator(f'[data-testid="owned-card"][data-asset-id="{blastoise["asset_id"]}"]')
    expect(card.get_by_test_id("owned-title")).to_have_text("Blastoise")
    expect(ann.locator(f'[data-testid="owned-card"][data-asset-id="{charizard["asset_id"]}"]')).to_have_count(0)
    assert ann_errors + ben_errors + cards_errors == []
