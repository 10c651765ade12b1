"""Two gateways of one instance (one store, one host) on a real Ray: each receives from the
host only the events of the auction its sockets watch (its `/metrics` counters), both still
see every event of theirs in order with no gap, and a socket subscribing while bids flow
misses nothing."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testkit.client import Api, connect, unique, wait_for
from tests.integration.conftest import make_settings, port_of, shutdown_instance, start_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def fanout_counts(api: Api) -> dict[str, float]:
    status, text = await api.request("GET", "/metrics")
    assert status == 200
    return {family.name: sample.value for family in text_string_to_metric_families(text)
            if family.name.startswith("ece_fanout_")
            for sample in family.samples if sample.name.endswith("_total")}


def whole(events: list[dict], last: int) -> bool:
    seqs = [e["seq"] for e in events]
    return bool(seqs) and seqs == list(range(seqs[0], last + 1))


async def test_each_gateway_receives_only_what_its_sockets_watch(ray_cluster, tmp_path):
    settings = make_settings(tmp_path / unique("g"))
    runners = [await start_gateway(settings), await start_gateway(settings)]
    try:
        async with aiohttp.ClientSession() as http:
            api_a, api_b = (Api(f"http://127.0.0.1:{port_of(r)}", http) for r in runners)
            seller = await api_a.signup("seller")
            bidders = [await api_a.signup("b1"), await api_b.signup("b2")]
            x = (await api_a.auction(seller, start_price=100))["auction_id"]
            y = (await api_b.auction(seller, start_price=100))["auction_id"]
            watch_a, watch_b = await connect(http, api_a.base), await connect(http, api_b.base)
            for watcher, auction_id in ((watch_a, x), (watch_b, y)):
                answer = await watcher.request({"op": "subscribe", "auction_id": auction_id})
                assert answer["op"] == "snapshot", answer
            before = [await fanout_counts(api) for api in (api_a, api_b)]
            socks = [await connect(http, api_a.base, bidders[0]),
                     await connect(http, api_b.base, bidders[1])]

            async def bid_on(auction_id: str, rounds: int) -> None:
                for i in range(rounds):
                    for n, sock in enumerate(socks):
                        await sock.bid(auction_id, 100 + 100 * (2 * i + n), req_id=unique("r"))

            late: list = []

            async def subscribe_late() -> None:
                # A socket on gateway B subscribes to X (new there) while bids on X flow.
                while len(watch_a.events(x)) < 5:
                    await asyncio.sleep(0.01)
                sock = await connect(http, api_b.base)
                late.append(sock)
                await sock.request({"op": "subscribe", "auction_id": x})

            await asyncio.gather(bid_on(x, 20), bid_on(y, 20), subscribe_late())
            final_x, final_y = (await api_a.get(x))["seq"], (await api_a.get(y))["seq"]
            await wait_for(lambda: whole(watch_a.events(x), final_x)
                           and whole(watch_b.events(y), final_y)
                           and whole(late[0].events(x), final_x), timeout=15,
                           message="every event of each watched auction, in order")
            assert watch_a.events(y) == [] and watch_b.events(x) == []
            after_a = await fanout_counts(api_a)
            got = {k: after_a[k] - before[0].get(k, 0.0) for k in after_a}
            # Gateway A watches only X: no event of Y reached it, though the host published
            # them (its cursor passed over them).
            assert got["ece_fanout_received_events"] == got["ece_fanout_needed_events"] > 0
            assert got["ece_fanout_received_events"] <= len(watch_a.events(x))
            assert got["ece_fanout_host_events"] >= got["ece_fanout_received_events"] + 30
            after_b = await fanout_counts(api_b)
            assert after_b["ece_fanout_received_events"] == after_b["ece_fanout_needed_events"]
            for sock in (watch_a, watch_b, *socks, *late):
                await sock.close()
    finally:
        for runner in runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        await shutdown_instance(settings)
