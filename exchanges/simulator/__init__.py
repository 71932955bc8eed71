"""Binance-spot-compatible exchange simulator (no Django imports: it also runs standalone).

Start it with ``python -m exchanges.simulator`` or ``manage.py run_simulator``; drive it from tests
with :class:`exchanges.simulator.testing.SimulatorProcess`.
"""
