"""The edge of ECE: the aiohttp gateway and the `ece` command (the composition root)."""
