"""Benchmarks of the engine (`make bench`, bench/README.md); see `bench/__main__.py`."""
