"""`cgn models list|pull|import`: what is installed, and installing official weights."""

import argparse
import sys
from pathlib import Path

from cgn_cli.store import configured_store, writable_store

IMPORT_FORMATS = ("official-imagenet", "official-mnist")


def _root(args: argparse.Namespace) -> Path:
    return writable_store(args.root, "no writable model store: pass --root DIR or set CGN_MODEL_STORE")


def _store(args: argparse.Namespace):
    from model_store import ModelStore

    return ModelStore(configured_store(args.root))


def cmd_list(args: argparse.Namespace) -> int:
    for e in _store(args).entries():
        if e.installed:
            m = e.manifest
            print(f"{e.name:28s} installed      {m.architecture:14s} {m.image_size:4d}px  {e.path}")
        else:
            print(f"{e.name:28s} not installed  install with: {e.install}")
    return 0


def _progress(done: int, total: int | None) -> None:
    if total:
        print(f"\r{done / 2**20:8.1f} / {total / 2**20:.1f} MiB", end="", file=sys.stderr, flush=True)


def cmd_pull(args: argparse.Namespace) -> int:
    from model_store.official import pull

    path = pull(
        args.model,
        _root(args),
        sha256=args.sha256,
        trust_first_download=args.trust_first_download,
        url=args.url,
        keep_download=args.keep_download,
        progress=None if args.quiet else _progress,
    )
    print(f"\ninstalled {path.name} at {path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from model_store import official

    if not args.path.is_file():
        raise ValueError(f"path: no such file {args.path}")
    if args.format == "official-mnist":
        if not args.name:
            raise ValueError("--name is required for official-mnist checkpoints")
        path = official.import_mnist(args.path, _root(args), args.name, args.dataset)
    else:
        path = official.import_imagenet(args.path, _root(args), args.name or "imagenet-cgn", args.truncation)
    print(f"installed {path.name} at {path}")
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list installed models; pull or import official weights")
    sub = parser.add_subparsers(dest="models_command", required=True)

    def common(p):
        p.add_argument("--root", type=Path, default=None, help="model-store root (default: $CGN_MODEL_STORE)")

    p = sub.add_parser("list", help="installed and installable models")
    common(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("pull", help="download, verify and install official weights")
    p.add_argument("model", choices=["imagenet"])
    p.add_argument("--sha256", help="expected sha256 of the official file (overrides the catalog)")
    p.add_argument("--trust-first-download", action="store_true", help="accept an unpinned file, record its hash")
    p.add_argument("--url", help="download from this URL instead (a mirror)")
    p.add_argument("--keep-download", action="store_true", help="keep the official .pth beside the store")
    p.add_argument("--quiet", action="store_true")
    common(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("import", help="install a local official checkpoint")
    p.add_argument("path", type=Path)
    p.add_argument("--format", choices=IMPORT_FORMATS, default="official-imagenet")
    p.add_argument("--name", help="model name (default imagenet-cgn; required for official-mnist)")
    p.add_argument("--dataset", choices=["colored", "double-colored", "wildlife"], help="official-mnist vocabulary")
    p.add_argument("--truncation", type=float, default=0.5, help="ImageNet noise truncation stored in the config")
    common(p)
    p.set_defaults(func=cmd_import)
