"""Docker HEALTHCHECK: exit 0 when the MONAI Label server at URL answers ``GET /info/`` with its app's JSON."""

from __future__ import annotations

import json
import sys
import urllib.request


def main(argv: list[str]) -> int:
    url = (argv[0] if argv else "http://127.0.0.1:8000").rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/info/", timeout=8) as response:
            info = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}/info/: {exc}", file=sys.stderr)
        return 1
    if "models" not in info:
        print(f"unhealthy: {url}/info/ answered without a models list", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
