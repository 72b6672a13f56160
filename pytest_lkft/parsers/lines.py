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

import io
import re
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

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


LINE_LIMIT = 1 << 20  # bytes of one line a reader keeps (a console line is far shorter)
BLOCK_BYTES = 1 << 20  # read size of `LogReader`


class LogReader:
    """A log file read in blocks, no line of it longer than about `limit` bytes.

    Lifecycle: wrap a file opened in binary mode; take decoded lines from `lines()`, then,
    if wanted, the rest as bytes from `read()` (the KTAP reader's input, issue 3); each
    goes on where the other stopped. Of a line longer than `limit` (a binary dump, a
    progress bar that never ends its line) the first `limit` bytes are passed on and,
    when a carriage return comes after them, a carriage return and what follows the
    last one (what a terminal shows, and what `clean` keeps); the rest is dropped, so a
    300 MB line costs `limit` bytes (issue 17). A block without such a line is passed on
    as it was read, not copied.
    """

    def __init__(self, raw: BinaryIO, limit: int = LINE_LIMIT, block: int = BLOCK_BYTES) -> None:
        self.raw, self.limit, self.block = raw, limit, min(block, limit)
        self.run = 0  # bytes of the current line passed on so far
        self.dropping = False  # the current line is past `limit`
        self.tail: bytearray | None = None  # what followed its last carriage return
        self.text: io.StringIO | None = None  # decoded lines `lines()` has not given yet
        self.carry = b""  # the start of the line after those
        self.ended = False  # the file's end was read

    def lines(self) -> Iterator[str]:
        """The lines, each with its `\\n` (not the last one, if the file lacks it), decoded
        as UTF-8 with invalid bytes replaced (console logs mix encodings)."""
        while True:
            if self.text is None:
                data = self._read_block()
                chunk, newline = self.carry + data, data.rfind(b"\n")
                cut = len(self.carry) + newline + 1 if newline >= 0 else 0
                if not data:  # the end: the line carried over has no newline
                    cut = len(chunk)
                    if not cut:
                        return
                self.carry = chunk[cut:]
                self.text = io.StringIO(chunk[:cut].decode("utf-8", "replace"), newline="\n")
            # line by line, so that stopping keeps the position (and not `yield from
            # self.text`, which would close the StringIO when the consumer stops)
            yield from iter(self.text.readline, "")
            self.text = None

    def read(self, size: int = -1) -> bytes:
        """The next bytes (about a block, whatever `size`), lines bounded; b"" at the end."""
        if self.text is not None:
            rest, self.text = self.text.read().encode(), None
            if rest:
                return rest
        if self.carry:
            rest, self.carry = self.carry, b""
            return rest + self._read_block()
        return self._read_block()

    def _read_block(self) -> bytes:
        """The next block as `_filter` passes it on; b"" at the end."""
        while not self.ended:
            data = self.raw.read(self.block)
            if not data:
                self.ended = True
                return b"" if self.tail is None else self._end_line(b"")
            passed = self._filter(data)
            if passed:
                return passed
        return b""

    def _filter(self, data: bytes) -> bytes:
        """`data` as it is, unless it holds part of a line longer than `limit`."""
        first = data.find(b"\n")
        if not self.dropping and first < 0 and self.run + len(data) <= self.limit:
            self.run += len(data)
            return data
        if not self.dropping and first >= 0 and self.run + first <= self.limit:
            tail = len(data) - data.rfind(b"\n") - 1
            if tail <= self.limit:
                self.run = tail
                return data
        return self._cut(data)

    def _cut(self, data: bytes) -> bytes:
        """`_filter` line by line, for a block with part of an overlong line (rare)."""
        pieces = data.split(b"\n")
        out = [self._continue_line(pieces[0])]
        for piece in pieces[1:]:
            out.append(self._end_line(b"\n"))
            out.append(self._continue_line(piece))
        return b"".join(out)

    def _continue_line(self, piece: bytes) -> bytes:
        """Pass on what fits of the current line; past that, keep what follows its last
        carriage return (at most `limit` bytes)."""
        kept = b""
        if not self.dropping:
            room = self.limit - self.run
            if len(piece) <= room:
                self.run += len(piece)
                return piece
            kept, piece = piece[:room], piece[room:]
            self.run, self.dropping = self.limit, True
        carriage = piece.rfind(b"\r")
        if carriage >= 0:
            self.tail = bytearray(piece[carriage + 1 : carriage + 1 + self.limit])
        elif self.tail is not None:
            self.tail += piece[: self.limit - len(self.tail)]
        return kept

    def _end_line(self, newline: bytes) -> bytes:
        """End the current line: its kept tail, if any, after a carriage return."""
        end = newline if self.tail is None else b"\r" + bytes(self.tail) + newline
        self.run, self.dropping, self.tail = 0, False, None
        return end


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
