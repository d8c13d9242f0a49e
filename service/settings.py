"""All service configuration: one object read from CGN_* environment variables (and an optional .env)."""

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Documented in docs/service.md; every field is CGN_<FIELD_NAME> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CGN_", env_file=".env", extra="ignore", protected_namespaces=())

    # where models live
    model_store: Path | None = Field(None, description="writable model-store root (built-ins are always visible)")
    default_model: str = Field("mnist-wildlife", description="model used when a request names none")
    models: CommaList = Field(default_factory=list, description="models to load at start-up (default: the default)")
    device: str = Field("cpu", description="torch device of the model owner, e.g. cpu, cuda:0")
    model_cache_size: int = Field(4, ge=1, description="models kept loaded (LRU; at least the preloaded ones)")

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: CommaList = Field(default_factory=list, description="bearer keys; empty = no auth")
    log_level: str = "info"

    # runner: dynamic micro-batching
    max_batch_size: int = Field(32, ge=1, description="most samples per forward pass; larger requests run in chunks")
    chunk_rows: int = Field(4, ge=1, description="rows per pass of a large request while small ones come in")
    max_wait_ms: float = Field(10.0, ge=0, description="wait for arriving requests to join a batch (never alone)")
    max_queue: int = Field(512, ge=1, description="requests waiting for the model; beyond: 503 + Retry-After")
    max_queue_delay_ms: float = Field(500.0, gt=0, description="time an admitted request may spend inside; beyond: 503")
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503")
    threads: int = Field(0, ge=0, description="torch intra-op threads of the model owner; 0 = torch default")

    # request limits
    max_samples: int = Field(1024, ge=1, description="most samples one POST /samples returns")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body")
    body_timeout_s: float = Field(15.0, gt=0, description="longest pause in a request body; beyond: 408")
    max_asset_side: int = Field(4096, ge=1, description="widest/tallest uploaded asset, pixels")
    max_asset_pixels: int = Field(4096 * 4096, ge=1, description="most pixels an uploaded asset may decode to")
    max_assets: int = Field(1000, ge=1, description="most uploaded assets kept; one more: 409 (replacing one is fine)")
    max_asset_bytes: int = Field(1024**3, ge=1, description="bytes all uploaded assets may take on disk; beyond: 413")

    # files
    assets_dir: Path = Field(Path("var/assets"), description="uploaded assets")
    results_dir: str = Field("var/results", description="batch job shards: a local dir or any fsspec URL (s3://...)")

    # batch queue (docs/batch.md)
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="broker of the batch queue")
    batch_prefix: str = Field("cgn:batch", description="prefix of every Redis key of the batch queue")
    batch_shard_size: int = Field(1000, ge=1, description="default samples per shard (= per queued chunk)")
    batch_max_n: int = Field(1_000_000, ge=1, description="most samples one batch job may ask for")
    batch_max_shards: int = Field(100_000, ge=1, description="most shards (chunks) one batch job may have")
    batch_max_queued_samples: int = Field(10_000_000, ge=1, description="samples queued over all jobs; beyond: 503")
    batch_visibility_timeout_s: float = Field(60.0, gt=0, description="a chunk idle this long is redelivered")
    batch_heartbeat_s: float = Field(5.0, gt=0, description="worker heartbeat and chunk-lease renewal interval")
    batch_max_deliveries: int = Field(5, ge=1, description="deliveries of one chunk before it is marked failed")
    batch_ttl_s: float = Field(604_800.0, gt=0, description="jobs and shards are deleted this long after (a week)")
    batch_gen_batch_size: int = Field(256, ge=1, description="samples per forward pass inside a worker")
    batch_worker_grace_s: float = Field(30.0, ge=0, description="a worker's time to finish its chunk on SIGTERM")
    batch_sweep_s: float = Field(60.0, gt=0, description="how often a worker deletes expired jobs and dead workers")
    batch_worker_expiry_s: float = Field(300.0, gt=0, description="a silent worker leaves the worker list after this")
    batch_worker_models: int = Field(2, ge=1, description="models a worker keeps loaded (least recently used out)")
    batch_full_retry_after_s: int = Field(10, ge=1, description="Retry-After when the batch queue is full")
    redis_retry_after_s: int = Field(5, ge=1, description="Retry-After when Redis is unreachable")

    @field_validator("models", "api_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def preload(self) -> list[str]:
        """Models loaded before /readyz turns ready."""
        return list(dict.fromkeys([self.default_model, *self.models]))
