"""TTL cleanup: jobs past their expiry lose their shards and their records.

Any worker (and the API, when it lists jobs) may run a sweep; a Redis lock lets one run at a time.
Finished jobs expire `ttl_s` after they finish; jobs that never finish expire `ttl_s` after submission.
"""

import logging
import time
import uuid

from service.batch.queue import BatchQueue
from service.batch.store import ResultStore

log = logging.getLogger("cgn.batch.cleanup")


def sweep(queue: BatchQueue, now: float | None = None, limit: int = 100) -> list[str]:
    lock = f"{queue.config.prefix}:sweep-lock"
    token = uuid.uuid4().hex
    if not queue.r.set(lock, token, nx=True, ex=300):
        return []
    removed = []
    try:
        for job_id in queue.expired(time.time() if now is None else now, limit):
            got = queue.spec(job_id)
            if got is not None and got[0].results:
                ResultStore(got[0].results).remove_tree(job_id)
            queue.forget(job_id)
            removed.append(job_id)
            log.info("expired job %s removed", job_id)
        forget_dead_workers(queue)
    finally:
        if queue.r.get(lock) == token.encode():
            queue.r.delete(lock)
    return removed


def forget_dead_workers(queue: BatchQueue, silent_s: float | None = None) -> None:
    """Drop heartbeat records and consumers of workers gone for `silent_s` (default: the queue's worker expiry;
    SIGKILLed workers never deregister). A consumer still holding chunks is kept: deleting it would drop
    them from the pending list."""
    silent_s = queue.config.worker_expiry_s if silent_s is None else silent_s
    queue.forget_workers(silent_s)
    try:
        consumers = queue.r.xinfo_consumers(queue.stream, queue.config.group)
    except Exception:  # no stream or group yet
        return
    for c in consumers:
        if int(c["pending"]) == 0 and int(c["idle"]) > silent_s * 1000:
            queue.r.xgroup_delconsumer(queue.stream, queue.config.group, c["name"])
