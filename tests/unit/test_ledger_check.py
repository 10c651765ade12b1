"""A gateway refuses to serve on a broken ledger: its start-up check reads the real store."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from gateway.config import Settings
from gateway.state import Gateway
from market import ledger
from storage import StoreError, open_store
from storage.records import EntryRecord
from tests.storage.conftest import tamper_account

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_tampered_balance_stops_the_gateway_at_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, seed=False,
                        secret="test-secret-of-at-least-thirty-two-bytes")
    store = open_store(settings.store_url)
    await store.open()
    entry = ledger.deposit("u_1", 5_000, "d", 1)
    await store.post_entry(cast(EntryRecord, entry.to_dict()))

    sound = Gateway(settings)
    await sound.store.open()
    await sound.check_ledger()  # a sound ledger passes
    await sound.store.close()

    await tamper_account(store, "user:u_1", 9_000)  # money from nowhere
    broken = Gateway(settings)
    await broken.store.open()
    with pytest.raises(StoreError, match="ledger is broken"):
        await broken.check_ledger()
    await broken.store.close()
    await store.close()
