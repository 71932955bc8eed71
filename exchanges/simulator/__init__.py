"""Binance-spot-compatible exchange simulator (no Django imports: it also runs standalone).

Start it with ``python -m exchanges.simulator`` or ``manage.py run_simulator``; drive it from tests
with :class:`exchanges.simulator.testing.SimulatorProcess`.
"""

# Plausible starting prices for the built-in markets (the simulator has none until told): the demo
# stack and the benches set these.
BUILT_IN_PRICES = {
    "BTCUSDT": "65000",
    "ETHUSDT": "3500",
    "SOLUSDT": "150",
    "BNBUSDT": "600",
    "XRPUSDT": "0.6",
    "PEPEUSDT": "0.00001234",
    "ETHBTC": "0.0538",
}
