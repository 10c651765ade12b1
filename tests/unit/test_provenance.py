"""Token provenance (market/provenance.py): signed hash chains, tampering, metadata."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.errors import ASSET_REDEEMED, INVALID, NOT_OWNER, MarketError
from market.provenance import (
    FIELDS,
    GENESIS,
    Ed25519Signer,
    Record,
    canonical,
    is_token_id,
    mint_record,
    next_record,
    owner_of,
    public_key_b64,
    record_hash,
    token_id_for,
    token_metadata,
    verify_chain,
)
from testkit.provenance import outsider_verifies

SIGNER = Ed25519Signer.from_private_bytes(bytes(range(32)))
KEY = public_key_b64(SIGNER)
TOKEN = token_id_for("a1")
USERS = ("u1", "u2", "u3", "ü4")


def transfer(tail: Record, frm: str, to: str, *, reason: str = "auction", ref: str | None = "x",
             price: int | None = 1000, at: int = 2000, token: str = TOKEN) -> Record:
    return next_record(token, tail, "transfer", frm=frm, to=to, reason=reason, ref=ref,
                       price=price, at=at, signer=SIGNER)


def redeem(tail: Record, frm: str, at: int = 9000) -> Record:
    return next_record(TOKEN, tail, "redeem", frm=frm, to=None, at=at, signer=SIGNER)


def sample_chain() -> list[Record]:
    chain = [mint_record(TOKEN, "u1", 1000, SIGNER)]
    chain.append(transfer(chain[-1], "u1", "u2", ref="auc1", price=12_500, at=2000))
    chain.append(transfer(chain[-1], "u2", "ü4", reason="offer", ref="off1", price=0, at=3000))
    chain.append(transfer(chain[-1], "ü4", "u1", reason="admin", ref=None, price=None, at=4000))
    chain.append(redeem(chain[-1], "u1", at=5000))
    return chain


def kinds(problems: list[Any]) -> set[str]:
    return {p.kind for p in problems}


@st.composite
def chains(draw: st.DrawFn) -> list[Record]:
    owner = draw(st.sampled_from(USERS))
    at = draw(st.integers(0, 2**40))
    chain = [mint_record(TOKEN, owner, at, SIGNER)]
    for _ in range(draw(st.integers(0, 6))):
        to = draw(st.sampled_from([u for u in USERS if u != owner]))
        reason = draw(st.sampled_from(["auction", "offer", "admin"]))
        ref = draw(st.text(min_size=1, max_size=8).filter(str.isprintable))
        price = draw(st.none() | st.integers(0, 2**53))
        at = draw(st.integers(0, 2**53))
        chain.append(transfer(chain[-1], owner, to, reason=reason, ref=ref, price=price, at=at))
        owner = to
    if draw(st.booleans()):
        chain.append(redeem(chain[-1], owner, at=draw(st.integers(0, 2**53))))
    return chain


# A chain with and without a redeem, the same chain as JSON, for the external verifier.

def test_mint_transfers_redeem_verify() -> None:
    chain = sample_chain()
    assert verify_chain(TOKEN, chain, KEY) == []
    assert verify_chain(TOKEN, chain, SIGNER.public_key_bytes()) == []
    assert [r["seq"] for r in chain] == [1, 2, 3, 4, 5]
    assert chain[0]["prev_hash"] == GENESIS and chain[0]["from"] is None
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(chain))
    assert all(tuple(r) == FIELDS for r in chain)
    assert owner_of(chain[:-1]) == "u1" and owner_of(chain) is None and owner_of([]) is None


@settings(max_examples=60, deadline=None)
@given(chains())
def test_any_valid_chain_verifies_and_its_owner_is_the_last_to(chain: list[Record]) -> None:
    assert verify_chain(TOKEN, chain, KEY) == []
    assert owner_of(chain) == chain[-1]["to"]
    if chain[-1]["kind"] != "redeem":
        assert owner_of(chain) in USERS


TAMPER: dict[str, list[Any]] = {
    "seq": [0, 7, "1", None], "kind": ["transfer", "redeem", "mint", "burn"],
    "from": ["u3", None, "zz"], "to": ["u3", None, "zz"], "reason": ["offer", "admin", None],
    "ref": ["other", None], "price": [1, 999_999, None], "at": [0, 1, 10**12],
    "prev_hash": [GENESIS, "f" * 64], "hash": ["0" * 63 + "1"], "signature": ["AAAA", ""],
}


@settings(max_examples=150, deadline=None)
@given(chains(), st.data())
def test_tampering_with_any_field_of_any_record_is_detected(chain: list[Record],
                                                            data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(chain) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    value = data.draw(st.sampled_from(TAMPER[field]).filter(lambda v: v != chain[index][field]))
    bad = copy.deepcopy(chain)
    bad[index][field] = value
    problems = verify_chain(TOKEN, bad, KEY)
    assert problems and any(p.index == index for p in problems)


@settings(max_examples=60, deadline=None)
@given(chains(), st.data())
def test_reordering_dropping_or_swapping_signatures_is_detected(chain: list[Record],
                                                                data: st.DataObject) -> None:
    if len(chain) < 2:
        return
    i, j = data.draw(st.lists(st.integers(0, len(chain) - 1), min_size=2, max_size=2,
                              unique=True))
    swapped = copy.deepcopy(chain)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert kinds(verify_chain(TOKEN, swapped, KEY)) >= {"seq", "prev_hash"}
    dropped = chain[:i] + chain[i + 1:]
    if i < len(chain) - 1:  # dropping the last record leaves a valid, shorter chain
        assert kinds(verify_chain(TOKEN, dropped, KEY)) & {"seq", "prev_hash"}
    resigned = copy.deepcopy(chain)
    resigned[i]["signature"], resigned[j]["signature"] = chain[j]["signature"], chain[i][
        "signature"]
    assert kinds(verify_chain(TOKEN, resigned, KEY)) == {"signature"}


def test_a_rewritten_record_with_a_recomputed_hash_still_fails_its_signature() -> None:
    chain = sample_chain()
    chain[1]["price"] = 1
    assert kinds(verify_chain(TOKEN, chain, KEY)) == {"hash"}
    chain[1]["hash"] = record_hash(TOKEN, chain[1])
    problems = verify_chain(TOKEN, chain, KEY)
    assert {(p.index, p.kind) for p in problems} == {(1, "signature"), (2, "prev_hash")}


def test_another_key_or_another_token_fails() -> None:
    chain = sample_chain()
    other = public_key_b64(Ed25519Signer.generate())
    assert [p.kind for p in verify_chain(TOKEN, chain, other)] == ["signature"] * len(chain)
    assert [p.kind for p in verify_chain(token_id_for("a2"), chain, KEY)] == ["hash"] * len(chain)


def test_records_after_a_redeem_and_owner_breaks_are_reported() -> None:
    chain = sample_chain()
    forged = dict(chain[-1], seq=6, kind="transfer", reason="admin", to="u2", prev_hash=chain[-1][
        "hash"])
    forged = {**forged, "hash": record_hash(TOKEN, forged)}
    forged["signature"] = base64.b64encode(SIGNER.sign(bytes.fromhex(forged["hash"]))).decode()
    problems = verify_chain(TOKEN, [*chain, forged], KEY)
    assert {(p.index, p.kind) for p in problems} == {(5, "after_redeem"), (5, "owner")}
    assert verify_chain(TOKEN, [], KEY)[0].kind == "empty"
    assert kinds(verify_chain(TOKEN, chain[1:], KEY)) >= {"seq", "prev_hash", "owner"}
    assert kinds(verify_chain(TOKEN, [chain[0], "junk", *chain[1:]], KEY)) >= {"shape"}
    extra = copy.deepcopy(chain)
    extra[2]["note"] = "x"
    assert kinds(verify_chain(TOKEN, extra, KEY)) == {"shape", "hash"}


def test_transfer_by_a_non_owner_and_anything_after_redeem_are_refused() -> None:
    chain = sample_chain()
    with pytest.raises(MarketError) as err:
        transfer(chain[1], "u1", "u3")
    assert err.value.code == NOT_OWNER
    with pytest.raises(MarketError) as err:
        transfer(chain[1], "u2", "u2")
    assert err.value.code == NOT_OWNER
    with pytest.raises(MarketError) as err:
        redeem(chain[1], "u3")
    assert err.value.code == NOT_OWNER
    for attempt in (lambda: transfer(chain[-1], "u1", "u2"), lambda: redeem(chain[-1], "u1")):
        with pytest.raises(MarketError) as err:
            attempt()
        assert err.value.code == ASSET_REDEEMED


@pytest.mark.parametrize("change", [
    {"reason": "gift"}, {"reason": None}, {"ref": None}, {"ref": ""}, {"price": -1},
    {"price": 2**53 + 1}, {"price": True}, {"at": -1}, {"at": 1.5}, {"to": None},
    {"token": "007"}, {"token": str(2**256)},
])
def test_malformed_transfers_are_invalid(change: dict[str, Any]) -> None:
    args: dict[str, Any] = {"reason": "offer", "ref": "o1", "price": 5, "at": 1, "to": "u2"}
    args.update(change)
    with pytest.raises(MarketError) as err:
        transfer(sample_chain()[0], "u1", **args)
    assert err.value.code == INVALID


def test_mints_only_first_and_redeems_carry_no_price() -> None:
    chain = sample_chain()
    for bad in (lambda: next_record(TOKEN, chain[0], "mint", frm=None, to="u2", at=1,
                                    signer=SIGNER),
                lambda: next_record(TOKEN, chain[0], "redeem", frm="u1", to=None, price=5,
                                    at=1, signer=SIGNER),
                lambda: next_record(TOKEN, None, "transfer", frm="u1", to="u2", reason="admin",
                                    at=1, signer=SIGNER)):
        with pytest.raises(MarketError) as err:
            bad()
        assert err.value.code == INVALID


# Pinned: the canonical encoding, the token id rule and Ed25519 (deterministic) cannot drift.

def test_known_answers() -> None:
    record = mint_record(TOKEN, "ü1", 1_700_000_000_000, SIGNER)
    body = {k: v for k, v in record.items() if k not in ("hash", "signature")}
    expected = (
        '{"at":1700000000000,"from":null,"kind":"mint","prev_hash":"' + GENESIS + '",'
        '"price":null,"reason":null,"ref":null,"seq":1,"to":"ü1","token_id":"' + TOKEN + '"}'
    ).encode("utf-8")
    assert canonical({**body, "token_id": TOKEN}) == expected
    assert hashlib.sha256(expected).hexdigest() == record["hash"]
    assert TOKEN == ("11098616469832018032794213383175262943049100226648537005223886982516"
                     "6557303060")
    assert record["hash"] == "9e3ba94b5945a866212494ed0300d812d88be98d0ff315bd98ce8efc22c48318"
    assert record["signature"] == ("5dOfngjJ3zbcHqww1sbL4AnZVURQfs8xzBWmIHW4UKGNQboPEbfqM0yw/j7s"
                                   "k5Gh7T+z4neGoh4SHMoEJDMkCg==")
    assert KEY == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="


def test_token_ids_are_decimal_uint256() -> None:
    ids = {token_id_for(f"a{i}") for i in range(200)}
    assert len(ids) == 200 and all(is_token_id(t) and int(t) < 2**256 for t in ids)
    assert not any(is_token_id(v) for v in ("", "01", "-1", "1.0", str(2**256), 5, "١٢"))
    assert is_token_id("0") and is_token_id(str(2**256 - 1))


def _external_verify(public_key_b64_text: str, body: str) -> bool:
    """An outside verifier, given the JSON a client would receive."""
    doc = json.loads(body)
    return outsider_verifies(doc["token_id"], doc["records"], public_key_b64_text)


def test_an_external_verifier_needs_only_the_public_key_and_the_json() -> None:
    body = json.dumps({"token_id": TOKEN, "records": sample_chain()})
    assert _external_verify(KEY, body)
    assert not _external_verify(KEY, body.replace("12500", "12501"))
    assert not _external_verify(public_key_b64(Ed25519Signer.generate()), body)


def test_token_metadata_follows_the_opensea_standard() -> None:
    card = {"card_id": "c1", "name": "Charizard", "set": "Base Set", "number": "4",
            "year": 1999, "category": "pokemon", "character": "Charizard", "player": None,
            "variant": "Holo", "rarity": "Rare"}
    meta = token_metadata(card, {"grader": "PSA", "grade": 10.0, "cert": "12345678"}, TOKEN,
                          "https://ece.example/tokens/1", "https://ece.example/img.svg")
    assert meta["name"] == "1999 Base Set Charizard #4 — PSA 10"
    assert meta["image"] == "https://ece.example/img.svg"
    assert meta["external_url"] == "https://ece.example/tokens/1"
    assert TOKEN in meta["description"] and "12345678" in meta["description"]
    traits = {a["trait_type"]: a["value"] for a in meta["attributes"]}
    assert traits == {"Category": "pokemon", "Set": "Base Set", "Number": "4", "Year": 1999,
                      "Character": "Charizard", "Variant": "Holo", "Rarity": "Rare",
                      "Grader": "PSA", "Grade": 10, "Cert": "12345678"}
    assert all(set(a) == {"trait_type", "value"} for a in meta["attributes"])
    raw = token_metadata(card, {"grader": "RAW", "cert": ""}, TOKEN, "e", "i")
    assert raw["name"].endswith("— ungraded")
    assert "Grade" not in {a["trait_type"] for a in raw["attributes"]}
    assert json.loads(json.dumps(meta)) == meta


def test_a_set_named_with_its_year_does_not_repeat_it() -> None:
    from market.provenance import token_metadata

    card = {"name": "Dwyane Wade", "set": "2003 Topps Chrome", "number": "115", "year": 2003}
    asset = {"grader": "PSA", "grade": 10, "cert": "1"}
    assert token_metadata(card, asset, "1", "u", "i")["name"] == (
        "2003 Topps Chrome Dwyane Wade #115 — PSA 10")
    plain = {**card, "set": "Topps Chrome"}
    assert token_metadata(plain, asset, "1", "u", "i")["name"].startswith("2003 Topps Chrome ")
