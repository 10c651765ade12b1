"""Stage: fan-out across gateways. N `ece serve` processes of one instance (one store, one
Ray), each auction watched by sockets on one gateway only, bids flowing on all of them.

Figure `gateway_events_over_needed`: the events the hosts' feeds delivered to the gateways
(each gateway's `ece_fanout_received_events_total`) over the events they needed (every event
of each auction, once for the one gateway watching it: the auctions' seq advance) — 1.0 is
ideal. `unfiltered_events_over_needed`: the same with what a feed sending every event of a
host to every gateway polling it delivers (the gateways' `ece_fanout_host_events_total`, the
host-wide cursors' advance): the behaviour before the subscription-aware feed. Every watcher
is also checked to have received every event after its snapshot, in order.

Run alone: `python -m loadtests.stages_fanout_gateways [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadtests.servers import BENCH_AUCTION, bench_api, start_server
from testkit.client import Socket, connect
from testkit.processes import Managed, ray_address_of

# (gateways, auctions per gateway, watchers per auction, bids per auction)
QUICK = (2, 3, 2, 30)
FULL = (3, 4, 5, 40)
COUNTERS = ("ece_fanout_received_events", "ece_fanout_needed_events", "ece_fanout_host_events")


STAGE = "fanout_gateways"
# (key, stage, figure, unit, description) rows of the bench's report
FIGURES = (
    ("gateway_events_over_needed", STAGE, "gateway_events_over_needed", "x",
     "events delivered to gateways / events needed (1.0 ideal)"),
    ("unfiltered_events_over_needed", STAGE, "unfiltered_events_over_needed", "x",
     "  the same with every host event sent to every polling gateway (before)"),
)




def fanout_gateways_stage(quick: bool, tmp: Path, ray_env: dict[str, str] | None = None,
                          ray_address: str | None = None, instance: str = "fanoutgw",
                          ) -> dict[str, Any]:
    """Start the gateways (joining `ray_address` when given, else the first starts Ray),
    measure, stop them. `ray_env`: the bench's Ray token settings."""
    gateways, per_gateway, watchers, bids = QUICK if quick else FULL
    data = tmp / instance / "data"  # one store for all (start_server gives each its own)
    env = {"ECE_INSTANCE": instance, "ECE_DATA_DIR": str(data), **(ray_env or {})}
    servers: list[Managed] = []
    try:
        for n in range(gateways):
            joined = {"ECE_RAY_ADDRESS": ray_address} if ray_address else {}
            server = start_server(f"{instance}{n}", tmp, {**env, **joined})
            server.wait_ready(180)
            servers.append(server)
            if ray_address is None:
                ray_address = ray_address_of(server)
        return asyncio.run(measure([s.base for s in servers], per_gateway, watchers, bids))
    finally:
        for server in reversed(servers):
            server.stop()


async def _counts(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(base + "/metrics") as response:
        text = await response.text()
    return {family.name: sample.value for family in text_string_to_metric_families(text)
            if family.name in COUNTERS
            for sample in family.samples if sample.name.endswith("_total")}


async def measure(bases: list[str], per_gateway: int, watchers: int,
                   bids: int) -> dict[str, Any]:
    """Against running gateways of one instance (`bases`; tests/cluster runs it on a real
    multi-node cluster): the figures and details."""
    # Hundreds of sockets: no cap on the session's connections (aiohttp's default is 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        api = bench_api(bases[0], http)
        seller, *bidders = await api.signups("fgw", 3)
        views = [await api.auction(seller, **BENCH_AUCTION)
                 for _ in range(per_gateway * len(bases))]
        watched_on = {v["auction_id"]: i % len(bases) for i, v in enumerate(views)}
        socks: dict[str, list[Socket]] = {}
        for auction_id, gw in watched_on.items():
            socks[auction_id] = [await connect(http, bases[gw]) for _ in range(watchers)]
            for sock in socks[auction_id]:
                answer = await sock.request({"op": "subscribe", "auction_id": auction_id})
                assert answer["op"] == "snapshot", answer
        start_seq = {a: (await api.get(a))["seq"] for a in watched_on}
        before = [await _counts(http, base) for base in bases]
        bidding = [[await connect(http, base, user) for user in bidders] for base in bases]
        t0 = time.monotonic()

        async def bid_on(index: int, auction_id: str, floor: int) -> int:
            acked, amount = 0, floor
            for i in range(bids):
                sock = bidding[(index + i) % len(bases)][i % 2]  # through every gateway
                answer = await sock.bid(auction_id, amount)
                acked += answer["op"] == "ack"
                amount += max(100, amount // 10)  # above any increment of the ladder
            return acked

        acked = sum(await asyncio.gather(*(bid_on(i, v["auction_id"], v["min_bid"])
                                           for i, v in enumerate(views))))
        bid_s = time.monotonic() - t0
        final_seq = {a: (await api.get(a))["seq"] for a in watched_on}
        missing = await _caught_up(socks, final_seq)
        after = [await _counts(http, base) for base in bases]
        for sock in [s for group in socks.values() for s in group] + [
                s for group in bidding for s in group]:
            await sock.close()
    pairs = list(zip(after, before, strict=True))
    delta = {name: sum(a.get(name, 0.0) - b.get(name, 0.0) for a, b in pairs) for name in COUNTERS}
    needed = sum(final_seq[a] - start_seq[a] for a in watched_on)  # one gateway each
    received, host_events = delta[COUNTERS[0]], delta[COUNTERS[2]]
    return {
        "figures": {
            "gateway_events_over_needed": round(received / needed, 3) if needed else None,
            "unfiltered_events_over_needed": round(host_events / needed, 3) if needed else None,
            "bids_acked": acked, "watchers_missing_events": missing,
        },
        "details": {"gateways": len(bases), "auctions": len(watched_on),
                    "watchers_per_auction": watchers, "bids_per_auction": bids,
                    "events_needed": needed, "events_received": received,
                    "events_needed_by_counters": delta[COUNTERS[1]],
                    "host_events_passed": host_events, "bid_phase_s": round(bid_s, 2),
                    "per_gateway": [{k: round(a.get(k, 0.0) - b.get(k, 0.0)) for k in COUNTERS}
                                    for a, b in pairs]},
    }


async def _caught_up(socks: dict[str, list[Socket]], final_seq: dict[str, int],
                     timeout: float = 30.0) -> int:
    """Wait for every watcher to hold every event up to the final seq, in order; how many
    watchers did not (0 when the fan-out lost nothing)."""
    def whole(sock: Socket, auction_id: str) -> bool:
        seqs = [e["seq"] for e in sock.events(auction_id)]
        return bool(seqs) and seqs == list(range(seqs[0], final_seq[auction_id] + 1))

    deadline = time.monotonic() + timeout
    while True:
        missing = sum(not whole(s, a) for a, group in socks.items() for s in group)
        if not missing or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ece-fanout-gw-"))
    print(json.dumps(fanout_gateways_stage(args.quick, tmp), indent=2))


if __name__ == "__main__":
    main()
