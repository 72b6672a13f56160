"""Pick the parser for a log and run it: the one entry point for files and lines.

`detect_format` looks at the first lines (at most `DETECT_LINES` lines and
`DETECT_BYTES` characters, each line's first `SNIFF_CHARS`) and asks the formats of
`pytest_lkft.parsers.formats` in rank order; the built-in ones answer, first match wins:

- `kirk`: the text starts with `{` and has kirk's `"results"` (kirk's `--json-report`);
- `lava`: a LAVA job-log line `- {"dt": ...`;
- `kselftest`: a runner line `ok 1 selftests: timers: nanosleep` or `# selftests: x: y`;
- `ktap`: a `KTAP version N` / `TAP version N` line;
- `lava`: a `<LAVA_SIGNAL_...>` signal or LAVA's `lava-test-runner` (a LAVA console);
- `kirk-console`: kirk's `--verbose` banner (a rule, the test's name, a rule,
  `Executing: ...`);
- `ltp`: an ltp-pan table header, `tag=... stime=`, `<<<test_start>>>`, kirk's console
  (`abort01: pass  (0.019s)`), runltp's banner or LTP result words (`TPASS`...);
- otherwise `ktap` (which finds nothing in a log without KTAP).

Sniffing is bounded: a log of any size, or a single line of hundreds of MB, costs the
same to recognise (issue 17).

`LogFile` reads a path lazily, in whole lines of at most `lines.LINE_LIMIT` bytes
(decoded as UTF-8 with replacement), and yields its cases as they are read; a format
that is one document (kirk's JSON report) is read whole. `parse` gives a list, from a
path or from any iterable of lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

from pytest_lkft.errors import UserError
from pytest_lkft.parsers import formats
from pytest_lkft.parsers.lines import LogReader
from pytest_lkft.parsers.model import Case

DETECT_LINES = 20000
DETECT_BYTES = 1 << 20
SNIFF_CHARS = 4096
RUNLTP_LOG_FILE = re.compile(r"^LOG File: (\S+)", re.MULTILINE)


def read_head(lines: Iterator[str]) -> list[str]:
    """The first lines of a log, as many as detection looks at."""
    head: list[str] = []
    size = 0
    for line in lines:
        head.append(line)
        size += len(line)
        if len(head) >= DETECT_LINES or size >= DETECT_BYTES:
            break
    return head


def sniff_text(head: list[str]) -> str:
    """What the formats' sniffers see of the first lines: bounded, whatever their length."""
    return "\n".join(line[:SNIFF_CHARS].rstrip("\r\n") for line in head)[:DETECT_BYTES]


def detect_format(first_lines: Iterable[str]) -> str:
    """Name the format of a log from its first lines (see the module docstring)."""
    return formats.detect(sniff_text(read_head(iter(first_lines))))


class LogFile:
    """One log file being parsed.

    Lifecycle: `LogFile(path, format, suite)` opens the file (UserError naming it when it
    cannot) and reads the lines detection looks at; `format` is the format given or the one
    detected, and `recognised` says whether one was given or a format recognised the log
    (a log nothing recognises is read as `formats.FALLBACK`); `cases()` yields the cases
    as they are read, once; `close()` (or the `with` block's end) closes the file.
    """

    def __init__(self, path: str | os.PathLike[str], format: str = "auto",
                 suite: str | None = None) -> None:
        self.path, self.suite = Path(path), suite
        if format != "auto":
            formats.get(format)  # an unknown name: one line listing the known ones
        self.raw = open_log(self.path)
        self.reader = LogReader(self.raw)
        self.head = read_head(self.reader.lines())
        self.recognised = format != "auto"
        self.format = format
        if format == "auto":
            found = formats.sniff(sniff_text(self.head))
            self.recognised = found is not None
            self.format = found or formats.FALLBACK

    def cases(self) -> Iterator[Case]:
        """Yield the cases in the order the log reports them."""
        found = iter(self._parse())
        if self.format != "ltp":
            return found
        return self._or_runltp_result_file(found)

    def _or_runltp_result_file(self, found: Iterator[Case]) -> Iterator[Case]:
        count = 0
        for case in found:
            count += 1
            yield case
        if not count:
            yield from parse_runltp_result_file(self.path, self.head, self.suite)

    def _parse(self) -> Iterable[Case]:
        fmt = formats.get(self.format)
        if fmt.document:
            return fmt.parse(iter([self._document()]), self.suite)
        if fmt.parse_binary is not None:  # e.g. KTAP's, in blocks: the C scanner's fast input
            return fmt.parse_binary(cast(BinaryIO, self.reader), self.suite, self.head)
        return fmt.parse(chain(self.head, self.reader.lines()), self.suite)

    def _document(self) -> str:
        """The whole file, read again from its start so that no line of it is cut (a JSON
        document); from a pipe, what is left of it as read."""
        if not self.raw.seekable():
            return "".join(chain(self.head, self.reader.lines()))
        self.raw.seek(0)
        return self.raw.read().decode("utf-8", "replace")

    def close(self) -> None:
        """Close the file."""
        self.raw.close()

    def __enter__(self) -> LogFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def open_log(path: Path) -> BinaryIO:
    """Open a log for reading in binary mode; UserError saying what is wrong with it."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise UserError(f"no such log file: {path}; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory; give the log file inside it") from None
    except OSError as error:
        raise UserError(
            f"cannot read log {path}: {error.strerror}; check its permissions"
        ) from None


def parse(
    source: str | os.PathLike[str] | Iterable[str], format: str = "auto", suite: str | None = None
) -> list[Case]:
    """Parse a log file (a path) or lines into cases; `format` is a registered format's name
    or `auto`."""
    if isinstance(source, str | os.PathLike):
        with LogFile(source, format, suite) as log:
            return list(log.cases())
    if format != "auto":
        formats.get(format)
    return parse_lines(iter(source), format, suite)


def parse_lines(lines: Iterator[str], format: str, suite: str | None) -> list[Case]:
    """Parse lines of a known or `auto` format."""
    if format == "auto":
        head = read_head(lines)
        format = formats.detect(sniff_text(head))
        lines = chain(head, lines)
    return list(formats.get(format).parse(lines, suite))


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
        return list(formats.get("ltp").parse(LogReader(handle).lines(), suite))
