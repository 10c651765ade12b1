"""An auction host - the bid path - runs at normal priority, every thread of it: Ray starts
its workers at nice 15 unless told otherwise (`gateway.cli.workers_at_normal_priority`), and
at 15 a host waited behind the gateway and Ray's daemons for any contended CPU."""

from __future__ import annotations

import os

import pytest
import ray

from testkit.client import unique
from testkit.processes import threads_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_auction_host_runs_at_the_gateways_priority(ece):
    seller = await ece.api.signup("sel")
    view = await ece.api.auction(seller, title=unique("Charizard"))
    host_name = await ece.gateway.router.locate(view["auction_id"])
    stats = await ray.get_actor(host_name, namespace="ece").stats.remote()
    assert stats["pid"] != os.getpid()
    assert stats["nice"] == os.getpriority(os.PRIO_PROCESS, 0) == 0
    threads = threads_of(stats["pid"])
    assert len(threads) > 5, threads  # Ray's, the loop's, the store's
    assert {name: nice for name, nice in threads.items() if nice != 0} == {}
