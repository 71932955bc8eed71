"""Writes for positions (the reads are `positions.selectors` and `positions.ledger`). Public entry points:

- `intake.alert_read(...)`, `intake.intake_steps(alert)` (the webhook's one transaction as `core.sql`
  steps, run by the ASGI route on the event loop) and `intake.signal_receive(...)` (the same on Django's
  connection); no exchange call
- `queue.queue_promote(...)`, `queue.queue_promote_after_commit(*, user_id)`, `queue.queue_remove(...)`,
  `queue.queue_delete(...)`: the pool's waiting queue
- `processing.signal_process(*, signal_id)` (celery: grids, pyramids, exits)
- `orders.order_submit(*, order_id)`, `orders.order_sync(*, order_id)`, `orders.order_cancel(*, order_id)`
- `exits.group_close(*, group_id, purpose, actor=None)`, `exits.group_close_continue(*, group_id)`
- `monitor.monitor_fills(*, config_ids=None)`, `monitor.check_exits(*, prices=None)`
- `state.group_transition(*, group_id, to, reason, actor=None)`: the only place a group's status changes
- `reconcile.reconcile(*, user=None)`
- `configs.config_get(*, user)`, `configs.config_set(*, user, data, partial)`
- `flags.group_set_risk_flags(*, group_id, ...)`

The decisions they act on are pure functions in `positions.rules` (docs/architecture.md#decide-then-do);
positions/README.md lists them all.
"""
