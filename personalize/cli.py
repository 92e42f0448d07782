"""The ``personalize`` command line.

>>> main(["--version"])  # doctest: +ELLIPSIS
personalize ...
0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personalize", description="Self-hosted website personalization."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="run the demo site (from a source checkout)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``personalize`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from personalize import __version__

        print(f"personalize {__version__}")
        return 0
    if args.command == "demo":
        import uvicorn

        try:
            import demo_site.app  # noqa: F401 - fail early with a clear message
        except ImportError:
            print(
                "personalize demo: run it from a source checkout of personalize "
                "(the demo_site/ folder is not installed with the package)",
                file=sys.stderr,
            )
            return 2
        uvicorn.run("demo_site.app:app", host=args.host, port=args.port)
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
