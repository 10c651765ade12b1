"""Tokens and their provenance: ids, signed hash-chained records, verification, metadata.

Pure: no I/O, no clock (every `at` is passed in), no key file (the signer is injected).

**Token id.** `token_id_for(asset_id)`: the SHA-256 digest of the asset id's UTF-8 bytes read
as a big-endian unsigned integer, in decimal (no sign, no leading zeros): a uint256.

**Record.** Exactly `{seq, kind, from, to, reason, ref, price, at, prev_hash, hash, signature}`.
`seq` 1, 2, ... without gaps. `kind`: `mint` (first record only, `from` null); `transfer`
(`from` the current owner, `to` another user, `reason` `auction` | `offer` | `admin`, `ref` the
auction or offer id, optional for `admin`); `redeem` (the card leaves the vault, the token is
burned: `from` the owner, `to` null; nothing may follow). `reason` is null except on
transfers; `ref` on a mint or redeem is an optional free reference. `price`: integer cents
(0..2**53) on a transfer that had one, else null. `at`: ms since the Unix epoch (need not
increase: hosts' clocks differ slightly). User ids and refs are non-empty printable strings
(no control characters). `prev_hash`: the previous record's `hash`; 64 zeros for the mint.

**Hash.** `hash` = lowercase hex SHA-256 of the canonical encoding of the record *without*
`hash` and `signature` and *with* `"token_id"` (the decimal string) added, so a chain cannot
be replayed onto another token. Canonical encoding: the UTF-8 bytes of the JSON text with keys
sorted by code point, no whitespace (separators `,` and `:`), non-ASCII characters as
themselves (the only escapes are `\\"` and `\\\\`), integers in plain decimal, and `null`.
Values are only strings, integers up to 2**53 and null, so this is Python's
`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()`,
JavaScript's `JSON.stringify` of the object with keys inserted in sorted order, and RFC 8785.
E.g. `{"at":1,"from":null,"kind":"mint","prev_hash":"00…00","price":null,"reason":null,
"ref":null,"seq":1,"to":"u1","token_id":"42"}`.

**Signature.** Standard base64 (padded) of the Ed25519 signature over the 32 raw bytes of the
hash (not its hex text). The public key is published as base64 of its raw 32 bytes; with it
and the records anyone can verify a chain offline (`verify_chain`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from market.catalog import normal_grade
from market.errors import ASSET_REDEEMED, INVALID, NOT_OWNER, MarketError
from market.money import is_amount

KINDS = ("mint", "transfer", "redeem")
REASONS = ("auction", "offer", "admin")
FIELDS = ("seq", "kind", "from", "to", "reason", "ref", "price", "at", "prev_hash", "hash",
          "signature")
GENESIS = "0" * 64
Record = dict[str, Any]


def token_id_for(asset_id: str) -> str:
    """The token id of an asset: SHA-256 of its UTF-8 id as a big-endian uint256, in decimal."""
    return str(int.from_bytes(hashlib.sha256(asset_id.encode("utf-8")).digest(), "big"))


def is_token_id(value: object) -> bool:
    """A canonical decimal uint256 string ("0" or no leading zero, < 2**256)."""
    return (isinstance(value, str) and value.isascii() and value.isdigit()
            and (value == "0" or value[0] != "0") and len(value) <= 78 and int(value) < 2**256)


def canonical(obj: dict[str, Any]) -> bytes:
    """The canonical encoding (see the module docstring)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(token_id: str, record: Record) -> str:
    """Hex SHA-256 over the canonical encoding of the record without hash and signature."""
    body = {k: v for k, v in record.items() if k not in ("hash", "signature")}
    return hashlib.sha256(canonical({**body, "token_id": token_id})).hexdigest()


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...
    def public_key_bytes(self) -> bytes: ...


class Ed25519Signer:
    """The exchange's signing key; the outer layers load or create its 32 raw bytes."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw,
                                       ser.NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)


def public_key_b64(signer: Signer) -> str:
    """What `GET /api/tokens/key` publishes as `public_key`."""
    return base64.b64encode(signer.public_key_bytes()).decode("ascii")


@dataclass(frozen=True)
class Problem:
    """One break in a chain: `index` in the list, the record's `seq` as stated (if an int)."""

    index: int
    seq: int | None
    kind: str  # empty, shape, seq, prev_hash, hash, signature, owner, after_redeem
    message: str


def _is_id(value: object) -> bool:
    return isinstance(value, str) and value != "" and value.isprintable()


def _shape_problems(rec: Record) -> list[str]:
    """What is malformed in one record, on its own (not in relation to the chain)."""
    if set(rec) != set(FIELDS):
        return [f"fields are {sorted(rec)}, expected {sorted(FIELDS)}"]
    out = []
    kind, reason, ref, price = rec["kind"], rec["reason"], rec["ref"], rec["price"]
    if not (isinstance(rec["seq"], int) and not isinstance(rec["seq"], bool) and rec["seq"] > 0):
        out.append(f"seq {rec['seq']!r} is not a positive integer")
    if kind not in KINDS:
        out.append(f"kind {kind!r} is not one of {KINDS}")
    if not is_amount(rec["at"]):
        out.append(f"at {rec['at']!r} is not a time in ms")
    for key in ("from", "to"):
        if rec[key] is not None and not _is_id(rec[key]):
            out.append(f"{key} {rec[key]!r} is not a user id")
    if ref is not None and not _is_id(ref):
        out.append(f"ref {ref!r} is not an id")
    if price is not None and not (is_amount(price) and kind == "transfer"):
        out.append(f"price {price!r} is not an amount on a transfer")
    if kind == "transfer":
        if reason not in REASONS:
            out.append(f"reason {reason!r} is not one of {REASONS}")
        elif reason != "admin" and ref is None:
            out.append(f"a transfer by {reason} needs its ref")
        if rec["to"] is None:
            out.append("a transfer needs a to")
    elif reason is not None:
        out.append(f"a {kind} has no reason")
    if kind == "mint" and (rec["from"] is not None or rec["to"] is None):
        out.append("a mint is from null to its first owner")
    if kind == "redeem" and rec["to"] is not None:
        out.append("a redeem is to null")
    for key in ("prev_hash", "hash"):
        if not (isinstance(rec[key], str) and re.fullmatch("[0-9a-f]{64}", rec[key])):
            out.append(f"{key} is not 64 lowercase hex digits")
    return out


def _step_problems(prev: Record | None, rec: Record, burned: bool) -> list[tuple[str, str]]:
    """How `rec` fails to follow `prev` (None: it should be the mint): (kind, message).

    `burned`: a redeem came before `rec`."""
    if prev is None:
        out = [] if rec.get("seq") == 1 else [("seq", f"seq {rec.get('seq')!r}, expected 1")]
        if rec.get("kind") != "mint":
            out.append(("owner", "the first record is not a mint"))
        if rec.get("prev_hash") != GENESIS:
            out.append(("prev_hash", "the mint's prev_hash is not 64 zeros"))
        return out
    out = []
    if burned:
        out.append(("after_redeem", "a record after the redeem (the token is burned)"))
    prev_seq = prev.get("seq")
    if isinstance(prev_seq, int) and rec.get("seq") != prev_seq + 1:
        out.append(("seq", f"seq {rec.get('seq')!r}, expected {prev_seq + 1}"))
    if rec.get("prev_hash") != prev.get("hash"):
        out.append(("prev_hash", "prev_hash is not the previous record's hash"))
    if rec.get("kind") == "mint":
        out.append(("owner", "a second mint"))
    elif rec.get("from") != prev.get("to"):
        out.append(("owner", f"from {rec.get('from')!r} is not the owner {prev.get('to')!r}"))
    elif rec.get("kind") == "transfer" and rec.get("to") == rec.get("from"):
        out.append(("owner", "a transfer to the owner"))
    return out


def verify_chain(token_id: str, records: list[Record], public_key: str | bytes) -> list[Problem]:
    """Every break in a token's chain (empty: valid), given the public key (base64 or raw).

    Checks each record's shape, seq, prev_hash, hash (recomputed) and signature, that each
    record continues from the previous one's owner, and that nothing follows a redeem. A
    chain cut short after a record is a valid chain: compare its length elsewhere.
    """
    raw = base64.b64decode(public_key, validate=True) if isinstance(public_key, str) else public_key
    key = Ed25519PublicKey.from_public_bytes(raw)
    if not records:
        return [Problem(0, None, "empty", "no records: a token starts with its mint")]
    problems: list[Problem] = []
    prev: Record | None = None
    burned = False
    for index, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(Problem(index, None, "shape", "not an object"))
            prev = {}
            continue
        seq = rec.get("seq") if isinstance(rec.get("seq"), int) else None
        problems += [Problem(index, seq, "shape", m) for m in _shape_problems(rec)]
        problems += [Problem(index, seq, k, m) for k, m in _step_problems(prev, rec, burned)]
        try:
            expected = record_hash(token_id, rec)
        except (TypeError, ValueError) as exc:  # not JSON, or unencodable text
            problems.append(Problem(index, seq, "hash", f"cannot be encoded: {exc}"))
            expected = None
        if expected is not None and rec.get("hash") != expected:
            problems.append(Problem(index, seq, "hash", "hash does not match the record"))
        if not _signature_ok(key, rec.get("hash"), rec.get("signature")):
            problems.append(Problem(index, seq, "signature", "bad signature"))
        prev, burned = rec, burned or rec.get("kind") == "redeem"
    return problems


def _signature_ok(key: Ed25519PublicKey, digest: object, signature: object) -> bool:
    if not (isinstance(digest, str) and isinstance(signature, str)):
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), bytes.fromhex(digest))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def owner_of(records: list[Record]) -> str | None:
    """The current owner (the last record's `to`); None once redeemed or with no records.

    Trusts the records: verify them first when they came from elsewhere.
    """
    owner: str | None = records[-1]["to"] if records else None
    return owner


def _sealed(token_id: str, rec: Record, signer: Signer) -> Record:
    digest = record_hash(token_id, rec)
    signature = base64.b64encode(signer.sign(bytes.fromhex(digest))).decode("ascii")
    return {**rec, "hash": digest, "signature": signature}


def mint_record(token_id: str, to: str, at: int, signer: Signer, ref: str | None = None) -> Record:
    """The first record of a token: minted to its first owner."""
    return next_record(token_id, None, "mint", frm=None, to=to, ref=ref, at=at, signer=signer)


def next_record(token_id: str, tail: Record | None, kind: str, *, frm: str | None,
                to: str | None, reason: str | None = None, ref: str | None = None,
                price: int | None = None, at: int, signer: Signer) -> Record:
    """The signed record that follows `tail` (the chain's last record; None for the mint).

    Refused `INVALID` (malformed, or a mint after the first record), `NOT_OWNER` (`frm` is
    not the current owner, or a transfer to the owner) or `ASSET_REDEEMED` (the token is
    burned).
    """
    if not is_token_id(token_id):
        raise MarketError(INVALID, f"token_id {token_id!r} is not a decimal uint256")
    rec: Record = {"seq": tail["seq"] + 1 if tail else 1, "kind": kind, "from": frm, "to": to,
                   "reason": reason, "ref": ref, "price": price, "at": at,
                   "prev_hash": tail["hash"] if tail else GENESIS, "hash": GENESIS,
                   "signature": ""}
    shape = _shape_problems(rec)
    if (tail is None) != (kind == "mint"):
        shape.append("a mint comes first, and only first")
    if shape:
        raise MarketError(INVALID, "; ".join(shape))
    burned = tail is not None and tail.get("kind") == "redeem"
    for what, message in _step_problems(tail, rec, burned):
        if what == "after_redeem":
            raise MarketError(ASSET_REDEEMED, "the token was redeemed (burned)")
        raise MarketError(NOT_OWNER if what == "owner" else INVALID, message)
    return _sealed(token_id, rec, signer)


def _number(value: Any) -> Any:
    """A grade in its one form (10.0 -> 10); any other value as it is."""
    return normal_grade(value) if isinstance(value, float) else value


def _year_unless_in_set(card: dict[str, Any]) -> Any:
    """The year, unless the set's name says it already ("2003 Topps Chrome")."""
    year = card.get("year")
    return None if year is not None and str(year) in str(card.get("set") or "") else year


def token_metadata(card: dict[str, Any], asset: dict[str, Any], token_id: str,
                   external_url: str, image_url: str) -> dict[str, Any]:
    """ERC-721 Metadata JSON (OpenSea's standard) for one graded copy of a card."""
    grader, grade = asset.get("grader"), _number(asset.get("grade"))
    slab = f"{grader} {grade}" if grader != "RAW" and grade is not None else "ungraded"
    title = " ".join(str(p) for p in (_year_unless_in_set(card), card.get("set"),
                                      card.get("name")) if p not in (None, ""))
    if card.get("number") not in (None, ""):
        title += f" #{card['number']}"
    traits = (("Category", card.get("category")), ("Set", card.get("set")),
              ("Number", card.get("number")), ("Year", card.get("year")),
              ("Player", card.get("player")), ("Character", card.get("character")),
              ("Variant", card.get("variant")), ("Rarity", card.get("rarity")),
              ("Grader", grader), ("Grade", grade if grader != "RAW" else None),
              ("Cert", asset.get("cert")))
    cert = f", certificate {asset['cert']}" if asset.get("cert") else ""
    return {
        "name": f"{title} — {slab}",
        "description": (f"{title}, {slab}{cert}: one physical card held in the ECE vault. "
                        f"Token {token_id} of the Elite Card Exchange; its provenance is "
                        f"signed with the exchange's Ed25519 key."),
        "image": image_url,
        "external_url": external_url,
        "attributes": [{"trait_type": name, "value": _number(value)}
                       for name, value in traits if value not in (None, "")],
    }
