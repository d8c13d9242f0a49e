"""`cgn serve`: the HTTP service under uvicorn; options override the CGN_* environment (service/settings.py)."""

import argparse

OPTIONS = ("host", "port", "model_store", "default_model", "models", "device", "log_level")  # Settings fields


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP service (settings: CGN_* environment, docs/service.md)")
    p.add_argument("--host", help="bind address (CGN_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (CGN_PORT, default 8000)")
    p.add_argument("--model-store", help="writable model-store root (CGN_MODEL_STORE)")
    p.add_argument("--default-model", help="model used when a request names none (CGN_DEFAULT_MODEL)")
    p.add_argument("--models", help="comma-separated models to load at start-up (CGN_MODELS)")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (CGN_DEVICE)")
    p.add_argument("--log-level", help="uvicorn/log level (CGN_LOG_LEVEL)")
    p.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict:
    """The options given on the command line; they win over CGN_* variables and .env (pydantic-settings)."""
    return {option: getattr(args, option) for option in OPTIONS if getattr(args, option) is not None}


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(**overrides(args))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False)
    return 0
