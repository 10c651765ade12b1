"""My cards and a token's provenance in a real browser: a graded copy minted over REST shows
in "My cards" with its slab, and its chain is verified in the page with WebCrypto (SHA-256 and
Ed25519), caught when tampered with, and reported honestly where Ed25519 is missing."""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import Page, Route, expect

from tests.browser.test_auction_room import sign_up

pytestmark = pytest.mark.browser

MY_CARDS_SHOT = "/tmp/ece-my-cards.png"
TOKEN_SHOT = "/tmp/ece-token.png"

# Does this browser's WebCrypto have Ed25519 (Chrome 137+, Firefox 129+, Safari 17+)?
HAS_ED25519 = """async () => {
  try {
    await crypto.subtle.importKey("raw", new Uint8Array(32), {name: "Ed25519"}, false, ["verify"]);
    return true;
  } catch (e) { return e.name !== "NotSupportedError"; }
}"""

# An older browser: WebCrypto without Ed25519.
WITHOUT_ED25519 = """(() => {
  const importKey = crypto.subtle.importKey.bind(crypto.subtle);
  crypto.subtle.importKey = (format, key, alg, ...rest) => (alg && alg.name === "Ed25519")
    ? Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"))
    : importKey(format, key, alg, ...rest);
})();"""


def watch_console(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def mint_graded(base: str, token: str) -> dict:
    """A catalog card and a PSA 10 copy of it, over REST as the signed-in user."""
    headers = {"Authorization": f"Bearer {token}"}
    card = {"name": "Charizard", "set": "Base Set", "number": "4", "year": 1999,
            "category": "pokemon", "character": "Charizard", "rarity": "Holo Rare"}
    response = requests.post(f"{base}/api/cards", headers=headers, json=card, timeout=10)
    assert response.status_code == 201, response.text
    body = {"card_id": response.json()["card_id"], "grader": "PSA", "grade": 10,
            "cert": "48151623"}
    response = requests.post(f"{base}/api/assets", headers=headers, json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_my_cards_and_a_provenance_verified_in_the_browser(start_server, new_page):
    server = start_server()
    base = server.base
    _, page = new_page()
    errors = watch_console(page)

    # Signed out: no "My cards" link, and the page asks to sign in.
    page.goto(f"{base}/#/me/cards")
    expect(page.get_by_test_id("my-cards-signin")).to_be_visible()
    expect(page.get_by_test_id("nav-my-cards")).to_be_hidden()
    sign_up(page, base, "cara_collects")
    session = json.loads(page.evaluate("localStorage.getItem('ece.session')"))
    expect(page.get_by_test_id("nav-my-cards")).to_be_visible()

    page.get_by_test_id("nav-my-cards").click()
    expect(page.get_by_test_id("my-cards-empty")).to_be_visible()
    asset = mint_graded(base, session["token"])
    token_id = asset["token_id"]
    page.get_by_test_id("my-cards-refresh").click()
    card = page.locator(f'[data-testid="owned-card"][data-asset-id="{asset["asset_id"]}"]')
    expect(card.get_by_test_id("owned-title")).to_have_text("Charizard")
    expect(card.get_by_test_id("owned-grade")).to_have_text("PSA 10")
    expect(card.get_by_test_id("owned-set")).to_have_text("Base Set · 1999")
    expect(card.get_by_test_id("owned-token")).to_have_attribute("title", f"Token {token_id}")
    expect(card.get_by_test_id("owned-listed")).to_have_count(0)
    expect(page.get_by_test_id("my-cards-empty")).to_be_hidden()
    page.screenshot(path=MY_CARDS_SHOT)

    # Its provenance: one mint, to us, verified here with the published key.
    card.get_by_test_id("owned-provenance").click()
    expect(page).to_have_url(re.compile(rf"#/token/{token_id}$"))
    badge = page.get_by_test_id("verify-badge")
    if page.evaluate(HAS_ED25519):
        expect(badge).to_have_attribute("data-state", "verified")
        expect(page.get_by_test_id("verify-title")).to_have_text("Verified in your browser")
    else:  # an older Chromium: hashes here, signatures by the server, and said so
        expect(badge).to_have_attribute("data-state", "server-verified")
        expect(page.get_by_test_id("verify-title")).to_have_text(
            "Verified by the exchange's server")
    records = page.get_by_test_id("provenance-record")
    expect(records).to_have_count(1)
    expect(records.first).to_have_attribute("data-kind", "mint")
    expect(records.first.get_by_test_id("record-kind")).to_have_text("Minted")
    expect(records.first.get_by_test_id("record-who")).to_have_text("new → you")
    expect(page.get_by_test_id("token-name")).to_have_text("1999 Base Set Charizard #4 — PSA 10")
    expect(page.get_by_test_id("token-owner")).to_have_text("Owned by you")
    expect(page.get_by_test_id("token-attributes")).to_contain_text("Cert48151623")
    key = requests.get(f"{base}/api/tokens/key", timeout=10).json()["public_key"]
    expect(page.get_by_test_id("token-key")).to_have_attribute("title", key)
    expect(page.get_by_test_id("verify-command")).to_have_text(
        f"ece verify-provenance {token_id} --url {base}")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=token-image]').naturalWidth > 0")
    page.screenshot(path=TOKEN_SHOT, full_page=True)

    # A chain edited on the way (a proxy, a compromised mirror) is caught in the page.
    def tampered(route: Route) -> None:
        body = route.fetch().json()
        body["records"][0]["to"] = "u_mallory"
        route.fulfill(json=body)

    page.route(re.compile(r"/api/tokens/\d+/provenance$"), tampered)
    page.reload()
    expect(badge).to_have_attribute("data-state", "broken")
    expect(page.get_by_test_id("verify-title")).to_have_text(
        "Broken: hash does not match the record")
    expect(page.get_by_test_id("verify-problem")).to_have_text(
        ["Record 1: hash does not match the record"])
    expect(records.first).to_have_class(re.compile("timeline__item--broken"))
    expect(page.get_by_test_id("token-owner")).to_have_text(
        "Owner unknown: the chain does not verify")
    page.screenshot(path="/tmp/ece-token-broken.png", full_page=True)
    page.unroute(re.compile(r"/api/tokens/\d+/provenance$"))

    # A browser without Ed25519 checks the hashes and asks the server for the signatures;
    # when the server cannot answer, it says what it could and could not check.
    page.add_init_script(WITHOUT_ED25519)
    page.reload()
    expect(badge).to_have_attribute("data-state", "server-verified")
    expect(page.get_by_test_id("verify-title")).to_have_text("Verified by the exchange's server")
    page.route(re.compile(r"/api/tokens/\d+/verify$"), lambda route: route.abort())
    page.reload()
    expect(badge).to_have_attribute("data-state", "partial")
    expect(page.get_by_test_id("verify-title")).to_have_text(
        "Hashes verified; signatures not checkable in this browser")
    assert [e for e in errors if "ERR_FAILED" not in e] == []
