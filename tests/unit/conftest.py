"""Fixtures shared by the unit tests of the host core (defined in tests/unit/hostkit.py)."""

from tests.unit.hostkit import clock, cores, released, store  # noqa: F401
from tests.unit.projectionkit import every_batch, no_backoff, stores  # noqa: F401
