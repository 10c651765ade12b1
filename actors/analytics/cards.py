"""What the projections need of the catalog: a card's name, category and set (cached:
catalog entries never change)."""

from __future__ import annotations

from dataclasses import dataclass

from storage import Store


@dataclass(frozen=True)
class CardInfo:
    name: str
    category: str
    set: str


UNKNOWN = CardInfo("", "", "")


class Cards:
    def __init__(self, store: Store | None) -> None:
        self.store = store
        self._known: dict[str, CardInfo] = {}

    async def get(self, card_id: str) -> CardInfo:
        info = self._known.get(card_id)
        if info is None:
            card = await self.store.get_card(card_id) if self.store is not None else None
            info = UNKNOWN if card is None else CardInfo(card["name"], card["category"],
                                                          card["set"])
            self._known[card_id] = info
        return info
