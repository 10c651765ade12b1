"""What the tests and the benchmark share to drive a running ECE from outside.

`testkit.client`: REST (`Api`) and WebSocket (`Socket`, `connect`) clients that speak the public
wire protocol only. `testkit.processes`: `ece serve` (and other servers) as subprocesses we own,
stopped by pid and process group. Nothing in the server (market, storage, actors, gateway) may
import this package; `tests/unit/test_layers.py` checks it.
"""
