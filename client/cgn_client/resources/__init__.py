"""The client's namespaces (`client.models`, `client.assets`, `client.batches`) and the request builders."""

from cgn_client.resources.assets import Assets, AsyncAssets
from cgn_client.resources.batches import AsyncBatches, AsyncBatchJob, Batches, BatchJob
from cgn_client.resources.models import AsyncModels, Models

__all__ = ["Assets", "AsyncAssets", "AsyncBatchJob", "AsyncBatches", "AsyncModels", "BatchJob", "Batches", "Models"]
