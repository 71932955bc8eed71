from celery import shared_task

from .services import queue_promote


@shared_task(name="riskengine.promote_queue", ignore_result=True)
def promote_queue(user_id: str) -> list[str]:
    return queue_promote(user_id=user_id)
