"""Pick the parser for a log and run it: the one entry point for files and lines.

`detect_format` looks at the first lines (up to `DETECT_LINES`) and asks the formats of
`pytest_lkft.parsers.formats` in rank order; the built-in ones answer, first match wins:

- `kirk`: the text starts with `{` (kirk's `--json-report`);
- `lava`: a LAVA job-log line `- {"dt": ...`;
- `kselftest`: a runner line `ok 1 selftests: timers: nanosleep` or `# selftests: x: y`;
- `ktap`: a `KTAP version N` / `TAP version N` line;
- `lava`: a `<LAVA_SIGNAL_...>` signal or LAVA's `lava-test-runner` (a LAVA console);
- `ltp`: an ltp-pan table header, `tag=... stime=`, `<<<test_start>>>`, kirk's console
  (`abort01: pass  (0.019s)`), runltp's banner or LTP result lines (`TPASS`...);
- otherwise `ktap` (which finds nothing in a log without KTAP).

`parse` reads a path lazily (bytes decoded as UTF-8 with replacement) or any iterable
of lines; only the detection window is held in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.parsers import formats
from pytest_lkft.parsers.lines import decode_lines
from pytest_lkft.parsers.model import Case

DETECT_LINES = 20000
RUNLTP_LOG_FILE = re.compile(r"^LOG File: (\S+)", re.MULTILINE)


def detect_format(first_lines: Iterable[str]) -> str:
    """Name the format of a log from its first lines (see the module docstring)."""
    return formats.detect("\n".join(line.rstrip("\r\n") for line in first_lines))


def parse(
    source: str | os.PathLike[str] | Iterable[str], format: str = "auto", suite: str | None = None
) -> list[Case]:
    """Parse a log file (a path) or lines into cases; `format` is a registered format's name
    or `auto`."""
    if format != "auto":
        formats.get(format)  # an unknown name: one line listing the known ones
    if isinstance(source, str | os.PathLike):
        return parse_file(Path(source), format, suite)
    return parse_lines(iter(source), format, suite)


def parse_file(path: Path, format: str, suite: str | None) -> list[Case]:
    """Parse the log at `path`, streaming it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise UserError(f"no such log file: {path}; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory; give the log file inside it") from None
    except OSError as error:
        raise UserError(
            f"cannot read log {path}: {error.strerror}; check its permissions"
        ) from None
    with handle:
        lines = decode_lines(handle)
        head = list(islice(lines, DETECT_LINES))
        if format == "auto":
            format = detect_format(head)
        reader = formats.get(format).parse_binary
        if reader is not None:  # e.g. KTAP's, in blocks: the C scanner's fast input
            cases = list(reader(handle, suite, head))
        else:
            cases = parse_lines(chain(head, lines), format, suite)
    if format == "ltp" and not cases:
        cases = parse_runltp_result_file(path, head, suite)
    return cases


def parse_lines(lines: Iterator[str], format: str, suite: str | None) -> list[Case]:
    """Parse lines of a known or `auto` format."""
    if format == "auto":
        head = list(islice(lines, DETECT_LINES))
        format = detect_format(head)
        lines = chain(head, lines)
    return formats.get(format).parse(lines, suite)


def parse_runltp_result_file(path: Path, head: list[str], suite: str | None) -> list[Case]:
    """runltp's `-q` console names no test; its banner names the `-l` result file.

    Read that file when it sits beside the console log (`LOG File: /x/y.result.log`).
    """
    match = RUNLTP_LOG_FILE.search("".join(head))
    if match is None:
        return []
    result_file = path.parent / Path(match.group(1)).name
    if not result_file.is_file() or result_file == path:
        return []
    with result_file.open("rb") as handle:
        return formats.get("ltp").parse(decode_lines(handle), suite)
