"""The ``personalize`` command line.

>>> main(["--version"])  # doctest: +ELLIPSIS
personalize ...
0

Exit status: 0 when all went well; 1 when ``check`` found problems; 2 for a usage mistake
(a bad option or number, a missing file, nothing to check, an unusable record).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from personalize.util.cli_types import whole_number

CHECKED_FOLDERS = ("segments", "content")  # `personalize check --<name> DIR`, default ./<name>


def _check_validators() -> dict[str, Callable[[Path], list[str]]]:
    """Folder kind -> validator returning ``path:line: problem`` strings (empty when valid)."""
    from personalize.content.loading import validate_content
    from personalize.rules.segments import validate_segments

    return {
        "segments": validate_segments,
        "content": validate_content,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personalize", description="Self-hosted website personalization."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="run the demo site (from a source checkout)")
    demo.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)"
    )
    demo.add_argument(
        "--port",
        type=whole_number(1, 65535),
        default=8000,
        help="the port to listen on (default: %(default)s)",
    )
    check = commands.add_parser(
        "check",
        help="validate the segments and content folders",
        description="Validate segment and content files; print every problem as "
        "FILE:LINE: problem. Exit status: 0 all valid, 1 problems found, 2 nothing to check "
        "(no folder, or no YAML file in it).",
    )
    for name in CHECKED_FOLDERS:
        check.add_argument(f"--{name}", metavar="DIR", help=f"{name} folder (default: ./{name})")
    _add_learning_commands(commands)
    from personalize.impact.commands import add_command as add_report

    add_report(commands)  # `personalize report [--json | --csv]`
    from personalize.web.admin.passwords import add_command as add_hash_password

    add_hash_password(commands)  # `personalize hash-password [--stdin]`
    return parser


def _add_learning_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``simulate``, ``evaluate`` and ``learner`` (personalize.learning.commands)."""
    from personalize.learning.commands import add_commands

    add_commands(commands)


def _check(args: argparse.Namespace) -> int:
    """Print every problem as ``path:line: problem``; 1 when there are any, 2 when there was
    nothing to check, else 0."""
    validators = _check_validators()
    problems: list[str] = []
    checked: list[str] = []
    files_checked = 0
    for name in CHECKED_FOLDERS:
        given: str | None = getattr(args, name)
        folder = Path(given or name)
        if not folder.is_dir():
            if given is not None:  # a default folder may be absent, a named one may not
                problems.append(f"{folder}: no such folder")
            continue
        validate = validators.get(name)
        if validate is not None:
            problems.extend(validate(folder))
            files = sum(1 for p in folder.rglob("*") if p.suffix in (".yaml", ".yml"))
            files_checked += files
            checked.append(f"{folder} ({files} file{'s' if files != 1 else ''})")
    for problem in problems:
        print(problem)
    if problems:
        count = len(problems)
        print(f"personalize check: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    if not files_checked:
        where = ", ".join(checked) or f"no {'/ or '.join(CHECKED_FOLDERS)}/ folder in {Path.cwd()}"
        print(
            f"personalize check: nothing to check ({where}); run it where those folders are, "
            "or name them: --segments DIR --content DIR",
            file=sys.stderr,
        )
        return 2
    print(f"personalize check: ok, checked {', '.join(checked)}")
    return 0


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
    if args.command == "check":
        return _check(args)
    if args.command == "hash-password":
        from personalize.web.admin.passwords import hash_password_command

        return hash_password_command(args)
    if args.command == "report":
        from personalize.impact.commands import run as report

        return report(args)
    if args.command in ("simulate", "evaluate", "learner"):
        from personalize.learning.commands import run

        return run(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
