"""`lkft parse LOG`: print a log's results as they are read, as JSON or JSON Lines.

`--output json` (the default) prints one object, `{"suite/test": "result", ...}`, one
result a line in the log's order; `--output jsonl` prints one object a line,
`{"test": "suite/test", "result": "result"}`. Either is written while the log is read
(issue 17): memory does not grow with the log, and `| head` gets its first results at
once. An id the log reports twice is printed twice (a JSON reader keeps the last; JSON
Lines keep both).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from json.encoder import encode_basestring_ascii as json_string
from types import ModuleType
from typing import TextIO

from pytest_lkft.parsers import formats
from pytest_lkft.parsers.detect import LogFile
from pytest_lkft.parsers.model import Case

_jsonrows: ModuleType | None
try:  # built at install where a C compiler is
    from pytest_lkft.cli import _jsonrows
except ImportError:  # not built: the same text from python_rows
    _jsonrows = None

BATCH = 512  # cases formatted at once


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
    parser.add_argument(
        "--output",
        choices=sorted(WRITERS),
        default="json",
        help="json: one object, a result a line; jsonl: one object a line (default json)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the results as the log is read; 0 even when tests failed, 1 when it held none."""
    # The cyclic garbage collector keeps walking the cases a batch holds, which costs a
    # third of the command's time on a large log (bench/bench_parse.py); nothing here
    # makes cycles, and reference counting frees every case once written.
    gc.disable()
    try:
        with LogFile(args.log, format=args.format, suite=args.suite) as log:
            if WRITERS[args.output](log.cases(), sys.stdout):
                return 0
            print(f"lkft parse: {nothing_found(log)}", file=sys.stderr)
        return 1
    finally:
        gc.enable()


def nothing_found(log: LogFile) -> str:
    """Say in one line that a log held no results, and what was tried."""
    if log.recognised:
        return f"no results in {log.path} (read as {log.format}); check --format"
    tried = ", ".join(formats.names()[1:])
    return (f"no results in {log.path}: no format recognised it (tried {tried}); "
            "pass --format if it is one of them")


def write_json(cases: Iterable[Case], out: TextIO) -> int:
    """Write `{"suite/test": "result", ...}`, one result a line; return how many."""
    count = 0
    for batch in batches(cases):
        text = rows(batch, ",\n  ", ': "', '"')
        out.write(("{" + text[1:]) if not count else text)
        count += len(batch)
    out.write("\n}\n" if count else "{}\n")
    out.flush()
    return count


def write_jsonl(cases: Iterable[Case], out: TextIO) -> int:
    """Write `{"test": "suite/test", "result": "result"}` lines; return how many."""
    count = 0
    for batch in batches(cases):
        out.write(rows(batch, '{"test": ', ', "result": "', '"}\n'))
        count += len(batch)
    out.flush()
    return count


WRITERS: dict[str, Callable[[Iterable[Case], TextIO], int]] = {
    "json": write_json,
    "jsonl": write_jsonl,
}


def python_rows(cases: list[Case], prefix: str, middle: str, suffix: str) -> str:
    """For each case: prefix, its id as a JSON string, middle, its result, suffix."""
    return "".join([f"{prefix}{json_string(case.id)}{middle}{case.result}{suffix}"
                    for case in cases])


def rows(cases: list[Case], prefix: str, middle: str, suffix: str) -> str:
    """`python_rows`, by the C module where it is built (a third of the command's time)."""
    if _jsonrows is None:
        return python_rows(cases, prefix, middle, suffix)
    text: str = _jsonrows.rows(cases, prefix, middle, suffix, json_string)
    return text


def batches(cases: Iterable[Case]) -> Iterator[list[Case]]:
    """The cases in lists of up to BATCH, as they come."""
    source = iter(cases)
    while batch := list(islice(source, BATCH)):
        yield batch
