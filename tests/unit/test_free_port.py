"""Ports for the servers tests and the bench start lie outside the kernel's ephemeral range
(there, a Ray worker binding port 0 or any outgoing connection may take a picked port before
its server binds it: seen on CI as "address already in use") and outside `ray start`'s worker
port range, which Ray refuses to give its other components (the cluster tests' node ports)."""

from __future__ import annotations

import socket

from testkit.processes import FIRST_PORT, ephemeral_low, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    for _ in range(50):
        port = free_port()
        assert 19_999 < FIRST_PORT <= port < ephemeral_low()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
