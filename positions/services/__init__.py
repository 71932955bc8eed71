"""Writes for positions. Public entry points:

- `state.group_transition(*, group_id, to, reason, actor=None)`
- `intake.signal_receive(...)` (webhook intake; no exchange call)
- `processing.signal_process(*, signal_id)` (celery: grids, pyramids, exits)
- `orders.order_submit(*, order_id)`, `orders.order_sync(*, order_id)`, `orders.order_cancel(*, order_id)`
- `exits.group_close(*, group_id, purpose, actor=None)`
"""
