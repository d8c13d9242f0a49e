"""Prometheus metrics of one app (a registry per app, so several apps can live in one process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cgn_requests", "HTTP requests by route and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "cgn_request_seconds",
            "request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_size = Histogram(
            "cgn_microbatch_size",
            "samples per forward pass",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.queue_depth = Gauge("cgn_queue_depth", "requests waiting for the model", registry=r)
        self.images = Counter("cgn_images_generated", "samples generated", ["model"], registry=r)

    def on_batch(self, model: str, rows: int, depth: int) -> None:
        self.batch_size.labels(model).observe(rows)
        self.images.labels(model).inc(rows)
        self.queue_depth.set(depth)
