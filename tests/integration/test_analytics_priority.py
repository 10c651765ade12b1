"""The analytics actor keeps off the bid path's CPU: its process - every thread of it, those
Ray started before the actor's code ran and those started after (the market recompute's
executor) - runs at the lowest priority, `ANALYTICS_NICE`; the gateway and the rest are
left as they were. (Python names no OS thread here, so threads are told apart by id.)"""

from __future__ import annotations

import os

import pytest

from actors.analytics.actor import ANALYTICS_NICE, get_or_create_analytics
from testkit.client import unique, wait_for
from testkit.processes import threads_of
from tests.integration.conftest import gateway_with

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_analytics_actor_runs_at_the_lowest_priority(ray_cluster, tmp_path):
    async with gateway_with(tmp_path, analytics=True) as ece:
        actor = get_or_create_analytics(ece.settings.cluster())
        pid, lowered = await actor.process.remote()
        assert pid != os.getpid()
        # Sales to fold: the market projection's recompute runs in a thread started now.
        seller = await ece.api.signup("sel")
        card = await ece.api.expect(201, "POST", "/api/cards", seller, json={
            "name": unique("Venusaur"), "set": "Base Set", "number": "15/102",
            "year": 1999, "category": "pokemon"})
        sales: list = [{"key": unique("k"), "card_id": card["card_id"], "grader": "PSA",
                        "grade": 9, "price": 10_000 + i, "at": 1_700_000_000_000 + i,
                        "source": "external", "ref": None, "seller_id": f"s{i}",
                        "buyer_id": f"b{i}"} for i in range(5)]
        assert await ece.gateway.store.add_sales(sales) == 5

        async def folded() -> bool:
            status = await actor.status.remote()
            return status["market"]["checkpoint"] >= 5 and status["prices.0"]["checkpoint"] >= 5

        await wait_for(folded, timeout=60, message="the projections folding the sales")
        threads = threads_of(pid)
        later = {name for name in threads if int(name.split()[0]) not in lowered}
        assert later, "no thread started after the actor's __init__ (the store's, ...)"
        assert len(threads) > 5, threads  # Ray's, the loop's, the store's, the recompute's
        assert {name: nice for name, nice in threads.items() if nice != ANALYTICS_NICE} == {}
        # Nothing else was lowered: this process (the gateway) runs as it did.
        assert set(threads_of(os.getpid()).values()) == {os.getpriority(os.PRIO_PROCESS, 0)}
