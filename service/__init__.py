"""HTTP service: FastAPI app, model runner, assets; the batch queue lives in service.batch."""
