"""`lkft` (alias `pytest-lkft`): the command line beside the plugin.

Each sub-command is one module of this package; this file only wires them. A module
provides `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pytest_lkft.errors import LkftError

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("pytest_lkft.cli.parse", "Parse a test log and print its results as JSON"),
    "cache": ("pytest_lkft.cli.cache", "Fetch, inspect, prune or serve the artifact cache"),
    "push": ("pytest_lkft.cli.push", "Send spooled submissions to SQUAD"),
    "compare": ("pytest_lkft.cli.store", "List regressions and fixes between two builds"),
    "builds": ("pytest_lkft.cli.store", "List the builds in the store"),
    "show": ("pytest_lkft.cli.store", "Show one build of the store"),
    "serve": ("pytest_lkft.cli.serve", "Serve the store over HTTP, SQUAD-compatible"),
    "junit": ("pytest_lkft.cli.junit", "Merge JUnit XML files"),
    "build": ("pytest_lkft.cli.build", "Build a kernel as the --lkft-tree options do"),
    "ltp-build": ("pytest_lkft.cli.ltpbuild", "Build LTP for a device as --lkft-ltp-src does"),
}


def build_parser() -> argparse.ArgumentParser:
    """Make the top-level parser, loading only the sub-command that is asked for."""
    parser = argparse.ArgumentParser(prog="lkft", description="Linux kernel functional testing")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(sub, name)
            sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `lkft` sub-command; errors print one line and exit 2."""
    if argv is not None:
        sys.argv[1:] = argv
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except LkftError as error:
        print(f"lkft {args.command}: error: {error}", file=sys.stderr)
        return 2
