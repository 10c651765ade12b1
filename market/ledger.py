"""The money ledger: accounts, balanced journal entries, and the rules that build and fold them.

Pure: no I/O and no clock (`at` is passed in, epoch milliseconds). Amounts are integer cents.
Accounts are a user's cash account `user:<user_id>`, the exchange's `fees`, and `external`
(the outside world: a deposit moves money from it, a withdrawal back to it, so it runs
negative). An entry's postings sum to zero; its `entry_id` is derived from its cause and
cause key, so a retried movement has the id of the first one and is applied once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

from market.errors import INSUFFICIENT_FUNDS, INVALID, MarketError
from market.money import MAX_AMOUNT, is_amount

__all__ = [
    "CAUSES",
    "DEPOSIT",
    "EXTERNAL",
    "FEE",
    "FEES",
    "OFFER",
    "SETTLEMENT",
    "WITHDRAWAL",
    "Balances",
    "Entry",
    "Posting",
    "buyer_total",
    "deposit",
    "entry_id_for",
    "fee",
    "is_account",
    "public_ref",
    "settlement",
    "user_account",
    "user_key",
    "withdrawal",
]

FEES = "fees"
EXTERNAL = "external"
USER_PREFIX = "user:"
DEPOSIT = "deposit"
WITHDRAWAL = "withdrawal"
SETTLEMENT = "settlement"
FEE = "fee"
OFFER = "offer"
CAUSES: tuple[str, ...] = (DEPOSIT, WITHDRAWAL, SETTLEMENT, FEE, OFFER)
BPS_SCALE = 10_000  # basis points in 100 %
MAX_ID_LEN = 160  # a user id, req_id or auction id; a cause key is at most two of them
_MAX_CAUSE_KEY_LEN = 2 * MAX_ID_LEN + 1


def _invalid(field_name: str, message: str) -> MarketError:
    return MarketError(INVALID, f"{field_name}: {message}", field=field_name)


def _is_id(value: object, max_len: int = MAX_ID_LEN) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= max_len


def _is_time(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AMOUNT


def _check_user(name: str, user: object) -> str:
    # No ':' so that "user:<id>" and a user-scoped key "<id>:<key>" parse one way only.
    if not _is_id(user) or ":" in user:
        raise _invalid(name, f"must be a user id (1..{MAX_ID_LEN} characters, no ':')")
    return user


def _check_positive(name: str, amount: object) -> int:
    if not is_amount(amount) or amount == 0:
        raise _invalid(name, "must be an integer number of cents in 1..2**53")
    return amount


def user_account(user_id: str) -> str:
    """The cash account of a user."""
    return USER_PREFIX + _check_user("user", user_id)


def is_account(account: object) -> TypeGuard[str]:
    """True for `fees`, `external` and `user:<user_id>` with a well-formed user id."""
    if account in (FEES, EXTERNAL):
        return True
    if not isinstance(account, str) or not account.startswith(USER_PREFIX):
        return False
    user = account.removeprefix(USER_PREFIX)
    return _is_id(user) and ":" not in user


def user_key(user: str, key: str) -> str:
    """A request key (req_id) scoped to its user: the cause key of a deposit or withdrawal."""
    if not _is_id(key):
        raise _invalid("key", f"must be a string of 1..{MAX_ID_LEN} characters")
    return f"{_check_user('user', user)}:{key}"


def public_ref(cause: str, cause_key: str) -> str:
    """What a client calls an entry's cause: the auction or offer id, or for a deposit or
    withdrawal the request's own req_id (without the user scope of its cause key)."""
    if cause in (DEPOSIT, WITHDRAWAL):
        return cause_key.partition(":")[2]
    return cause_key


def entry_id_for(cause: str, cause_key: str) -> str:
    """The id of the entry recording `cause` for `cause_key` (32 hex digits of SHA-256).

    Look it up before building a retried withdrawal or settlement: the balance it was checked
    against may have changed since, and the first outcome stands.
    """
    return hashlib.sha256(f"{cause}\n{cause_key}".encode()).hexdigest()[:32]


def fee(amount: int, bps: int) -> int:
    """`amount * bps // 10000`: a fee in cents, rounded down."""
    if not is_amount(amount):
        raise _invalid("amount", "must be an integer number of cents in 0..2**53")
    if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= BPS_SCALE:
        raise _invalid("bps", f"must be an integer in 0..{BPS_SCALE}")
    return amount * bps // BPS_SCALE


def buyer_total(amount: int, premium_bps: int) -> int:
    """What a buyer pays for `amount`, the buyer's premium included: what a bid needs available."""
    return amount + fee(amount, premium_bps)


class Posting(NamedTuple):
    account: str
    amount: int  # cents: positive credits the account, negative debits it


@dataclass(frozen=True)
class Entry:
    """One balanced journal entry. Construction validates it; `entry_id` is derived."""

    cause: str
    cause_key: str
    at: int
    postings: tuple[Posting, ...]
    entry_id: str = field(init=False)

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise _invalid("cause", f"must be one of {', '.join(CAUSES)}")
        if not _is_id(self.cause_key, _MAX_CAUSE_KEY_LEN):
            raise _invalid("cause_key", f"must be a string of 1..{_MAX_CAUSE_KEY_LEN} characters")
        if not _is_time(self.at):
            raise _invalid("at", "must be integer epoch milliseconds")
        if not isinstance(self.postings, (tuple, list)):
            raise _invalid("postings", "must be a list of [account, amount] pairs")
        postings: list[Posting] = []
        for pair in self.postings:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise _invalid("postings", "must be a list of [account, amount] pairs")
            account, amount = pair
            if not is_account(account):
                raise _invalid("postings", f"unknown account {str(account)[:200]!r}")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 \
                    or abs(amount) > MAX_AMOUNT:
                raise _invalid("postings", "an amount is a non-zero integer within ±2**53")
            postings.append(Posting(account, amount))
        if len({p.account for p in postings}) != len(postings):
            raise _invalid("postings", "an account appears twice")
        if sum(p.amount for p in postings) != 0:
            raise _invalid("postings", "postings must sum to zero")
        object.__setattr__(self, "postings", tuple(postings))
        object.__setattr__(self, "entry_id", entry_id_for(self.cause, self.cause_key))

    def amount_of(self, account: str) -> int:
        """The posting to `account` (0 when it has none)."""
        return next((p.amount for p in self.postings if p.account == account), 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: postings as [account, amount] lists."""
        return {"entry_id": self.entry_id, "cause": self.cause, "cause_key": self.cause_key,
                "at": self.at, "postings": [[p.account, p.amount] for p in self.postings]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        """Rebuild and revalidate a stored entry; a stored `entry_id` must match its cause."""
        try:
            entry = cls(d["cause"], d["cause_key"], d["at"], d["postings"])
        except KeyError as exc:
            raise _invalid(str(exc.args[0]), "missing") from None
        if "entry_id" in d and d["entry_id"] != entry.entry_id:
            raise _invalid("entry_id", "does not match cause and cause_key")
        return entry


def deposit(user: str, amount: int, key: str, at: int) -> Entry:
    """Money comes in: `external` -> the user. `key` is the request's req_id."""
    amount = _check_positive("amount", amount)
    return Entry(DEPOSIT, user_key(user, key), at,
                 (Posting(user_account(user), amount), Posting(EXTERNAL, -amount)))


def withdrawal(user: str, amount: int, key: str, at: int, balance: int) -> Entry:
    """Money goes out: the user -> `external`, refused beyond `balance` (what is available)."""
    amount = _check_positive("amount", amount)
    cause_key = user_key(user, key)
    if amount > balance:
        raise MarketError(INSUFFICIENT_FUNDS, "withdrawal exceeds the available balance",
                          available=balance, required=amount)
    return Entry(WITHDRAWAL, cause_key, at,
                 (Posting(user_account(user), -amount), Posting(EXTERNAL, amount)))


def settlement(auction_id: str, buyer: str, seller: str, price: int, seller_fee_bps: int,
               buyer_premium_bps: int, at: int, buyer_available: int, *,
               cause: str = SETTLEMENT) -> Entry:
    """A sale's money, one entry: the buyer pays price + premium, the seller gets price - fee,
    `fees` gets fee + premium (zero legs left out; a sale at 0 moves nothing).

    Refused INSUFFICIENT_FUNDS when the buyer's available balance is short (the sale is then
    `payment_failed`). `cause` is SETTLEMENT (keyed by auction id) or OFFER (by offer id).
    """
    if cause not in (SETTLEMENT, OFFER):
        raise _invalid("cause", f"must be {SETTLEMENT} or {OFFER}")
    if not _is_id(auction_id):
        raise _invalid("auction_id", f"must be a string of 1..{MAX_ID_LEN} characters")
    buyer_acc = USER_PREFIX + _check_user("buyer", buyer)
    seller_acc = USER_PREFIX + _check_user("seller", seller)
    if buyer_acc == seller_acc:
        raise _invalid("buyer", "the buyer is the seller")
    if not is_amount(price):
        raise _invalid("price", "must be an integer number of cents in 0..2**53")
    seller_fee, premium = fee(price, seller_fee_bps), fee(price, buyer_premium_bps)
    total = price + premium
    if total > MAX_AMOUNT:
        raise _invalid("price", "price plus premium exceeds 2**53")
    if total > buyer_available:
        raise MarketError(INSUFFICIENT_FUNDS, "the buyer cannot pay price plus premium",
                          available=buyer_available, required=total)
    legs = ((buyer_acc, -total), (seller_acc, price - seller_fee), (FEES, seller_fee + premium))
    return Entry(cause, auction_id, at, tuple(Posting(a, n) for a, n in legs if n != 0))


class Balances:
    """Balances folded from entries, each applied once (by entry_id).

    Refuses, changing nothing, an entry that would take a user account below 0 or above
    2**53, or `fees` below 0; `external` may go negative. `total()` is always 0.
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._balances: dict[str, int] = {}
        self._applied: set[str] = set()
        for entry in entries:
            self.apply(entry)

    def apply(self, entry: Entry) -> bool:
        """Apply `entry`; False (nothing changes) when an entry with its id was applied."""
        if entry.entry_id in self._applied:
            return False
        for account, amount in entry.postings:
            current = self._balances.get(account, 0)
            after = current + amount
            if after < 0 and account != EXTERNAL:
                raise MarketError(INSUFFICIENT_FUNDS, f"{account} would go negative",
                                  account=account, available=current, required=-amount)
            if after > MAX_AMOUNT and account.startswith(USER_PREFIX):
                raise _invalid("amount", f"{account} would exceed 2**53")
        for account, amount in entry.postings:
            after = self._balances.get(account, 0) + amount
            if after:
                self._balances[account] = after
            else:
                self._balances.pop(account, None)
        self._applied.add(entry.entry_id)
        return True

    def __contains__(self, entry_id: object) -> bool:
        """Whether an entry with this id has been applied."""
        return entry_id in self._applied

    def balance(self, account: str) -> int:
        return self._balances.get(account, 0)

    def accounts(self) -> dict[str, int]:
        """Every account with a non-zero balance."""
        return dict(self._balances)

    def total(self) -> int:
        """The sum over all accounts: 0 on a sound ledger."""
        return sum(self._balances.values())
