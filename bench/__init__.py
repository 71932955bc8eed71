"""Benchmarks of the engine (`make bench`, CONTRACT §6); see `bench/__main__.py`."""
