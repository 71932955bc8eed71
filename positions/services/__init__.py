"""Writes for positions. Public entry points:

- `state.group_transition(*, group_id, to, reason, actor=None)`
- `intake.signal_receive(...)` (webhook intake on Django's connection; no exchange call), and
  `intake.intake_steps(alert)`, the same transaction for the route's driver on the event loop
- `processing.signal_process(*, signal_id)` (celery: grids, pyramids, exits)
- `orders.order_submit(*, order_id)`, `orders.order_sync(*, order_id)`, `orders.order_cancel(*, order_id)`
- `exits.group_close(*, group_id, purpose, actor=None)`
"""
