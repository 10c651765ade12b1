"""Selling a slabbed card in a real browser: find it in the catalog, give its grader, grade
and certificate, list it; the live list shows its slab and its card page counts the copy."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.test_auction_room import sign_up
from tests.browser.test_tokens import watch_console

pytestmark = pytest.mark.browser


def test_mint_a_catalog_card_and_list_it(start_server, new_page):
    server = start_server()
    base = server.base
    _, page = new_page()
    errors = watch_console(page)
    sign_up(page, base, "sal_sells", funds=0)
    headers = {"Authorization": "Bearer " + page.evaluate(
        "JSON.parse(localStorage.getItem('ece.session')).token")}
    card = requests.post(f"{base}/api/cards", headers=headers, timeout=10, json={
        "name": "Squirtle", "set": "Base Set", "number": "63/102", "year": 1999,
        "category": "pokemon", "character": "Squirtle"}).json()

    page.goto(f"{base}/#/sell")
    page.get_by_label("Search the catalog").fill("squirt")
    result = page.locator(f'[data-testid="catalog-result"][data-card-id="{card["card_id"]}"]')
    result.click()
    expect(page.get_by_test_id("chosen-card")).to_contain_text("Squirtle")
    page.get_by_label("Grader").select_option("PSA")
    page.get_by_label("Grade", exact=True).select_option("9")
    page.get_by_label("Certificate number").fill("63102009")
    page.get_by_test_id("sell-submit").click()
    expect(page).to_have_url(re.compile(r"#/auction/a_"))

    page.goto(f"{base}/#/?q=squirtle")
    tile = page.get_by_test_id("auction-item").first
    expect(tile.get_by_test_id("item-grade")).to_have_text("PSA 9")
    tile.get_by_test_id("item-card-link").click()
    expect(page.get_by_test_id("card-name")).to_contain_text("Squirtle")
    row = page.locator('[data-testid="population-row"][data-grader="PSA"]')
    expect(row).to_contain_text("1")
    assert errors == []
