"""A token chain checked as an outsider would: from docs/protocol.md's description only, with
json, hashlib, base64 and an Ed25519 implementation — deliberately not `market.provenance`, so
the tests catch the server and its own verifier drifting together."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def outsider_verifies(token_id: str, records: list[dict[str, Any]], public_key_b64: str) -> bool:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    previous = "0" * 64
    for seq, record in enumerate(records, start=1):
        body = {k: v for k, v in record.items() if k not in ("hash", "signature")}
        body["token_id"] = token_id
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if record["seq"] != seq or record["prev_hash"] != previous or digest != record["hash"]:
            return False
        try:
            key.verify(base64.b64decode(record["signature"]), bytes.fromhex(digest))
        except InvalidSignature:
            return False
        previous = digest
    return True
