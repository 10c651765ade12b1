"""The vetting of the sales feed, shared by the projections of one process.

Every price shard and the market projection need the suspect flag of every sale, and vetting
needs the whole feed in order (linked accounts trade across cards). `FeedVetting` vets each
feed position once and remembers the answer (a byte per position), so with N price shards and
the market in one process the feed is vetted once, not N + 1 times. The feed is append-only
and each projection folds it in position order (restores replay it from the start), so the
answers are the sequential `market.vetting.Vetter`'s over the feed, whoever asks first. A
row no one vetted when the vetting went past its position (a MongoDB gap filled late) is
vetted when first asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from market.vetting import REASONS, Vetter

_UNKNOWN = -1
_CODE: dict[str | None, int] = {None: 0, **{reason: n + 1 for n, reason in enumerate(REASONS)}}
_REASON: tuple[str | None, ...] = (None, *REASONS)


class FeedVetting:
    def __init__(self) -> None:
        self.vetter = Vetter()
        self._codes = np.full(1024, _UNKNOWN, dtype=np.int8)  # by feed position

    def reasons(self, rows: Sequence[Mapping[str, Any]],
                segments: Sequence[str]) -> list[str | None]:
        """The vetting of each row (in position order; segments: `sale_segment` of each)."""
        pos = np.fromiter((int(r["pos"]) for r in rows), dtype=np.int64, count=len(rows))
        if not len(pos):
            return []
        if int(pos.max()) >= len(self._codes):
            grown = np.full(max(int(pos.max()) + 1, 2 * len(self._codes)), _UNKNOWN,
                            dtype=np.int8)
            grown[:len(self._codes)] = self._codes
            self._codes = grown
        codes = self._codes[pos]
        new = np.flatnonzero(codes == _UNKNOWN).tolist()
        if new:
            some = rows if len(new) == len(rows) else [rows[i] for i in new]  # mostly all
            found = self.vetter.vet_batch(
                segments if some is rows else [segments[i] for i in new],
                [r["at"] for r in some], [r["price"] for r in some],
                [r.get("seller_id") for r in some], [r.get("buyer_id") for r in some])
            codes[new] = [_CODE[r] for r in found]
            self._codes[pos[new]] = codes[new]
        return [_REASON[c] for c in codes.tolist()]
