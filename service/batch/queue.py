"""The broker: Redis Streams consumer groups for chunks, Redis hashes for job records.

One stream entry per chunk. Workers read with XREADGROUP, keep a chunk's lease alive by re-claiming
it (XCLAIM JUSTID resets its idle time) and settle it with one Lua script that ACKs, deletes the entry
and counts the chunk once (a set of settled chunk indices makes a second completion a no-op).
Entries idle longer than the visibility timeout (their worker died) are taken over with XAUTOCLAIM;
the delivery counter of the pending-entries list marks poison chunks. Every state change of a job is
one script, so a job is never half-updated when Redis or a worker dies between two commands.
"""

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from service.batch.spec import BatchSpec

ACTIVE = ("queued", "running")
STATES = ("queued", "running", "completed", "failed", "cancelled")
MAX_ERRORS = 50


@dataclass(frozen=True)
class QueueConfig:
    prefix: str = "cgn:batch"
    group: str = "workers"
    visibility_timeout_s: float = 60.0
    heartbeat_s: float = 5.0
    max_deliveries: int = 5
    ttl_s: float = 7 * 24 * 3600.0
    max_queued_samples: int = 10_000_000
    worker_expiry_s: float = 300.0  # a worker silent this long is dropped from the list (3 heartbeats: lost)

    @classmethod
    def from_settings(cls, settings: Any) -> "QueueConfig":
        """Fields of Settings named batch_<field> override the defaults."""
        names = [f for f in cls.__dataclass_fields__ if hasattr(settings, f"batch_{f}")]
        return cls(**{f: getattr(settings, f"batch_{f}") for f in names})


@dataclass(frozen=True)
class Delivery:
    entry_id: str
    job_id: str
    chunk: int
    deliveries: int  # how many times this chunk was handed out, this time included


class QueueFull(Exception):
    def __init__(self, queued: int, limit: int):
        self.queued, self.limit = queued, limit
        super().__init__(f"the batch queue holds {queued} samples not yet generated; the limit is {limit}")


class IdempotencyConflict(Exception):
    """The idempotency key already names a job that was submitted with another request body."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"the key was first used for job {job_id}, with a different request body")


# An idempotency key maps to "<job id> <fingerprint of the request>" while its job exists: the same key
# with the same request returns that job, with another request it is a conflict (a job that is gone,
# deleted or expired, frees its key).
_SUBMIT = """
if KEYS[7] ~= '' then
  local seen = redis.call('GET', KEYS[7])
  if seen then
    local id, fp = seen, ''
    local sep = string.find(seen, ' ', 1, true)
    if sep then id, fp = string.sub(seen, 1, sep - 1), string.sub(seen, sep + 1) end
    if redis.call('EXISTS', ARGV[11] .. id) == 1 then
      if fp ~= '' and fp ~= ARGV[10] then return {3, id} end
      return {2, id}
    end
  end
end
local queued = tonumber(redis.call('GET', KEYS[4]) or '0')
local n = tonumber(ARGV[3])
if queued + n > tonumber(ARGV[7]) then return {0, queued} end
redis.pcall('XGROUP', 'CREATE', KEYS[5], ARGV[9], '0', 'MKSTREAM')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'spec', ARGV[2], 'state', 'queued', 'n', n, 'done', 0, 'failed', 0,
           'num_chunks', ARGV[4], 'created_at', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
redis.call('INCRBY', KEYS[4], n)
if ARGV[8] ~= '' then redis.call('SET', KEYS[6], ARGV[8]) end
for k = 0, tonumber(ARGV[4]) - 1 do redis.call('XADD', KEYS[5], '*', 'job', ARGV[1], 'chunk', k) end
if KEYS[7] ~= '' then
  local ttl = math.ceil(tonumber(ARGV[6]) - tonumber(ARGV[5]))
  redis.call('SET', KEYS[7], ARGV[1] .. ' ' .. ARGV[10], 'EX', ttl)
  redis.call('HSET', KEYS[1], 'idempotency_key', KEYS[7])
end
return {1, queued + n}
"""

# Drop a job's records, and its idempotency key if that still names the job.
_FORGET = """
local key = redis.call('HGET', KEYS[1], 'idempotency_key')
if key then
  local seen = redis.call('GET', key)
  if seen and (seen == ARGV[1] or string.sub(seen, 1, #ARGV[1] + 1) == ARGV[1] .. ' ') then
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
"""

# Drop a worker's heartbeat record unless it beat again since it was read.
_FORGET_WORKER = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

_START = """
local s = redis.call('HGET', KEYS[1], 'state')
if s == 'queued' then redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[1]); return 'running' end
return s
"""

_SETTLE = """
redis.call('XACK', KEYS[4], ARGV[4], ARGV[3])
redis.call('XDEL', KEYS[4], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 or redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  return 'duplicate'
end
local size = tonumber(ARGV[2])
if ARGV[8] == 'done' then
  redis.call('SADD', KEYS[2], ARGV[1]); redis.call('HINCRBY', KEYS[1], 'done', size)
else
  redis.call('SADD', KEYS[3], ARGV[1]); redis.call('HINCRBY', KEYS[1], 'failed', size)
end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return state end
redis.call('DECRBY', KEYS[5], size)
local settled = redis.call('SCARD', KEYS[2]) + redis.call('SCARD', KEYS[3])
if settled >= tonumber(redis.call('HGET', KEYS[1], 'num_chunks')) then
  local final = 'completed'
  if redis.call('SCARD', KEYS[3]) > 0 then final = 'failed' end
  redis.call('HSET', KEYS[1], 'state', final, 'finished_at', ARGV[5])
  redis.call('ZADD', KEYS[6], tonumber(ARGV[5]) + tonumber(ARGV[6]), ARGV[7])
  return final
end
return 'running'
"""

_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'queued' or state == 'running' then
  local h = redis.call('HMGET', KEYS[1], 'n', 'done', 'failed')
  redis.call('DECRBY', KEYS[2], tonumber(h[1]) - tonumber(h[2]) - tonumber(h[3]))
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
  return 'cancelled'
end
return state
"""


class BatchQueue:
    """Job records and the chunk stream; used by the API (submit, status, cancel) and by workers."""

    def __init__(self, client: redis.Redis, config: QueueConfig | None = None):
        self.r = client
        self.config = config or QueueConfig()
        p = self.config.prefix
        self.stream, self.jobs, self.expiry = f"{p}:chunks", f"{p}:jobs", f"{p}:expiry"
        self.queued_key, self.workers_key = f"{p}:queued", f"{p}:workers"
        self._submit = self.r.register_script(_SUBMIT)
        self._start = self.r.register_script(_START)
        self._settle = self.r.register_script(_SETTLE)
        self._cancel = self.r.register_script(_CANCEL)
        self._forget = self.r.register_script(_FORGET)
        self._forget_worker = self.r.register_script(_FORGET_WORKER)

    @classmethod
    def from_url(cls, url: str, config: QueueConfig | None = None) -> "BatchQueue":
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2, health_check_interval=10)
        return cls(client, config)

    def job_key(self, job_id: str, part: str = "") -> str:
        return f"{self.config.prefix}:job:{job_id}" + (f":{part}" if part else "")

    # ---- API side -------------------------------------------------------------------------------
    def idempotency_key(self, key: str, scope: str = "open") -> str:
        """The Redis key of an idempotency key; `scope` keeps the keys of different API keys apart."""
        return f"{self.config.prefix}:idempotency:{scope}:{key}"

    def submit(
        self,
        spec: BatchSpec,
        explicit: np.ndarray | None = None,
        idempotency_key: str | None = None,
        *,
        scope: str = "open",
        fingerprint: str = "",
    ) -> str:
        """-> job id. A repeated idempotency key (within its scope) returns the first job's id, so a client
        retrying a POST whose answer it lost does not queue the job twice; IdempotencyConflict when the
        first job was submitted with another `fingerprint` (another request body)."""
        job_id = uuid.uuid4().hex
        now = time.time()
        labels = b"" if explicit is None else np.ascontiguousarray(explicit, dtype="<i8").tobytes()
        keys = [self.job_key(job_id), self.jobs, self.expiry, self.queued_key, self.stream]
        keys.append(self.job_key(job_id, "labels"))
        keys.append(self.idempotency_key(idempotency_key, scope) if idempotency_key else "")
        args = [job_id, spec.to_json(), spec.n, spec.num_chunks, now, now + self.config.ttl_s]
        args += [self.config.max_queued_samples, labels, self.config.group, fingerprint, self.job_key("")]
        ok, value = self._submit(keys=keys, args=args)
        if ok == 0:
            raise QueueFull(int(value), self.config.max_queued_samples)
        if ok == 3:
            raise IdempotencyConflict(value.decode())
        return value.decode() if ok == 2 else job_id

    def status(self, job_id: str) -> dict[str, Any] | None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(self.job_key(job_id))
        pipe.smembers(self.job_key(job_id, "done"))
        pipe.smembers(self.job_key(job_id, "failed"))
        pipe.lrange(self.job_key(job_id, "errors"), 0, -1)
        h, done, failed, errors = pipe.execute()
        if not h:
            return None
        h = {k.decode(): v.decode() for k, v in h.items()}
        spec = BatchSpec.from_json(h["spec"])
        out: dict[str, Any] = {
            "id": job_id,
            "state": h["state"],
            "n": int(h["n"]),
            "done": int(h["done"]),
            "failed": int(h["failed"]),
            "num_shards": int(h["num_chunks"]),
            "done_shards": sorted(int(k) for k in done),
            "failed_shards": sorted(int(k) for k in failed),
            "errors": [json.loads(e) for e in errors],
            "spec": spec,
        }
        for t in ("created_at", "started_at", "finished_at"):
            out[t] = float(h[t]) if t in h else None
        score = self.r.zscore(self.expiry, job_id)
        out["expires_at"] = float(score) if score is not None else None
        return out

    def list_jobs(self, offset: int = 0, limit: int = 50) -> list[str]:
        return [j.decode() for j in self.r.zrevrange(self.jobs, offset, offset + limit - 1)]

    def count(self) -> int:
        return int(self.r.zcard(self.jobs))

    def cancel(self, job_id: str) -> str | None:
        keys = [self.job_key(job_id), self.queued_key, self.expiry]
        state = self._cancel(keys=keys, args=[time.time(), self.config.ttl_s, job_id])
        return state.decode() if state else None

    def forget(self, job_id: str) -> None:
        """Drop a job's records (after cancel) and free its idempotency key; its stream entries are acked by
        workers as orphans."""
        self.cancel(job_id)
        keys = [self.job_key(job_id, p) for p in ("", "done", "failed", "errors", "labels")]
        self._forget(keys=[*keys, self.jobs, self.expiry], args=[job_id])

    def expired(self, now: float, limit: int = 100) -> list[str]:
        return [j.decode() for j in self.r.zrangebyscore(self.expiry, "-inf", now, start=0, num=limit)]

    def queued_samples(self) -> int:
        return int(self.r.get(self.queued_key) or 0)

    def workers(self) -> list[dict[str, Any]]:
        """Workers heard from within `worker_expiry_s`, by name. One silent for 3 heartbeats (SIGKILLed, or
        cut off from Redis) is `alive: false` and in state `lost`, its last reported state in `last_state`;
        once silent for `worker_expiry_s` its record is dropped."""
        now = time.time()
        out = []
        for name, raw in sorted(self.r.hgetall(self.workers_key).items()):
            info = json.loads(raw)
            silent = now - info.get("heartbeat_at", 0)
            if silent > self.config.worker_expiry_s:
                self._forget_worker(keys=[self.workers_key], args=[name, raw])
                continue
            info["name"] = name.decode()
            info["alive"] = silent < 3 * self.config.heartbeat_s
            if not info["alive"]:
                info["last_state"], info["state"] = info.get("state"), "lost"
            out.append(info)
        return out

    def forget_workers(self, silent_s: float) -> list[str]:
        """Drop the heartbeat records of workers silent for more than `silent_s`; -> their names."""
        now = time.time()
        gone = []
        for name, raw in self.r.hgetall(self.workers_key).items():
            silent = now - json.loads(raw).get("heartbeat_at", 0) > silent_s
            if silent and self._forget_worker(keys=[self.workers_key], args=[name, raw]):
                gone.append(name.decode())
        return gone

    # ---- worker side ----------------------------------------------------------------------------
    def ensure_group(self) -> None:
        try:
            self.r.xgroup_create(self.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def take(self, consumer: str, block_ms: int = 1000) -> Delivery | None:
        """A chunk whose worker vanished (idle past the visibility timeout) first, else a new one."""
        min_idle = int(self.config.visibility_timeout_s * 1000)
        try:
            entries = self.r.xautoclaim(self.stream, self.config.group, consumer, min_idle, "0-0", count=1)[1]
            if not entries:
                got = self.r.xreadgroup(self.config.group, consumer, {self.stream: ">"}, count=1, block=block_ms)
                entries = got[0][1] if got else []
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # a fresh Redis (or one that lost its data): nothing to take yet
            return None
        if not entries:
            return None
        entry_id, fields = entries[0]
        pending = self.r.xpending_range(self.stream, self.config.group, min=entry_id, max=entry_id, count=1)
        deliveries = int(pending[0]["times_delivered"]) if pending else 1
        return Delivery(entry_id.decode(), fields[b"job"].decode(), int(fields[b"chunk"]), deliveries)

    def touch(self, consumer: str, d: Delivery) -> bool:
        """Heartbeat of a chunk lease: reset its idle time, if it is still ours."""
        pending = self.r.xpending_range(self.stream, self.config.group, min=d.entry_id, max=d.entry_id, count=1)
        if not pending or pending[0]["consumer"].decode() != consumer:
            return False
        self.r.xclaim(self.stream, self.config.group, consumer, 0, [d.entry_id], justid=True)
        return True

    def release(self, consumer: str, d: Delivery, count_attempt: bool = False) -> None:
        """Hand a chunk back now: mark it long idle so the next XAUTOCLAIM takes it. A shutdown
        does not count against the poison limit; a failed attempt does."""
        idle = int(self.config.visibility_timeout_s * 1000) + 1
        retry = d.deliveries if count_attempt else max(0, d.deliveries - 1)
        self.r.xclaim(
            self.stream, self.config.group, consumer, 0, [d.entry_id], idle=idle, retrycount=retry, justid=True
        )

    def start(self, job_id: str) -> str | None:
        state = self._start(keys=[self.job_key(job_id)], args=[time.time()])
        return state.decode() if state else None

    def state(self, job_id: str) -> str | None:
        s = self.r.hget(self.job_key(job_id), "state")
        return s.decode() if s else None

    def spec(self, job_id: str) -> tuple[BatchSpec, np.ndarray | None] | None:
        raw = self.r.hget(self.job_key(job_id), "spec")
        if raw is None:
            return None
        spec = BatchSpec.from_json(raw)
        explicit = None
        if spec.explicit:
            data = self.r.get(self.job_key(job_id, "labels"))
            explicit = np.frombuffer(data, dtype="<i8").reshape(-1, 3) if data else None
        return spec, explicit

    def settle(self, d: Delivery, size: int, ok: bool) -> str:
        keys = [self.job_key(d.job_id), self.job_key(d.job_id, "done"), self.job_key(d.job_id, "failed")]
        keys += [self.stream, self.queued_key, self.expiry]
        args = [d.chunk, size, d.entry_id, self.config.group, time.time(), self.config.ttl_s, d.job_id]
        args.append("done" if ok else "failed")
        return self._settle(keys=keys, args=args).decode()

    def drop(self, d: Delivery) -> None:
        """An entry of a job that is gone or over: acknowledge and delete it, count nothing."""
        pipe = self.r.pipeline(transaction=True)
        pipe.xack(self.stream, self.config.group, d.entry_id)
        pipe.xdel(self.stream, d.entry_id)
        pipe.execute()

    def record_error(self, job_id: str, chunk: int, worker: str, message: str, deliveries: int) -> None:
        key = self.job_key(job_id, "errors")
        entry = {"shard": chunk, "worker": worker, "message": message, "attempt": deliveries, "at": time.time()}
        pipe = self.r.pipeline(transaction=True)
        pipe.rpush(key, json.dumps(entry))
        pipe.ltrim(key, -MAX_ERRORS, -1)
        pipe.execute()

    def heartbeat(self, worker: str, info: dict[str, Any]) -> None:
        self.r.hset(self.workers_key, worker, json.dumps({**info, "heartbeat_at": time.time()}))

    def deregister(self, worker: str) -> None:
        """Forget a worker; its consumer goes only when it holds no chunk (deleting a consumer drops
        its pending entries, and a released chunk must stay claimable)."""
        self.r.hdel(self.workers_key, worker)
        try:
            pending = self.r.xpending_range(self.stream, self.config.group, "-", "+", 1, consumername=worker)
            if not pending:
                self.r.xgroup_delconsumer(self.stream, self.config.group, worker)
        except redis.ResponseError:
            pass
