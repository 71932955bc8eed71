"""The engine's rules as pure functions over plain typed data: no ORM, no I/O, no Django settings.

The live services (`positions.services`) and the backtester call the same functions; only the driver
differs. See docs/architecture.md ("Decide, then do").
"""
