"""`cgn serve` hands its options to the app as Settings: over the CGN_* environment, without writing to it."""

import os
from pathlib import Path

import uvicorn

import service.app
from cgn_cli.main import main


def test_options_override_the_environment_and_leave_it_alone(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("CGN_DEVICE", "cpu")
    monkeypatch.setenv("CGN_DEFAULT_MODEL", "from-env")
    monkeypatch.setenv("CGN_PORT", "1234")
    monkeypatch.delenv("CGN_MODELS", raising=False)
    seen = {}

    def create_app(settings):
        seen["settings"] = settings
        return "app"

    monkeypatch.setattr(service.app, "create_app", create_app)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, run=kw))
    environ = dict(os.environ)
    argv = ["serve", "--port", "8123", "--models", "a, b", "--model-store", str(tmp_path), "--log-level", "warning"]
    assert main(argv) == 0
    assert dict(os.environ) == environ
    s = seen["settings"]
    assert (s.port, s.models, s.model_store, s.log_level) == (8123, ["a", "b"], tmp_path, "warning")  # options
    assert (s.default_model, s.device, s.host) == ("from-env", "cpu", "127.0.0.1")  # environment, default
    assert seen["app"] == "app"
    assert seen["run"] == {"host": "127.0.0.1", "port": 8123, "log_level": "warning", "access_log": False}
