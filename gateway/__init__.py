"""The edge of ECE: the aiohttp gateway and the `ece` command (the composition root)."""

import os
from pathlib import Path

_address = os.environ.get("ECE_RAY_ADDRESS", "")
if not _address or _address.startswith(("127.", "localhost")):
    # A private single-node Ray (tests, `make run`, gateways joining it) stays on loopback.
    # Ray reads this at import, so it is set first; joining a real cluster leaves it alone.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
if _address and (Path.home() / ".ray" / "auth_token").exists():
    # A local Ray started by `ray.init()` requires its token; a joining driver must send it.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
