"""A lazy stream of console lines, cleaned one by one, with line numbers.

Every parser reads its input through `LineStream`. It never holds more than the line
being looked at (plus one for `peek`), so a gigabyte log is read in constant memory.

Each raw line is cleaned before a parser sees it:

- the line ending (`\\n`, `\\r\\n`) is removed; text before a carriage return inside a
  line is dropped (the terminal overwrote it): `progress 10%\\rok 1 x` -> `ok 1 x`;
- ANSI/terminal escapes are removed: `\\x1b[1;32mok\\x1b[0m 1 x` -> `ok 1 x`;
- the printk/syslog prefix is stripped by a regex, per line, never by a fixed width
  (kunit_parser measures one width on the first KTAP line and cuts it everywhere,
  which turns `not ok` into `ok` on lines whose prefix is shorter). Accepted prefixes:

  - `[    0.060000] `                   (printk time)
  - `[    0.060000][    T1] `            (printk time + caller id, `T` or `C`)
  - `<6>[   14.860000] `                 (syslog level + time, `console_msg_format=syslog`)
  - `<5>`                               (syslog level alone)
  - nothing (userspace lines, kselftest runner lines)

  One blank after the prefix is part of it; the indentation after that is kept.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pytest_lkft.parsers.model import Case

# `<N>` syslog level, `[ seconds]` printk time, `[ T1]`/`[ C0]` caller id, one blank.
PREFIX = re.compile(r"(?:<\d{1,3}>)?(?:\[ *\d+\.\d+\])?(?:\[ *[TC]\d+\])? ?")
# CSI sequences (`ESC [ ... letter`), OSC (`ESC ] ... BEL`), two-byte escapes (`ESC c`).
ANSI = re.compile(r"\x1b(?:\[[0-9;?<=>!]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])?")
# Other C0 controls that terminals swallow (keep tab).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


MAX_DIGITS = 18  # past this a count or an exit status is nonsense, and int() may refuse it


def parse_int(digits: str) -> int:
    """A count or status from a log: `digits` as an int, absurdly long ones capped (Python
    refuses to convert more than 4300 digits, and no parser may raise on any input)."""
    sign = "-" if digits.startswith("-") else ""
    body = digits.lstrip("-")
    if len(body) > MAX_DIGITS:
        body = "9" * MAX_DIGITS
    return int(sign + body)


def strip_prefix(text: str) -> str:
    """Remove a printk/syslog prefix from one line, if it has one.

    Accepted: `[ts] `, `[ts][T1] `, `<6>[ts] `, `<5>`, nothing.
    """
    if text[:1] not in ("<", "["):
        return text
    match = PREFIX.match(text)
    # `<LAVA_SIGNAL_...>` or `[  OK  ]` are no printk prefix: PREFIX matches nothing.
    if match is None or not match.end():
        return text
    return text[match.end() :]


def clean(raw: str) -> str:
    """Return one raw console line without its ending, CR overwrites, escapes and prefix."""
    text = raw.rstrip("\r\n")
    if "\r" in text:
        text = text.rsplit("\r", 1)[1] or text.replace("\r", "")
    if "\x1b" in text:
        text = ANSI.sub("", text)
    if not text.isprintable():
        text = CONTROL.sub("", text)
    return strip_prefix(text)


class LineStream:
    """Cleaned lines of a log, read lazily, with 1-based line numbers.

    Lifecycle: wrap any `Iterable[str]` (an open file, a list, a generator); iterate it
    or use `peek`/`pop`; `line_number` is the number of the line last returned.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._source = iter(lines)
        self._next: str | None = None
        self._number = 0

    def __iter__(self) -> Iterator[str]:
        if self._next is not None:
            yield self.pop()
        source = self._source
        for raw in source:
            self._number += 1
            yield clean(raw)

    def peek(self) -> str:
        """Return the next cleaned line without consuming it ('' at the end)."""
        if self._next is None:
            raw = next(self._source, None)
            if raw is None:
                return ""
            self._next = clean(raw)
        return self._next

    def pop(self) -> str:
        """Consume and return the next cleaned line ('' at the end)."""
        text = self.peek()
        if self._next is not None:
            self._number += 1
            self._next = None
        return text

    def at_end(self) -> bool:
        """Tell whether every line has been consumed."""
        if self._next is not None:
            return False
        raw = next(self._source, None)
        if raw is None:
            return True
        self._next = clean(raw)
        return False

    @property
    def line_number(self) -> int:
        """The 1-based number of the line last returned (0 before the first)."""
        return self._number


def decode_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decode byte lines as UTF-8, replacing what is not (console logs mix encodings)."""
    for chunk in chunks:
        yield chunk.decode("utf-8", errors="replace")


class LineParser(Protocol):
    """A parser fed one clean line at a time; finished cases wait in `out`."""

    out: list[Case]

    def feed(self, text: str, number: int) -> None: ...


def drive(parser: LineParser, lines: Iterable[str]) -> Generator[Case, None, int]:
    """Feed `lines` (cleaned by LineStream) to `parser`, yielding cases as they complete.

    Returns the number of the last line read, for the parser's own `finish`.
    """
    stream = LineStream(lines)
    out = parser.out
    for text in stream:
        parser.feed(text, stream.line_number)
        if out:
            yield from out
            out.clear()
    return stream.line_number
