"""`ece verify-provenance`: fetch a token's chain and check it as an outsider would, with
the public key only (`market.provenance.verify_chain`). Exit 0 when it holds, 1 when any
record is broken, 2 when the chain could not be read."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from market.provenance import owner_of, verify_chain

TIMEOUT_S = 10.0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return json.load(response)


def verify_token(base: str, token_id: str, public_key: str | None = None) -> int:
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        print(f"--url must be http(s): {base}", file=sys.stderr)
        return 2
    base = base.rstrip("/")
    try:
        key = public_key or _get(f"{base}/api/tokens/key")["public_key"]
        chain = _get(f"{base}/api/tokens/{urllib.parse.quote(token_id, safe='')}/provenance")
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read the chain of {token_id} from {base}: {exc}", file=sys.stderr)
        return 2
    records = chain.get("records") if isinstance(chain, dict) else None
    if not isinstance(records, list):
        print("the answer holds no list of records", file=sys.stderr)
        return 2
    problems = verify_chain(token_id, records, key)
    for problem in problems:
        print(f"record {problem.index} (seq {problem.seq}): {problem.kind}: {problem.message}")
    if problems:
        print(f"BROKEN: {len(problems)} problem(s) in {len(records)} record(s)")
        return 1
    print(f"OK: {len(records)} record(s), signed by {key}; owner now: {owner_of(records)}")
    return 0
