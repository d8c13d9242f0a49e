"""Entry point of `cgn`; each subcommand lives in its own module with `add_parser(subparsers)`."""

import argparse
import importlib
import sys

SUBCOMMANDS = ["train", "sample", "interpolate", "models", "serve", "worker"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cgn", description="Counterfactual Generative Networks as a service.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"cgn_cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cgn_cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not hasattr(args, "rest"):  # only pass-through subcommands take unknown options
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.rest = [*extra, *args.rest]
    try:
        return int(args.func(args) or 0)
    except (ValueError, LookupError) as exc:
        print(f"cgn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
