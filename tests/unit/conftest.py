"""Fixtures shared by the unit tests of the host core (defined in tests/unit/hostkit.py)."""

from tests.unit.hostkit import clock, cores, released, store  # noqa: F401
