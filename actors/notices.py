"""Outbid notices: which bids took the lead from whom. The host stores them in the same
commit as the bids that caused them (`CommitBatch.notices`): no store write of their own."""

from __future__ import annotations

from market.auction import Event
from storage.records import NewNotice


def outbid_notices(leader: str, events: list[Event]) -> list[NewNotice]:
    """A notice for `leader` if one of these events (of one command) took the lead from
    them: keyed by the bid event, so storing it twice adds it once."""
    notices: list[NewNotice] = []
    for event in events:
        if event.get("type") == "bid" and event.get("leader_id") not in (None, leader):
            auction_id = str(event["auction_id"])
            notices.append(NewNotice(
                user_id=leader, key=f"outbid:{auction_id}:{event['seq']}", type="outbid",
                at=int(event.get("at") or 0),
                data={"auction_id": auction_id, "amount": event.get("price")}))
    return notices


def coalesce(notices: list[NewNotice]) -> list[NewNotice]:
    """The notices with only the last of each (user, type, auction): "you were outbid, now
    at X" supersedes the same news at a lower X. Order otherwise kept."""
    last: dict[tuple[str, str, object], int] = {}
    for index, notice in enumerate(notices):
        last[(notice["user_id"], notice["type"], notice["data"].get("auction_id"))] = index
    return [notices[i] for i in sorted(last.values())]
