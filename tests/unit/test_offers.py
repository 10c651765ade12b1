"""Trade offers' pure rules (market.offers): the terms a side may carry, who may do what to
an offer and when, counters, expiry to the millisecond, how commands about an offer that is
over are answered, the stored record, the swap's cash entry - and a Hypothesis state machine
of random commands by random users against the state machine's invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from market import ledger
from market.errors import (
    FORBIDDEN,
    INVALID,
    LIMIT_EXCEEDED,
    OFFER_NOT_ACTIVE,
    OFFER_NOT_FOUND,
    MarketError,
)
from market.offers import (
    ACCEPT,
    ACCEPTED,
    ACTIVE,
    CANCEL,
    CANCELLED,
    COUNTER,
    COUNTERED,
    DECLINE,
    DECLINED,
    DEFAULT_EXPIRY_MS,
    EXPIRED,
    FAILED,
    FINAL,
    HOUR_MS,
    INVALIDATED,
    MAX_ASSETS_PER_SIDE,
    MAX_EXPIRY_MS,
    MIN_EXPIRY_MS,
    SETTLED,
    STATUSES,
    Offer,
    Side,
    Terms,
    counter_id_for,
    is_offer_id,
    offer_id_for,
    public,
    second_chance_id,
)

NOW = 1_700_000_000_000
U1, U2, U3 = "u1", "u2", "u3"


def terms(now: int = NOW, **body: Any) -> Terms:
    body.setdefault("give", {"assets": ["a1"]})
    return Terms.parse(body, now)


def make(frm: str = U1, to: str = U2, req_id: str = "r1", now: int = NOW,
         **body: Any) -> Offer:
    return Offer(offer_id_for(frm, req_id), frm, to, terms(now, **body), now)


def code_of(excinfo: pytest.ExceptionInfo[MarketError]) -> str:
    return excinfo.value.code


# -- terms ---------------------------------------------------------------------------------
def test_terms_parse_the_sides_message_and_default_expiry() -> None:
    t = Terms.parse({"give": {"assets": ["a1", "a2"]}, "want": {"cash": 500},
                     "message": "deal?"}, NOW)
    assert t.give == Side(("a1", "a2"), 0)
    assert t.want == Side((), 500)
    assert t.message == "deal?"
    assert t.expires_at == NOW + DEFAULT_EXPIRY_MS
    assert Terms.parse({"want": {"assets": ["b"]}, "message": ""}, NOW).message is None
    assert Terms.parse({"give": {"assets": ["a"]}}, NOW).want == Side()


@pytest.mark.parametrize(("body", "field"), [
    ({"give": ["a1"]}, "give"),
    ({"give": {"assets": ["a1"], "card": 1}}, "give"),
    ({"give": {"assets": "a1"}}, "give.assets"),
    ({"give": {"assets": ["a1", "a1"]}}, "give.assets"),
    ({"want": {"assets": ["b", "c", "b"]}}, "want.assets"),
    ({"give": {"assets": [f"a{i}" for i in range(MAX_ASSETS_PER_SIDE + 1)]}}, "give.assets"),
    ({"want": {"assets": [f"a{i}" for i in range(MAX_ASSETS_PER_SIDE + 1)]}}, "want.assets"),
    ({"give": {"assets": [""]}}, "give.assets"),
    ({"give": {"assets": [7]}}, "give.assets"),
    ({"give": {"assets": ["x" * 161]}}, "give.assets"),
    ({"give": {"assets": ["a1"], "cash": True}}, "give.cash"),
    ({"give": {"assets": ["a1"], "cash": 1.0}}, "give.cash"),
    ({"give": {"assets": ["a1"], "cash": 2.5}}, "give.cash"),
    ({"give": {"assets": ["a1"], "cash": -1}}, "give.cash"),
    ({"give": {"assets": ["a1"], "cash": "100"}}, "give.cash"),
    ({"give": {"assets": ["a1"], "cash": 2**53 + 1}}, "give.cash"),
    ({"give": {"assets": ["a1"]}, "want": {"cash": False}}, "want.cash"),
    ({"give": {"assets": ["a1"]}, "message": 5}, "message"),
    ({"give": {"assets": ["a1"]}, "message": "m" * 501}, "message"),
    ({"give": {"assets": ["a1"]}, "expires_in": 3600, "expires_at": NOW + HOUR_MS},
     "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_at": NOW + HOUR_MS - 1}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_at": NOW + MAX_EXPIRY_MS + 1}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_at": NOW - 1}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_at": float(NOW + 2 * HOUR_MS)}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_at": True}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_at": str(NOW + 2 * HOUR_MS)}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_in": 3599}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_in": 30 * 24 * 3600 + 1}, "expires_at"),
    ({"give": {"assets": ["a1"]}, "expires_in": 7200.0}, "expires_in"),
    ({"give": {"assets": ["a1"]}, "expires_in": True}, "expires_in"),
    ({"give": {"assets": ["a1"]}, "expires_in": -3600}, "expires_in"),
    ({"give": {"assets": ["a1"]}, "expires_in": 10**15}, "expires_in"),
])
def test_terms_parse_refuses_malformed_bodies(body: dict[str, Any], field: str) -> None:
    with pytest.raises(MarketError) as exc:
        Terms.parse(body, NOW)
    assert code_of(exc) == INVALID
    assert exc.value.details["field"] == field


def test_expiry_bounds_are_inclusive() -> None:
    assert terms(expires_at=NOW + MIN_EXPIRY_MS).expires_at == NOW + HOUR_MS
    assert terms(expires_at=NOW + MAX_EXPIRY_MS).expires_at == NOW + MAX_EXPIRY_MS
    assert terms(expires_in=3600).expires_at == NOW + HOUR_MS
    assert terms(expires_in=30 * 24 * 3600).expires_at == NOW + MAX_EXPIRY_MS


@pytest.mark.parametrize(("frm", "to", "body", "field"), [
    (U1, U1, {"give": {"assets": ["a1"]}}, "to_id"),
    (U1, U2, {"give": {"cash": 100}, "want": {"cash": 0}}, "give"),
    (U1, U2, {"give": {"cash": 100}}, "give"),
    (U1, U2, {}, "give"),
    (U1, U2, {"give": {"assets": ["a1"], "cash": 5}, "want": {"cash": 7}}, "want.cash"),
    (U1, U2, {"give": {"assets": ["a1"]}, "want": {"assets": ["a2", "a1"]}}, "want.assets"),
])
def test_terms_check_refuses_offers_the_rules_forbid(frm: str, to: str, body: dict[str, Any],
                                                     field: str) -> None:
    parsed = Terms.parse(body, NOW)
    with pytest.raises(MarketError) as exc:
        parsed.check(frm, to)
    assert (code_of(exc), exc.value.details["field"]) == (INVALID, field)
    with pytest.raises(MarketError):  # and so does the offer made of them
        Offer("of_x", frm, to, parsed, NOW)


def test_one_side_may_be_only_cash_and_either_side_may_be_only_assets() -> None:
    for body in ({"give": {"cash": 100}, "want": {"assets": ["b"]}},
                 {"give": {"assets": ["a"]}, "want": {"cash": 100}},
                 {"want": {"assets": ["b"]}},
                 {"give": {"assets": [f"x{i}" for i in range(10)]},
                  "want": {"assets": [f"y{i}" for i in range(10)], "cash": 0}}):
        Terms.parse(body, NOW).check(U1, U2)


# -- a new offer and who may do what ----------------------------------------------------------
def test_a_new_offer_is_active_at_seq_1() -> None:
    offer = make(want={"assets": ["b1"], "cash": 300}, message="hi", expires_in=7200)
    assert offer.offer_id == offer_id_for(U1, "r1") and is_offer_id(offer.offer_id)
    assert (offer.status, offer.seq, offer.thread_id) == (ACTIVE, 1, offer.offer_id)
    assert (offer.created_at, offer.updated_at) == (NOW, NOW)
    assert offer.expires_at == NOW + 2 * HOUR_MS
    assert offer.assets == ["a1", "b1"]
    assert offer.moves() == [("a1", U1, U2), ("b1", U2, U1)]
    assert offer.cash_leg() == (U2, U1, 300)
    assert offer.parent_id is None and offer.child_id is None and offer.acted is None
    assert not offer.is_final and offer.party(U1) and offer.party(U2) and not offer.party(U3)


@pytest.mark.parametrize(("action", "by", "status"), [
    (ACCEPT, U2, ACCEPTED), (DECLINE, U2, DECLINED), (CANCEL, U1, CANCELLED)])
def test_who_may_accept_decline_and_cancel(action: str, by: str, status: str) -> None:
    offer = make()
    offer.act(action, by, "q1", NOW + 5)
    assert (offer.status, offer.seq, offer.updated_at) == (status, 2, NOW + 5)
    assert offer.acted == {"action": action, "by": by, "req_id": "q1"}
    assert offer.is_retry(action, by, "q1")
    assert not offer.is_retry(action, by, "q2")
    assert not offer.is_retry(DECLINE if action != DECLINE else ACCEPT, by, "q1")


@pytest.mark.parametrize(("action", "by"), [
    (ACCEPT, U1), (DECLINE, U1), (COUNTER, U1), (CANCEL, U2), (ACCEPT, U3), (CANCEL, U3)])
def test_the_wrong_party_is_forbidden_and_nothing_changes(action: str, by: str) -> None:
    offer = make()
    before = offer.to_dict()
    with pytest.raises(MarketError) as exc:
        offer.allowed(action, by)
    assert code_of(exc) == FORBIDDEN
    if action != COUNTER:
        with pytest.raises(MarketError) as exc:
            offer.act(action, by, "q", NOW + 1)
        assert code_of(exc) == FORBIDDEN
    else:
        with pytest.raises(MarketError) as exc:
            offer.counter(by, "q", terms(give={"assets": ["z"]}), NOW + 1)
        assert code_of(exc) == FORBIDDEN
    assert offer.to_dict() == before


def test_an_unknown_action_is_invalid() -> None:
    with pytest.raises(MarketError) as exc:
        make().allowed("steal", U2)
    assert code_of(exc) == INVALID
    with pytest.raises(MarketError) as exc:
        make().act(COUNTER, U2, "q", NOW)  # a counter needs terms
    assert code_of(exc) == INVALID


def ended(how: str) -> Offer:
    """An offer that is no longer active, `how`."""
    offer = make()
    t = NOW + 10
    if how == ACCEPTED:
        offer.act(ACCEPT, U2, "q", t)
    elif how == SETTLED:
        offer.act(ACCEPT, U2, "q", t)
        offer.settle(t + 1)
    elif how == FAILED:
        offer.act(ACCEPT, U2, "q", t)
        offer.fail("INSUFFICIENT_FUNDS", t + 1)
    elif how == DECLINED:
        offer.act(DECLINE, U2, "q", t)
    elif how == CANCELLED:
        offer.act(CANCEL, U1, "q", t)
    elif how == EXPIRED:
        assert offer.expire(offer.expires_at)
    elif how == COUNTERED:
        offer.counter(U2, "q", terms(give={"assets": ["b1"]}), t)
    elif how == INVALIDATED:
        assert offer.invalidate("asset_moved", t)
    assert offer.status == how
    return offer


@pytest.mark.parametrize("how", [s for s in STATUSES if s != ACTIVE])
def test_only_an_active_offer_takes_commands(how: str) -> None:
    offer = ended(how)
    before = offer.to_dict()
    for action, by in ((ACCEPT, U2), (DECLINE, U2), (CANCEL, U1), (COUNTER, U2)):
        with pytest.raises(MarketError) as exc:
            offer.allowed(action, by)
        assert code_of(exc) == OFFER_NOT_ACTIVE
        assert exc.value.details["status"] == how
    with pytest.raises(MarketError) as exc:
        offer.act(ACCEPT, U2, "other", NOW + 99)
    assert code_of(exc) == OFFER_NOT_ACTIVE
    with pytest.raises(MarketError) as exc:
        offer.counter(U2, "other", terms(give={"assets": ["b9"]}), NOW + 99)
    assert code_of(exc) == OFFER_NOT_ACTIVE
    assert not offer.expire(offer.expires_at + 1)
    assert not offer.invalidate("asset_moved", NOW + 99)
    if how != ACCEPTED:
        for end in (lambda: offer.settle(NOW + 99), lambda: offer.fail("x", NOW + 99)):
            with pytest.raises(MarketError) as exc:
                end()
            assert code_of(exc) == OFFER_NOT_ACTIVE
    assert offer.to_dict() == before
    assert offer.is_final == (how in FINAL)


def test_an_active_offer_cannot_be_settled_or_failed() -> None:
    offer = make()
    for end in (lambda: offer.settle(NOW), lambda: offer.fail("x", NOW)):
        with pytest.raises(MarketError) as exc:
            end()
        assert code_of(exc) == OFFER_NOT_ACTIVE
    assert offer.seq == 1


def test_settle_and_fail_end_an_accepted_offer() -> None:
    settled, failed = ended(SETTLED), ended(FAILED)
    assert (settled.seq, settled.reason, settled.is_final) == (3, None, True)
    assert (failed.seq, failed.reason, failed.is_final) == (3, "INSUFFICIENT_FUNDS", True)
    # the accept that ended the active state stays recognisable after the swap ended
    assert settled.is_retry(ACCEPT, U2, "q") and failed.is_retry(ACCEPT, U2, "q")


def test_invalidate_records_its_reason() -> None:
    offer = ended(INVALIDATED)
    assert (offer.reason, offer.seq, offer.updated_at) == ("asset_moved", 2, NOW + 10)


def test_updated_at_never_goes_back() -> None:
    offer = make()
    offer.act(ACCEPT, U2, "q", NOW - 500)  # a host clock behind the gateway's
    assert offer.updated_at == NOW
    offer.settle(NOW + 7)
    assert offer.updated_at == NOW + 7


# -- counters ------------------------------------------------------------------------------
def test_a_counter_makes_the_parent_countered_and_the_child_active() -> None:
    parent = make(want={"cash": 100}, expires_in=3600)
    later = NOW + 30 * 60_000
    child = parent.counter(U2, "c1", terms(later, give={"assets": ["b1"]}, want={"cash": 50},
                                           expires_in=7200), later)
    assert (parent.status, parent.seq, parent.updated_at) == (COUNTERED, 2, later)
    assert parent.child_id == child.offer_id == counter_id_for(parent.offer_id, U2, "c1")
    assert parent.acted == {"action": COUNTER, "by": U2, "req_id": "c1"}
    assert (child.status, child.seq, child.from_id, child.to_id) == (ACTIVE, 1, U2, U1)
    assert (child.parent_id, child.thread_id) == (parent.offer_id, parent.offer_id)
    assert child.expires_at == later + 2 * HOUR_MS  # fresh, past the parent's
    assert child.expires_at > parent.expires_at
    assert child.created_at == later
    assert child.give == Side(("b1",), 0) and child.want == Side((), 50)
    # a counter of the counter stays in the thread
    grandchild = child.counter(U1, "c2", terms(later + 1, give={"assets": ["a1"]}), later + 1)
    assert (grandchild.thread_id, grandchild.parent_id) == (parent.offer_id, child.offer_id)
    assert (grandchild.from_id, grandchild.to_id) == (U1, U2)


def test_counter_offer_makes_the_counter_and_leaves_the_offer_as_it_was() -> None:
    parent = make()
    before = parent.to_dict()
    child = parent.counter_offer(U2, "c1", terms(give={"assets": ["b1"]}), NOW + 4)
    assert parent.to_dict() == before  # the desk checks the counter before countering
    assert (child.offer_id, child.from_id, child.to_id, child.parent_id, child.status) == (
        counter_id_for(parent.offer_id, U2, "c1"), U2, U1, parent.offer_id, ACTIVE)
    parent.countered_by(child, "c1")
    assert (parent.status, parent.child_id, parent.acted) == (
        COUNTERED, child.offer_id, {"action": COUNTER, "by": U2, "req_id": "c1"})
    for by, code in ((U1, FORBIDDEN), (U3, FORBIDDEN), (U2, OFFER_NOT_ACTIVE)):
        with pytest.raises(MarketError) as exc:
            parent.counter_offer(by, "c2", terms(give={"assets": ["b2"]}), NOW + 5)
        assert code_of(exc) == code


def test_a_counter_whose_terms_break_the_rules_changes_nothing() -> None:
    parent = make()
    before = parent.to_dict()
    for bad in (terms(give={"cash": 5}, want={"cash": 5}),  # cash both sides, no asset
                terms(give={"assets": ["a1"]}, want={"assets": ["a1"]})):
        with pytest.raises(MarketError) as exc:
            parent.counter(U2, "c1", bad, NOW + 1)
        assert code_of(exc) == INVALID
    assert parent.to_dict() == before


def test_countered_by_repairs_a_parent_whose_counter_was_saved_first() -> None:
    parent, twin = make(), make()
    child = parent.counter(U2, "c1", terms(give={"assets": ["b1"]}), NOW + 3)
    twin.countered_by(child)
    assert (twin.status, twin.child_id, twin.seq, twin.updated_at) == (
        COUNTERED, child.offer_id, 2, NOW + 3)
    assert twin.acted == {"action": COUNTER, "by": U2, "req_id": None}


# -- expiry --------------------------------------------------------------------------------
def test_expire_happens_exactly_at_expires_at() -> None:
    offer = make(expires_in=3600)
    at = offer.expires_at
    assert not offer.expire(at - 1)
    assert (offer.status, offer.seq) == (ACTIVE, 1)
    offer.allowed(ACCEPT, U2)  # still acceptable 1 ms before
    assert offer.expire(at)
    assert (offer.status, offer.seq, offer.updated_at) == (EXPIRED, 2, at)
    assert not offer.expire(at + 1)
    assert offer.seq == 2


def test_a_late_expiry_is_stamped_with_expires_at() -> None:
    offer = make(expires_in=3600)
    assert offer.expire(offer.expires_at + 5 * HOUR_MS)
    assert offer.updated_at == offer.expires_at


# -- replay: commands about an offer that is over ---------------------------------------------
def test_replay_answers_the_retry_of_the_command_that_ended_it() -> None:
    settled = ended(SETTLED)
    assert settled.replay(ACCEPT, U2, "q") == "offer"
    for action, by, req in ((ACCEPT, U2, "other"), (DECLINE, U2, "q"), (CANCEL, U1, "q")):
        with pytest.raises(MarketError) as exc:
            settled.replay(action, by, req)
        assert code_of(exc) == OFFER_NOT_ACTIVE
    with pytest.raises(MarketError) as exc:
        settled.replay(ACCEPT, U1, "q")  # the sender can never accept
    assert code_of(exc) == FORBIDDEN
    cancelled = ended(CANCELLED)
    assert cancelled.replay(CANCEL, U1, "q") == "offer"
    with pytest.raises(MarketError) as exc:
        cancelled.replay(CANCEL, U1, "q2")
    assert code_of(exc) == OFFER_NOT_ACTIVE


def test_replay_refuses_strangers_as_if_there_were_no_offer() -> None:
    for how in (SETTLED, COUNTERED, EXPIRED, DECLINED):
        offer = ended(how)
        for action in (ACCEPT, DECLINE, CANCEL, COUNTER):
            with pytest.raises(MarketError) as exc:
                offer.replay(action, U3, "q")
            assert code_of(exc) == OFFER_NOT_FOUND


def test_replay_of_counters() -> None:
    parent = make()
    parent.counter(U2, "c1", terms(give={"assets": ["b1"]}), NOW + 1)
    assert parent.replay(COUNTER, U2, "c1", child_active=True) == "child"
    assert parent.replay(COUNTER, U2, "c1", child_active=False) == "child"
    with pytest.raises(MarketError) as exc:
        parent.replay(COUNTER, U2, "c2", child_active=True)
    assert code_of(exc) == LIMIT_EXCEEDED
    with pytest.raises(MarketError) as exc:
        parent.replay(COUNTER, U2, "c2", child_active=False)
    assert code_of(exc) == OFFER_NOT_ACTIVE
    with pytest.raises(MarketError) as exc:
        parent.replay(COUNTER, U1, "c1", child_active=True)  # the sender may not counter
    assert code_of(exc) == FORBIDDEN
    with pytest.raises(MarketError) as exc:
        parent.replay(ACCEPT, U2, "c1")
    assert code_of(exc) == OFFER_NOT_ACTIVE
    # a counter that was refused on a declined offer is no retry of anything
    declined = ended(DECLINED)
    with pytest.raises(MarketError) as exc:
        declined.replay(COUNTER, U2, "q")
    assert code_of(exc) == OFFER_NOT_ACTIVE


def test_a_repaired_parent_still_recognises_its_counter_by_id() -> None:
    parent, twin = make(), make()
    child = parent.counter(U2, "c1", terms(give={"assets": ["b1"]}), NOW + 1)
    twin.countered_by(child)
    assert twin.replay(COUNTER, U2, "c1") == "child"


# -- records -------------------------------------------------------------------------------
RECORD_KEYS = {"offer_id", "thread_id", "from_id", "to_id", "give", "want", "assets", "message",
               "expires_at", "parent_id", "child_id", "status", "reason", "acted",
               "created_at", "updated_at", "seq"}


@pytest.mark.parametrize("how", STATUSES)
def test_to_dict_and_from_dict_round_trip(how: str) -> None:
    offer = make(give={"assets": ["a1", "a2"]}, want={"cash": 99}, message="m") \
        if how == ACTIVE else ended(how)
    record = offer.to_dict()
    assert set(record) == RECORD_KEYS
    again = Offer.from_dict(record)
    assert again.to_dict() == record
    assert again.give == offer.give and again.want == offer.want
    assert again.is_retry(ACCEPT, U2, "q") == offer.is_retry(ACCEPT, U2, "q")
    again.acted is not None and again.acted.update(by="x")  # a copy, not the same dict
    assert offer.to_dict() == record
    stored = {**record, "host": "h", "told_seq": 1}
    assert Offer.from_dict(stored).to_dict() == record
    assert set(public(stored)) == RECORD_KEYS - {"acted", "assets"}


def test_from_dict_does_not_recheck_the_clock() -> None:
    record = make(expires_in=3600).to_dict()
    offer = Offer.from_dict(record)  # long past its expiry: rebuilt as it was
    assert offer.status == ACTIVE and offer.expire(NOW + 100 * HOUR_MS)


def test_a_counter_round_trips_with_its_thread() -> None:
    parent = make()
    child = parent.counter(U2, "c1", terms(give={"assets": ["b1"]}), NOW + 1)
    for offer in (parent, child):
        assert Offer.from_dict(offer.to_dict()).to_dict() == offer.to_dict()


# -- the cash entry ------------------------------------------------------------------------
def test_no_cash_no_entry() -> None:
    assert make().cash_leg() is None
    assert make().cash_entry(250, NOW) is None


@pytest.mark.parametrize(("side", "payer", "receiver"), [("give", U1, U2), ("want", U2, U1)])
def test_cash_entry_the_receiver_pays_the_fee(side: str, payer: str, receiver: str) -> None:
    body: dict[str, Any] = {"give": {"assets": ["a1"]}, "want": {"assets": ["b1"]}}
    body[side] = {**body[side], "cash": 10_000}
    offer = make(**body)
    assert offer.cash_leg() == (payer, receiver, 10_000)
    entry = offer.cash_entry(250, NOW + 9)
    assert entry is not None
    assert (entry.cause, entry.cause_key, entry.at) == (ledger.OFFER, offer.offer_id, NOW + 9)
    assert entry.entry_id == ledger.entry_id_for(ledger.OFFER, offer.offer_id)
    assert entry.amount_of(ledger.user_account(payer)) == -10_000
    assert entry.amount_of(ledger.user_account(receiver)) == 10_000 - 250
    assert entry.amount_of(ledger.FEES) == 250
    free = offer.cash_entry(0, NOW)
    assert free is not None and free.amount_of(ledger.FEES) == 0
    assert {p.account for p in free.postings} == {ledger.user_account(payer),
                                                  ledger.user_account(receiver)}


def test_the_fee_rounds_down() -> None:
    entry = make(want={"cash": 399}).cash_entry(250, NOW)
    assert entry is not None and entry.amount_of(ledger.FEES) == 9  # 9.975


# -- ids -----------------------------------------------------------------------------------
def test_offer_ids_are_deterministic_per_sender_and_request() -> None:
    a = offer_id_for(U1, "r1")
    assert a == offer_id_for(U1, "r1")
    assert len({a, offer_id_for(U1, "r2"), offer_id_for(U2, "r1"),
                offer_id_for("u1\nr", "1")}) == 4
    assert a.startswith("of_") and len(a) == 3 + 24 and is_offer_id(a)
    assert not is_offer_id("a_123")
    assert make(req_id="r1").offer_id == make(req_id="r1").offer_id


def test_counter_ids_are_per_parent_and_never_a_create_s() -> None:
    c = counter_id_for("of_p1", U2, "r1")
    assert c == counter_id_for("of_p1", U2, "r1") and is_offer_id(c)
    assert len({c, counter_id_for("of_p2", U2, "r1"), counter_id_for("of_p1", U1, "r1"),
                counter_id_for("of_p1", U2, "r2"), offer_id_for(U2, "r1")}) == 5
    # the same req_id countering two offers makes two counters
    first, second = make(req_id="x1"), make(req_id="x2")
    a = first.counter(U2, "same", terms(give={"assets": ["b1"]}), NOW)
    b = second.counter(U2, "same", terms(give={"assets": ["b1"]}), NOW)
    assert a.offer_id != b.offer_id
    assert first.replay(COUNTER, U2, "same") == "child"
    s = second_chance_id("a_1")
    assert is_offer_id(s) and s == second_chance_id("a_1") != second_chance_id("a_2")
    assert s not in (offer_id_for("a_1", ""), counter_id_for("a_1", "", ""))


# -- the state machine, at random --------------------------------------------------------------
USERS = (U1, U2, U3)
ASSETS = ("a1", "a2", "a3", "a4")


@settings(max_examples=60, stateful_step_count=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
class OfferRules(RuleBasedStateMachine):
    """Random commands by random users against a handful of offers."""

    offers = Bundle("offers")

    def __init__(self) -> None:
        super().__init__()
        self.now = NOW
        self.all: dict[str, Offer] = {}
        self.seen: dict[str, dict[str, Any]] = {}  # each offer as of the last check
        self.n = 0

    def _req(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def _side(self, data: st.DataObject, label: str) -> dict[str, Any]:
        assets = data.draw(st.lists(st.sampled_from(ASSETS), max_size=2, unique=True),
                           label=f"{label}.assets")
        cash = data.draw(st.sampled_from((0, 0, 100, 2_500)), label=f"{label}.cash")
        return {"assets": assets, "cash": cash}

    def _terms(self, data: st.DataObject) -> dict[str, Any]:
        return {"give": self._side(data, "give"), "want": self._side(data, "want"),
                "expires_in": data.draw(st.sampled_from((3600, 3600 * 2, 86_400)),
                                        label="expires_in")}

    @initialize(target=offers)
    def first(self) -> Offer:
        offer = make(U1, U2, self._req(), self.now, want={"assets": ["a2"]}, expires_in=3600)
        self.all[offer.offer_id] = offer
        return offer

    @rule(target=offers, data=st.data(), frm=st.sampled_from(USERS), to=st.sampled_from(USERS))
    def create(self, data: st.DataObject, frm: str, to: str) -> Offer:
        body = self._terms(data)
        try:
            offer = Offer(offer_id_for(frm, self._req()), frm, to, Terms.parse(body, self.now),
                          self.now)
        except MarketError as exc:
            assert exc.code == INVALID
            offer = make(U1, U2, self._req(), self.now)  # something valid to work with
        self.all[offer.offer_id] = offer
        return offer

    @rule(offer=offers, action=st.sampled_from((ACCEPT, DECLINE, CANCEL)),
          by=st.sampled_from(USERS))
    def act(self, offer: Offer, action: str, by: str) -> None:
        before = offer.to_dict()
        try:
            offer.act(action, by, self._req(), self.now)
        except MarketError as exc:
            assert exc.code in (FORBIDDEN, OFFER_NOT_ACTIVE)
            assert exc.code == OFFER_NOT_ACTIVE or by != (offer.from_id if action == CANCEL
                                                          else offer.to_id)
            assert offer.to_dict() == before, "a refused command changed the offer"
            return
        assert before["status"] == ACTIVE
        assert by == (offer.from_id if action == CANCEL else offer.to_id)

    @rule(target=offers, offer=offers, by=st.sampled_from(USERS), data=st.data())
    def counter(self, offer: Offer, by: str, data: st.DataObject) -> Offer:
        before = offer.to_dict()
        req = self._req()
        try:
            parsed = Terms.parse(self._terms(data), self.now)
            child = offer.counter(by, req, parsed, self.now)
        except MarketError as exc:
            assert offer.to_dict() == before, "a refused counter changed the parent"
            assert exc.code in (FORBIDDEN, OFFER_NOT_ACTIVE, INVALID)
            return offer
        assert before["status"] == ACTIVE and by == offer.to_id
        assert (offer.status, child.status, child.parent_id) == (COUNTERED, ACTIVE,
                                                                 offer.offer_id)
        assert child.thread_id == offer.thread_id and child.offer_id == counter_id_for(
            offer.offer_id, by, req)
        assert child.expires_at > self.now
        assert offer.replay(COUNTER, by, req) == "child"
        self.all[child.offer_id] = child
        return child

    @rule(dt=st.sampled_from((0, 1, 59 * 60_000, HOUR_MS - 1, HOUR_MS, 3 * HOUR_MS)))
    def advance_and_expire(self, dt: int) -> None:
        self.now += dt
        for offer in self.all.values():
            was = offer.status
            expired = offer.expire(self.now)
            assert expired == (was == ACTIVE and self.now >= offer.expires_at)
            if expired:
                assert offer.updated_at <= max(self.now, offer.created_at)

    @rule(offer=offers, reason=st.sampled_from(("asset_moved", "asset_sold")))
    def invalidate(self, offer: Offer, reason: str) -> None:
        was = offer.status
        assert offer.invalidate(reason, self.now) == (was == ACTIVE)

    @rule(offer=offers, ok=st.booleans())
    def end_the_swap(self, offer: Offer, ok: bool) -> None:
        before = offer.to_dict()
        try:
            offer.settle(self.now) if ok else offer.fail("ASSET_LISTED", self.now)
        except MarketError as exc:
            assert exc.code == OFFER_NOT_ACTIVE and before["status"] != ACCEPTED
            assert offer.to_dict() == before
            return
        assert before["status"] == ACCEPTED

    @rule(offer=offers, by=st.sampled_from(USERS))
    def retry_or_late(self, offer: Offer, by: str) -> None:
        if offer.status == ACTIVE:
            return
        before = offer.to_dict()
        acted = offer.acted
        child = self.all.get(offer.child_id or "")
        child_active = child is not None and child.status == ACTIVE
        for action in ACTIONS_ALL:
            req = acted["req_id"] if acted and acted["req_id"] else "nope"
            try:
                answer = offer.replay(action, by, req, child_active)
            except MarketError as exc:
                assert exc.code in (FORBIDDEN, OFFER_NOT_ACTIVE, OFFER_NOT_FOUND,
                                    LIMIT_EXCEEDED)
                assert (exc.code == OFFER_NOT_FOUND) == (not offer.party(by))
                assert (exc.code == LIMIT_EXCEEDED) <= (
                    action == COUNTER and child_active and by == offer.to_id)
            else:
                assert offer.party(by)
                assert answer == "child" or offer.is_retry(action, by, req)
        assert offer.to_dict() == before

    @invariant()
    def offers_change_only_by_the_rules(self) -> None:
        threads: dict[str, int] = {}
        for offer_id, offer in self.all.items():
            now = offer.to_dict()
            before = self.seen.get(offer_id)
            if before is not None:
                if before["status"] in FINAL:
                    assert now == before, "a final offer changed"
                elif now != before:
                    assert now["seq"] == before["seq"] + 1, "seq must grow by 1 per change"
                    assert now["updated_at"] >= before["updated_at"]
                    assert (before["status"], now["status"]) in TRANSITIONS
            else:
                assert (now["seq"], now["status"]) == (1, ACTIVE)
            assert now["status"] in STATUSES
            self.seen[offer_id] = now
            if offer.status == ACTIVE:
                threads[offer.thread_id] = threads.get(offer.thread_id, 0) + 1
        assert all(n == 1 for n in threads.values()), "two active offers in one thread"


ACTIONS_ALL = (ACCEPT, DECLINE, CANCEL, COUNTER)
TRANSITIONS = {(ACTIVE, s) for s in (ACCEPTED, DECLINED, CANCELLED, EXPIRED, COUNTERED,
                                     INVALIDATED)} | {(ACCEPTED, SETTLED), (ACCEPTED, FAILED)}

TestOfferRules = OfferRules.TestCase


def test_only_one_card_for_cash_alone_is_a_sale_with_a_price() -> None:
    from market.offers import Offer, Terms

    def offer(give: dict, want: dict) -> Offer:
        terms = Terms.parse({"give": give, "want": want}, NOW)
        return Offer("o1", "alice", "bob", terms, NOW)

    assert offer({"assets": ["a1"]}, {"cash": 5_000}).sale_price() == 5_000
    assert offer({"cash": 7_000}, {"assets": ["b1"]}).sale_price() == 7_000
    assert offer({"assets": ["a1", "a2"]}, {"cash": 5_000}).sale_price() is None
    assert offer({"assets": ["a1"]}, {"assets": ["b1"], "cash": 0}).sale_price() is None
    assert offer({"assets": ["a1"]}, {"assets": ["b1"], "cash": 100}).sale_price() is None
    assert offer({"assets": ["a1"], "cash": 100}, {"assets": ["b1"]}).sale_price() is None
