"""The positions app's fixtures (a trader's simulator config with cached market rules)."""

from positions.tests.conftest import sim_config

__all__ = ["sim_config"]
