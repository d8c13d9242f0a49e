#!/usr/bin/env python3
"""Container health probe: exit 0 when the URL answers 2xx in time. The slim image has no curl."""

import sys
import urllib.request


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/readyz"
    timeout = float(argv[2]) if len(argv) > 2 else 4.0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except (OSError, ValueError) as exc:  # HTTPError (non-2xx) and URLError are OSErrors
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
