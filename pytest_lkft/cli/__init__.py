"""`lkft` (alias `pytest-lkft`): the command line beside the plugin.

Each sub-command is one module of this package; this file only wires them. A module
provides `add_arguments(parser)` and `run(args) -> int`. What every command does alike
(issue 17): an error is one line naming the command's own options (the library names the
plugin's, `--lkft-tree`; `lkft build` calls it `--tree`), and a reader that goes away
(`lkft ... | head`) ends the command quietly, as it ends Unix tools.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import signal
import sys

from pytest_lkft.errors import LkftError

PLUGIN_OPTION = re.compile(r"--lkft-([a-z0-9-]+)")

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
    "bisect": ("pytest_lkft.cli.bisect", "Find the first bad commit of a regression"),
    "bisect-step": ("pytest_lkft.cli.bisect",
                    "Test the tree's checkout once, for `git bisect run` (0/1/125)"),
    "rootfs": ("pytest_lkft.cli.rootfs", "Build the Debian rootfs of --lkft-rootfs=debian"),
    "ltp-build": ("pytest_lkft.cli.ltpbuild", "Build LTP for a device as --lkft-ltp-src does"),
    "lava": ("pytest_lkft.cli.lava", "Print the LAVA job of a device, not submitted"),
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
    try:
        args = build_parser().parse_args(argv)
        try:
            status = int(args.run(args))
        except LkftError as error:
            message = own_options(str(error), args)
            print(f"lkft {args.command}: error: {message}", file=sys.stderr)
            status = 2
        sys.stdout.flush()  # here, not at exit, where a closed pipe would print a warning
        return status
    except BrokenPipeError:
        return reader_gone()


def own_options(message: str, args: argparse.Namespace) -> str:
    """Name the command's own options in a library message: `--lkft-NAME` becomes `--NAME`
    where the command has that option (the options' dests are in `args`)."""
    def rename(match: re.Match[str]) -> str:
        own = match.group(1)
        return f"--{own}" if hasattr(args, own.replace("-", "_")) else match.group(0)

    return PLUGIN_OPTION.sub(rename, message)


def reader_gone() -> int:
    """The reader of our output went away: end as a Unix tool killed by SIGPIPE ends, no
    message (the shell's status for it, 128 + 13), and nothing more written."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):  # what is buffered would fail again at exit
        with contextlib.suppress(OSError, ValueError):  # a stream with no descriptor
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
