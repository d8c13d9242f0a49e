"""Everything one app instance owns: settings, the model store, the runner, assets and metrics."""

from dataclasses import dataclass

from model_store import ModelStore
from service.assets import AssetStore
from service.metrics import Metrics
from service.runner import Runner
from service.settings import Settings


@dataclass
class Services:
    """Lives on app.state.services; handlers get it through service.deps.get_services."""

    settings: Settings
    store: ModelStore
    runner: Runner
    assets: AssetStore
    metrics: Metrics
