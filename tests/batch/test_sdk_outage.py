"""SDK waits across an API restart: redis-server, `cgn serve` and `cgn worker` as real processes.

The API is killed while `job.wait()` polls, stays down DOWN_S seconds, and comes back on the same port
(a new process: its startup adds to the outage). DOWN_S outlasts any fixed retry schedule of a few
seconds (bounded retries with 0.25..4 s backoff give up after ~8 s): only the waits' outage_timeout
carries them through. The waits (sync and async) end with the job's result; a plain call and a wait with
a short outage_timeout give up during the outage, as bounded retries must.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cgn_client import APIConnectionError, AsyncCGNClient, CGNClient

pytestmark = pytest.mark.slow
DOWN_S = 8.0


async def _async_wait(url: str, job_id: str) -> dict:
    async with AsyncCGNClient(url) as client:
        job = await client.batches.get(job_id)
        return await job.wait(timeout=240)


def test_job_wait_rides_out_an_api_restart(stack):
    stack.start_api()
    client = stack.client()
    job = client.submit_batch(24, seed=3, shard_size=8)  # no worker yet: it stays queued through the outage
    impatient = client.batches.get(job.id)
    with ThreadPoolExecutor(3) as pool:
        waiting = pool.submit(job.wait, timeout=240)
        waiting_async = pool.submit(asyncio.run, _async_wait(stack.url, job.id))
        giving_up = pool.submit(impatient.wait, timeout=240, outage_timeout=1.0)
        time.sleep(1.0)  # all three are polling
        assert not waiting.done() and not waiting_async.done() and not giving_up.done()

        stack.kill_api()
        down = time.monotonic()
        with CGNClient(stack.url) as plain, pytest.raises(APIConnectionError, match="Connection refused"):
            plain.batches.get(job.id)  # bounded: max_retries (2) retries, ~1.5 s
        assert time.monotonic() - down < DOWN_S
        with pytest.raises(APIConnectionError, match="outage_timeout=1"):
            giving_up.result(timeout=60)
        stack.start_worker()  # the job can only finish once the outage is over
        time.sleep(max(0.0, down + DOWN_S - time.monotonic()))
        assert not waiting.done() and not waiting_async.done()
        stack.start_api()
        stack.client().close()  # returns once the new API answers
        outage = time.monotonic() - down

        status = waiting.result(timeout=240)
        status_async = waiting_async.result(timeout=240)
    assert outage >= DOWN_S
    assert status["state"] == status_async["state"] == "completed"
    assert status["done"] == status_async["done"] == 24 and len(status["shards"]) == 3
    stack.check(job.id)
    client.close()
