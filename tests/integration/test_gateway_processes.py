"""`ece serve` with ECE_GATEWAYS=2: two processes on one port, limits that hold across them,
and one lifetime (SIGTERM stops both; a process dying stops the serve with exit code 1)."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import psutil
import pytest

from testkit.client import Api, connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


def gateway_children(server) -> list[psutil.Process]:
    return [p for p in server.process().children()
            if "--gateway-process" in " ".join(p.cmdline())]


async def test_limits_hold_across_two_processes_and_sigterm_stops_both(start_server):
    # Per user: 4 sockets, 4 bids of burst and 0.5/s (each process enforces half of each).
    server = start_server(ECE_GATEWAYS="2", ECE_MAX_CONN_PER_USER="4",
                          ECE_RATE_LIMIT="0.5", ECE_RATE_BURST="4")
    children = gateway_children(server)
    assert len(children) == 1
    assert "ECE gateway process 2 of 2" in server.log_path.read_text()
    async with aiohttp.ClientSession() as http:
        api = Api(server.base, http)
        seller, bidder = await api.signup("seller"), await api.signup("bidder")
        auction_id = (await api.auction(seller, start_price=100))["auction_id"]

        # 24 tries to open a socket: the kernel spreads them over both processes; together
        # they may hold no more than the user's 4.
        sockets, refused = [], 0
        for _ in range(24):
            try:
                sockets.append(await connect(http, server.base, bidder))
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 409
                refused += 1
        assert 0 < len(sockets) <= 4 and refused == 24 - len(sockets)

        # Bids from every socket at once: those let through (answered other than
        # RATE_LIMITED) stay within the one bucket's bound, burst + rate x elapsed.
        started = time.monotonic()
        answers = await asyncio.gather(*(
            ws.bid(auction_id, 100 + 100 * (10 * i + j)) for i, ws in enumerate(sockets)
            for j in range(10)))
        elapsed = time.monotonic() - started
        through = [a for a in answers if a.get("code") != "RATE_LIMITED"]
        assert through, answers
        assert len(through) <= 4 + 0.5 * elapsed + 1e-9, (len(through), elapsed)
        for ws in sockets:
            await ws.close()

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=90) == 0
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, "a gateway process outlived `ece serve`"


async def test_a_gateway_process_dying_stops_the_serve_with_exit_code_1(start_server):
    server = start_server(ECE_GATEWAYS="2")
    [child] = gateway_children(server)
    child.kill()
    assert server.proc.wait(timeout=90) == 1
    assert "exited with code" in server.log_path.read_text()



async def test_a_gateway_process_whose_first_process_vanished_shuts_down(start_server):
    server = start_server(ECE_GATEWAYS="2")
    [child] = gateway_children(server)
    server.proc.kill()  # the first process only, as by the OOM killer: no goodbye
    server.proc.wait(timeout=30)
    _gone, alive = psutil.wait_procs([child], timeout=60)
    assert not alive, "a gateway process outlived the process that started it"
