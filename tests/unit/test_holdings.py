"""The holdings fold (market.holdings) and the portfolio view (market.portfolio)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from market.holdings import UNKNOWN_BASIS, Account, Holdings, Lot
from market.performance import MINT, PURCHASE, SWAP
from market.portfolio import Series, era, holdings_series, portfolio_view
from market.valuation import Valuation

USERS = ["u1", "u2", "u3"]
ASSETS = [f"a{i}" for i in range(5)]


def value_at(position: str, at: int) -> int:
    """A deterministic stand-in for the analytics' value lookup."""
    return 1000 + len(position) * 10 + at % 13


def row(asset: str, frm: str | None, to: str | None, how: str, at: int, **kw: Any) -> dict:
    return {"asset_id": asset, "card_id": "card_" + asset, "grader": "PSA", "grade": 9,
            "from_user": frm, "to_user": to, "at": at, "how": how, **kw}


def test_a_purchase_chain_realises_and_sets_the_basis() -> None:
    h = Holdings()
    assert h.apply(row("a", None, "u1", "mint", 1), value_at) == ("u1",)
    assert h.accounts["u1"].lots["a"].basis == 0
    assert h.accounts["u1"].lots["a"].how == MINT
    touched = h.apply(row("a", "u1", "u2", "auction", 2, price=5000, premium=250, fee=500),
                      value_at)
    assert touched == ("u1", "u2")
    assert "a" not in h.accounts["u1"].lots
    assert h.accounts["u1"].realised == 4500  # 5000 - 500 fee - 0 basis
    assert h.accounts["u2"].lots["a"].basis == 5250
    assert h.accounts["u2"].lots["a"].how == PURCHASE
    assert h.accounts["u1"].flows[-1].amount == -4500
    assert h.accounts["u2"].flows[-1].amount == 5250
    assert h.owner == {"a": "u2"}


def test_a_swap_takes_the_value_at_acquisition_and_an_unknown_basis_stays_unknown() -> None:
    h = Holdings()
    h.apply(row("a", None, "u1", "backfill", 1), value_at)
    assert h.accounts["u1"].lots["a"].basis is None
    assert h.accounts["u1"].lots["a"].how == UNKNOWN_BASIS
    h.apply(row("a", "u1", "u2", "offer", 50, price=None), value_at)
    lot = h.accounts["u2"].lots["a"]
    assert lot.how == SWAP and lot.basis == value_at(lot.position, 50)
    assert h.accounts["u1"].realised == 0 and h.accounts["u1"].unknown_realised == 1
    h.apply(row("a", "u2", "u3", "offer", 60, price=777), value_at)  # cash only: a purchase
    assert h.accounts["u3"].lots["a"].basis == 777
    assert h.accounts["u2"].realised == 777 - lot.basis


ops = st.lists(st.tuples(st.sampled_from(ASSETS), st.sampled_from([*USERS, None]),
                         st.sampled_from(["auction", "offer_cash", "swap"]),
                         st.integers(0, 10**7), st.integers(0, 10**5), st.integers(0, 10**5)),
               max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_one_owner_per_asset_and_the_basis_telescopes(steps: list) -> None:
    """Whatever the sequence: each asset is in exactly its owner's lots; and with every asset
    minted first, Σ realised + fees + premiums == Σ bases held + Σ values taken out."""
    h = Holdings()
    fees = out = 0
    for t, (asset, to, kind, price, fee, premium) in enumerate(steps, start=1):
        frm = h.owner.get(asset)
        if frm is None:  # not on the exchange (yet, or any more): mint it
            if to is not None:
                h.apply(row(asset, None, to, "mint", t), value_at)
            continue
        if to is None:
            out += value_at(h.accounts[frm].lots[asset].position, t)
            h.apply(row(asset, frm, None, "withdrawal", t), value_at)
        elif kind == "swap":
            h.apply(row(asset, frm, to, "offer", t, price=None), value_at)
        else:
            how = "auction" if kind == "auction" else "offer"
            fee = min(fee, price)
            h.apply(row(asset, frm, to, how, t, price=price, fee=fee, premium=premium), value_at)
            fees += fee + premium
        held = {a: u for u, acct in h.accounts.items() for a in acct.lots}
        assert held == h.owner
    realised = sum(a.realised for a in h.accounts.values())
    bases = sum(lot.basis or 0 for a in h.accounts.values() for lot in a.lots.values())
    assert all(a.unknown_realised == 0 for a in h.accounts.values())
    assert realised + fees == bases + out


def lot(asset: str, card: str, grade: int, basis: int | None) -> Lot:
    return Lot(asset, f"{card}|PSA|{grade}", card, "PSA", grade, 0, PURCHASE, basis)


def val(point: int, confidence: str = "high") -> Valuation:
    return Valuation(point, point - 100, point + 100, confidence, "sales", 6, 0)


def test_the_view_never_values_a_holding_without_value_at_zero() -> None:
    lots = [lot("x", "c1", 9, 1000), lot("y", "c1", 9, 500), lot("z", "c2", 10, 300)]
    values = {"c1|PSA|9": val(2000)}  # c2 has no value
    cards = {"c1": {"category": "pokemon", "set": "Base", "year": 1999, "character": "Pikachu"},
             "c2": {"category": "baseball", "set": "Topps", "year": 2011, "player": "Trout"}}
    view = portfolio_view(lots, values, cards, {"c1|PSA|9": 12}, realised=42, twr=0.1)
    t = view["totals"]
    assert t["value"] == 4000 and t["low"] == 3800 and t["high"] == 4200
    assert t["cost_basis"] == 1800 and t["unrealised_pnl"] == (2000 - 1000) + (2000 - 500)
    assert t["unvalued"] == 1 and t["realised_pnl"] == 42 and t["twr"] == 0.1
    z = next(h for h in view["holdings"] if h["asset_id"] == "z")
    assert z["value"] is None and z["pnl"] is None
    assert view["allocation"]["category"] == {"pokemon": 1.0}
    assert view["diversification"]["unvalued"] == 1
    assert view["diversification"]["by"]["era"]["weights"] == {"1990s": 1.0}
    assert view["liquidity"]["share_over"] == 0.0  # 12 sales a year: about 30 days
    assert view["risk"] == {"shown": False, "reason": view["risk"]["reason"]}
    assert "days of history" in view["risk"]["reason"]


def test_risk_is_shown_with_history_and_enough_confident_value() -> None:
    days = [i * 86_400_000 for i in range(41)]
    returns = [0.01 if i % 2 else -0.008 for i in range(40)]
    lots = [lot("x", "c1", 9, 1000)]
    shown_view = portfolio_view(lots, {"c1|PSA|9": val(2000)}, {}, {}, 0,
                                series=Series(days, returns))
    assert shown_view["risk"]["shown"] is True
    assert shown_view["risk"]["volatility"] > 0
    assert shown_view["risk"]["var_95_1d"] <= shown_view["risk"]["cvar_95_1d"]
    low_view = portfolio_view(lots, {"c1|PSA|9": val(2000, "low")}, {}, {}, 0,
                              series=Series(days, returns))
    assert low_view["risk"]["shown"] is False and "confidence" in low_view["risk"]["reason"]


def test_the_series_moves_today_s_value_back_by_the_index() -> None:
    day = 86_400_000
    series = holdings_series({"p": 2000, "q": 500}, now=2 * day, days=[0, day, 2 * day],
                             index_of={"p": ([0, day, 2 * day], [100.0, 150.0, 200.0])})
    assert [round(x, 6) for x in series.tolist()] == [1000 + 500, 1500 + 500, 2000 + 500]


def test_era_is_the_decade() -> None:
    assert era(1999) == "1990s" and era(2011) == "2010s" and era(None) is None


@settings(max_examples=100, deadline=None)
@given(ops, st.data())
def test_a_fold_resumed_from_persisted_accounts_and_redoing_rows_equals_one_fold(
        steps: list, data: st.DataObject) -> None:
    rows: list[dict] = []
    owner: dict[str, str] = {}
    for t, (asset, to, kind, price, fee, premium) in enumerate(steps, start=1):
        frm = owner.get(asset)
        if frm is None and to is None:
            continue
        how = "mint" if frm is None else ("offer" if kind != "auction" else "auction")
        cash = {} if kind == "swap" or frm is None else {"price": price, "fee": min(fee, price),
                                                           "premium": premium}
        rows.append({**row(asset, frm, to, how, t, **cash), "pos": len(rows) + 1})
        if to is None:
            owner.pop(asset)
        else:
            owner[asset] = to
    once = Holdings()
    for r in rows:
        once.apply(r, value_at)
    cut = data.draw(st.integers(0, len(rows)))
    redo = data.draw(st.integers(0, cut))
    first = Holdings()
    for r in rows[:cut]:
        first.apply(r, value_at)
    resumed = Holdings()  # a restart: the accounts as persisted, then the feed from `redo`
    resumed.accounts = {u: Account.from_doc(a.to_doc()) for u, a in first.accounts.items()}
    for r in rows[redo:]:
        resumed.apply(r, value_at)
    users = set(once.accounts) | set(resumed.accounts)
    for u in users:
        a = once.accounts.get(u, Account()).to_doc()
        b = resumed.accounts.get(u, Account()).to_doc()
        assert a == b, u


def test_the_series_is_log_linear_between_weekly_points() -> None:
    day = 86_400_000
    series = holdings_series({"p": 400}, now=2 * day, days=[0, day, 2 * day],
                             index_of={"p": ([0, 2 * day], [100.0, 400.0])})
    assert [round(x, 6) for x in series.tolist()] == [100.0, 200.0, 400.0]  # a move every day
