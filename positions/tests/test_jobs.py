"""Services enqueue work by task name (`positions.jobs`): every name they use is a registered task."""

from __future__ import annotations

from positions import jobs


def test_every_task_name_the_services_enqueue_is_registered_with_celery():
    from tradingsite.celery import app

    app.loader.import_default_modules()
    names = [value for key, value in vars(jobs).items() if key.isupper() and isinstance(value, str)]
    assert names, "positions.jobs names no task"
    assert [name for name in names if name not in app.tasks] == []
