"""`cgn worker`: a batch-queue worker process (one per device; start as many as you have devices)."""

import argparse
import logging


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "worker",
        help="take batch-job chunks from Redis and write shards",
        description="Run a batch worker. Defaults come from CGN_* settings (see docs/batch.md).",
    )
    p.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda:1 (default: CGN_DEVICE)")
    p.add_argument("--redis-url", default=None, help="broker URL (default: CGN_REDIS_URL)")
    p.add_argument("--model-store", default=None, help="model-store root (default: CGN_MODEL_STORE)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: CGN_THREADS, else 1)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per forward pass")
    p.add_argument("--name", default=None, help="consumer name (default: host-pid-random)")
    p.add_argument("--grace", type=float, help="seconds to finish the current chunk on SIGTERM (default 30)")
    p.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from model_store import ModelStore
    from service.batch.queue import BatchQueue, QueueConfig
    from service.batch.worker import Worker, serve_metrics
    from service.settings import Settings

    given = {
        "device": args.device,
        "threads": args.threads,
        "redis_url": args.redis_url,
        "model_store": args.model_store,
        "batch_gen_batch_size": args.batch_size,
        "batch_worker_grace_s": args.grace,
    }
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    device = settings.device
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"--device {device!r}: not a torch device ({exc}); e.g. cpu, cuda, cuda:1") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index or 0) >= count:
            raise ValueError(f"--device {device}: this machine has {count} CUDA device(s)")
    torch.set_num_threads(max(1, settings.threads or 1))
    queue = BatchQueue.from_url(settings.redis_url, QueueConfig.from_settings(settings))
    worker = Worker(queue, ModelStore(settings.model_store), settings, name=args.name)
    worker.install_signals()
    if args.metrics_port is not None:
        serve_metrics(worker, args.metrics_port)
    worker.run(idle_exit_s=args.idle_exit)
    return 0
