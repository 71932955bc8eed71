"""Reuse the positions fixtures: a trader with a simulator config and cached market rules."""

from positions.tests.conftest import sim_config  # noqa: F401
