"""`lkft parse LOG`: print a log's results as JSON `{"suite/test": "result"}`."""

from __future__ import annotations

import argparse
import json

from pytest_lkft.parsers import formats
from pytest_lkft.parsers.detect import parse


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the `lkft parse` arguments."""
    parser.add_argument("log", metavar="LOG", help="The log file to read")
    parser.add_argument(
        "--format",
        choices=formats.names(),
        default="auto",
        help="The log's format; detected from its first lines when auto",
    )
    parser.add_argument("--suite", metavar="NAME", help="Suite name for every result")


def run(args: argparse.Namespace) -> int:
    """Parse the log and print the results, sorted by id; 0 even when tests failed."""
    cases = parse(args.log, format=args.format, suite=args.suite)
    results = {case.id: case.result.value for case in cases}
    print(json.dumps(results, sort_keys=True, indent=2))
    return 0
