"""The error registry (market/errors.py) is the one list of codes, and docs/protocol.md agrees."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from actors.messages import Refused, refusal, refused
from gateway.rest import ApiError, error_body
from market.errors import (
    BID_TOO_LOW,
    ERRORS,
    NOT_HERE,
    MarketError,
    http_status,
)

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "docs" / "protocol.md"
LAYERS = ("market", "storage", "actors", "gateway")
PUBLIC = {code for code, entry in ERRORS.items() if not entry.internal}
# Functions and exceptions whose first argument is an error code.
TAKES_A_CODE = {"refused", "error_dict", "error_body", "ApiError", "ProtocolError",
                "Conflict", "MarketError"}


def doc_table() -> dict[str, tuple[str, str]]:
    """code -> (HTTP cell, meaning) from the "Error codes" table of docs/protocol.md."""
    section = PROTOCOL.read_text(encoding="utf-8").split("### Error codes", 1)[1]
    section = section.split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([A-Z_]+)` \| ([^|]+) \| (.*) \|", line.strip())
        if match:
            rows[match[1]] = (match[2].strip(), match[3])
    return rows


def test_the_doc_table_lists_exactly_the_codes_a_client_can_receive() -> None:
    rows = doc_table()
    assert set(rows) - PUBLIC == set(), "in docs/protocol.md but not in the registry (or internal)"
    assert PUBLIC - set(rows) == set(), "in the registry but missing from docs/protocol.md"
    text = PROTOCOL.read_text(encoding="utf-8")
    for code, entry in ERRORS.items():
        if entry.internal:
            assert f"`{code}`" not in text, f"internal code {code} is documented for clients"


def test_the_doc_table_states_the_registry_http_statuses() -> None:
    for code, (http, meaning) in doc_table().items():
        if http != "—":  # "—": sent on the WebSocket only
            assert int(http) == ERRORS[code].status, code
        for stated in re.findall(r"REST[^:;()]*: (\d{3})", meaning):
            assert int(stated) == ERRORS[code].status, (code, meaning)


def test_the_doc_names_the_transient_codes() -> None:
    text = " ".join(PROTOCOL.read_text(encoding="utf-8").split())
    sentence = re.search(r"([^.]*) are transient", text)
    assert sentence is not None
    named = set(re.findall(r"`([A-Z_]+)`", sentence[1]))
    assert named == {c for c in PUBLIC if ERRORS[c].transient}
    for code, (_, meaning) in doc_table().items():
        if "retry with the same `req_id`" in meaning:
            assert ERRORS[code].transient, code


def test_http_statuses_are_unchanged() -> None:
    # What gateway/rest.py's STATUS_OF_CODE and the middleware answered before the registry.
    before = {
        "INVALID": 400, "UNAUTHORIZED": 401, "NOT_OWNER": 403, "NOT_SELLER": 403,
        "FORBIDDEN": 403, "AUCTION_NOT_FOUND": 404, "ASSET_NOT_FOUND": 404, "NOT_FOUND": 404,
        "USERNAME_TAKEN": 409, "ASSET_LISTED": 409, "HAS_BIDS": 409, "AUCTION_NOT_LIVE": 409,
        "LIMIT_EXCEEDED": 409, "RATE_LIMITED": 429, "OVERLOADED": 503, "UNAVAILABLE": 503,
        "INTERNAL": 500,
    }
    assert {code: http_status(code) for code in before} == before
    # Not mapped before: the default. (Codes declared since state their own status.)
    unmapped = ("USER_EXISTS", "AUCTION_EXISTS", "BID_TOO_LOW", "SELF_BID", "NOT_HERE",
                "ASSET_EXISTS", "ASSET_MOVED")
    for code in unmapped:
        assert http_status(code) == 400, code
    assert http_status("SOMETHING_NEW") == 400


def test_every_entry_is_complete() -> None:
    for code, entry in ERRORS.items():
        assert entry.code == code and re.fullmatch(r"[A-Z][A-Z_]+", code)
        assert 400 <= entry.status <= 599
        assert entry.description and "\n" not in entry.description


def test_one_shape_for_errors() -> None:
    assert refused(NOT_HERE, "elsewhere") == Refused({"code": "NOT_HERE", "message": "elsewhere"})
    assert refused(BID_TOO_LOW, "low", min_bid=5).error == {
        "code": "BID_TOO_LOW", "message": "low", "min_bid": 5}
    assert refusal(MarketError(BID_TOO_LOW, "low", min_bid=5)) == refused(
        BID_TOO_LOW, "low", min_bid=5)
    assert error_body("INVALID", "bad") == {"error": {"code": "INVALID", "message": "bad"}}
    assert ApiError("RATE_LIMITED", "slow down", 1.5).status == 429


def _code_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in ERRORS:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in TAKES_A_CODE and isinstance(node.args[0].value, str):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                             f"({node.args[0].value!r}, ...)")
    return found


def test_codes_are_spelled_only_in_the_registry() -> None:
    registry = ROOT / "market" / "errors.py"
    found = [hit for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py"))
             if path != registry for hit in _code_literals(path)]
    assert not found, "use the constants of market.errors:\n" + "\n".join(found)
