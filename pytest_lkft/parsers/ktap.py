"""KTAP v1 and TAP 13/14 (KUnit's output), streamed into leaf `Case`s.

Accepted lines (after `lines.clean` stripped the printk prefix; indentation is only a
hint, structure comes from version lines, headers and plans as in kunit_parser):

- version: `KTAP version 1`, `TAP version 13`, `TAP version 14` (opens a document, or a
  subtest block when inside one);
- subtest header: `# Subtest: <name>` (names the block its version line opened, or
  opens a block of its own);
- plan: `1..<count>` (trailing text such as `# SKIP` allowed);
- result: `ok|not ok [<number>] [- ][<description>][ # <directive> [<reason>]]` with the
  directives `SKIP` (any case, also with `not ok`), `TODO`, `XFAIL`, `XPASS`, `TIMEOUT`,
  `ERROR`; a result without a description (`ok 3 # SKIP reason`) is kept as
  `<unnamed #3>` (kunit_parser drops it);
- `Bail out! <reason>`, and the kernel-end markers `Kernel panic - not syncing`,
  `List of all partitions:`, `reboot: System halted`: every case still promised by a
  plan becomes an `error` case `<missing #N>` whose reason is that line;
- anything else (diagnostics `# ...`, kernel messages interleaved) goes to the log of the
  case that is reported next. A result glued after a kernel message
  (`..not ok 4 name`) or followed by one (`ok 1 name[   1.2] msg`) is still read.

Only leaves become cases, named `<suite>.<test>[.<param>]` as kunit_parser's dotted
paths; a suite result line is not a case. A block whose result line names it but which
reported no child is a case of its own (`error`, "0 tests run", if it said `ok`).
Everything streams: a case is yielded once its result line is read, a case keeps its
last `LOG_LINES` lines, and only the open blocks are held in memory.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from types import ModuleType
from typing import BinaryIO

from pytest_lkft.parsers.lines import clean, parse_int
from pytest_lkft.parsers.model import Case, Result

SCANNER: ModuleType | None
try:  # the C line scanner, built at install where a C compiler is
    from pytest_lkft.parsers import _ktapscan as SCANNER
except ImportError:  # not built: the regex fast path does the same, 2-3x slower
    SCANNER = None

LOG_LINES = 200
MAX_MISSING = 1000
MAX_NESTING = 64
MAX_BUFFERED = 10000
VERSION = re.compile(r"K?TAP version (\d+)\s*$")
PLAN = re.compile(r"1\.\.(\d+)")
RESULT = re.compile(r"(not ok|ok)\b[ \t]*(\d*)[ \t]*(.*)")
# a result right after a punctuation mark (`3078188..not ok 4 x`); starts with the
# literal `ok ` so that the regex engine can skip ahead on a whole chunk
GLUED = re.compile(r"ok \d(?:(?<=[^\w\s#]ok \d)|(?<=[^\w\s#]not ok \d))")
DIRECTIVE = re.compile(r"\s#(?=\s|$)")
KERNEL_MSG = re.compile(r"(?:<\d{1,3}>)?\[ *\d+\.\d+\]")
CHUNK_LINES = 4096
BLOCK_BYTES = 1 << 20  # read size of `iter_binary`
# printk/syslog prefix as `lines.strip_prefix` takes it; atomic so that a line that is
# no event fails fast (this regex runs over every line of a 100 MB log)
PREFIX = r"(?><\d{1,3}>)?+(?>\[ *+\d++\.\d++\])?+(?>\[ *+[TC]\d++\])?+(?:(?<=[>\]]) )?+"
# a line (of a chunk whose prefixes are gone) that may change the structure
# (a result's `name` is set when it has no directive and no `[`, `rest` otherwise)
FAST_EVENT = re.compile(
    r"\n(?P<text>(?P<indent>[ \t]*+)(?:(?P<status>not ok|ok)\b[ \t]*+\d*+[ \t]*+"
    r"(?:(?:- |-(?=\n))?(?P<name>[^#\[\n]*+)(?=\n)|(?P<rest>.*))"
    r"|\# Subtest:(?P<header>.*)|1\.\.(?P<plan>\d++).*|K?TAP version \d.*))"
)
LINE_PREFIX = re.compile(rf"\n{PREFIX}")
END_MARKERS = ("Kernel panic - not syncing", "List of all partitions:", "reboot: System halted")
SLOW_MARKERS = ("Bail out!", *END_MARKERS)
# C0 controls `clean` removes, as bytes for `bytes.translate` (much faster than a regex)
CONTROL_BYTES = bytes([*range(0x09), *range(0x0B, 0x20), 0x7F])
# whitespace other than blank and tab: `str.strip` takes it, the event regex does not
OTHER_SPACE = re.compile(r"[^\S \t\n]")
PLAIN = {"ok": Result.PASS, "not ok": Result.FAIL}  # a result without directive


@dataclass(slots=True)
class Block:
    """An open KTAP (sub)test: from its version line or header to its result line."""

    name: str | None
    indent: int
    prefix: str | None  # dotted path of its leaves, None while an ancestor is unnamed
    expected: int | None = None
    seen: int = 0
    log: deque[str] = field(default_factory=partial(deque, maxlen=LOG_LINES))
    buffer: list[tuple[str, Case]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.seen >= self.expected


# a stack level as the C scanner hands it back: block (None for one it opened), name,
# indent, prefix, expected, seen, log
ScannedLevel = tuple[Block | None, str | None, int, str | None, int | None, int, list[str]]


@dataclass
class ResultLine:
    """One parsed `ok`/`not ok` line."""

    ok: bool
    number: int
    name: str
    directive: str
    text: str


def parse_result(text: str) -> ResultLine | None:
    """Parse a result line; None if `text` (left-stripped) is not one.

    Accepted format:
    - 'ok|not ok [number] [- ][description][ # directive]'
    """
    match = RESULT.match(text)
    if match is None:
        return None
    status, digits, rest = match.groups()
    if rest.startswith("- ") or rest == "-":
        rest = rest[2:]
    if rest.startswith("#"):
        name, directive = "", rest[1:]
    elif "#" in rest:
        split = DIRECTIVE.search(rest)
        name, directive = rest, ""
        if split is not None:
            name, directive = rest[: split.start()], rest[split.end() :]
    else:
        name, directive = rest, ""
    if "[" in name:
        glued = KERNEL_MSG.search(name)
        if glued is not None:
            name = name[: glued.start()]
    return ResultLine(status == "ok", parse_int(digits) if digits else 0, name.strip(),
                      directive.strip(), text)


def classify(ok: bool, directive: str) -> tuple[Result, str]:
    """Map ok/not ok and a directive to a result and a reason.

    SKIP -> skip (even after `not ok`, as kunit_parser), XFAIL -> xfail after `ok`,
    TODO -> xfail after `not ok`, TIMEOUT -> fail, ERROR -> error; others keep ok/not ok.
    """
    if not directive:
        return (Result.PASS if ok else Result.FAIL), ""
    word, _, rest = directive.partition(" ")
    key = word.upper()
    reason = rest.strip()
    if key.startswith("SKIP"):
        return Result.SKIP, reason
    if key == "XFAIL" and ok or key == "TODO" and not ok:
        return Result.XFAIL, reason
    if key == "ERROR":
        return Result.ERROR, reason or "error"
    return (Result.PASS if ok else Result.FAIL), directive


class KtapParser:
    """Push parser: `feed` it cleaned lines, collect finished cases from `out`.

    Lifecycle: outside a document until a version line; then a stack of open blocks
    (the document is the root); the document ends when its plan is satisfied, at a
    kernel-end marker or at `finish()`, then it waits for the next version line.
    """

    def __init__(self, suite: str = "kunit") -> None:
        self.suite = suite
        self.stack: list[Block] = []
        self.out: list[Case] = []
        self.errors: list[str] = []

    def feed(self, text: str, number: int) -> None:
        """Process one cleaned line."""
        stripped = text.lstrip()
        if not self.stack:
            # like kunit_parser, anything may precede the first version line
            if "TAP version" in stripped and VERSION.search(stripped):
                self.stack.append(Block(None, len(text) - len(stripped), ""))
            return
        first = stripped[:1]
        if first in ("o", "n"):
            result = parse_result(stripped)
            if result is not None:
                result.text = text
                self._on_result(result, len(text) - len(stripped), number)
                return
        elif first == "#":
            if stripped.startswith("# Subtest:"):
                self._on_header(stripped[10:].strip(), len(text) - len(stripped))
            else:
                self.stack[-1].log.append(text)
            return
        elif first == "1" and self._on_plan(stripped):
            return
        elif first in ("K", "T") and VERSION.match(stripped):
            self._on_version(len(text) - len(stripped))
            return
        self._on_other(text, stripped, number)

    def note(self, text: str) -> None:
        """Cleaned lines, each ending in a newline, with no structure: the open case's log."""
        self.stack[-1].log.extend(text[:-1].rsplit("\n", LOG_LINES)[-LOG_LINES:])

    def finish(self, number: int) -> None:
        """End of input: whatever a plan still promised is missing."""
        if self.stack:
            self._crash("the log ended before the results", number, eof=True)

    def _on_other(self, text: str, stripped: str, number: int) -> None:
        if stripped.startswith("Bail out!") or any(m in stripped for m in END_MARKERS):
            self.stack[-1].log.append(text)
            self._crash(stripped, number)
            return
        if "ok " in stripped:
            glued = GLUED.search(stripped)
            if glued is not None:
                start = glued.start()
                if stripped.endswith("not ", 0, start):
                    start -= 4
                result = parse_result(stripped[start:])
                if result is not None:
                    self.stack[-1].log.append(stripped[:start])
                    self._on_result(result, len(text) - len(stripped), number)
                    return
        self.stack[-1].log.append(text)

    def _on_version(self, indent: int) -> None:
        self._push(None, indent)

    def _on_header(self, name: str, indent: int) -> None:
        top = self.stack[-1]
        if top.complete and indent <= top.indent and len(self.stack) > 1:
            self._pop_unreported()
            top = self.stack[-1]
        if top.name is None and top.seen == 0 and top.expected is None and indent <= top.indent:
            top.name = name
            parent = self.stack[-2].prefix if len(self.stack) > 1 else ""
            top.prefix = None if parent is None else f"{parent}{name}."
            return
        self._push(name, indent)

    def _on_plan(self, stripped: str) -> bool:
        match = PLAN.match(stripped)
        if match is None:
            return False
        top = self.stack[-1]
        if top.expected is None:
            top.expected = parse_int(match.group(1))
            if len(self.stack) == 1 and top.complete:
                self.stack.pop()
        return True

    def _push(self, name: str | None, indent: int) -> None:
        if len(self.stack) >= MAX_NESTING:  # garbage, not KUnit: keep memory bounded
            return
        parent = self.stack[-1].prefix
        prefix = None if parent is None or name is None else f"{parent}{name}."
        self.stack.append(Block(name, indent, prefix))

    def _closes(self, top: Block, result: ResultLine, indent: int) -> bool:
        """Tell whether `result` is the result line of the open block `top`."""
        if top.complete:
            return True
        if top.name is not None:
            return result.name == top.name
        return len(self.stack) > 1 and top.expected is None and indent < top.indent

    def _on_result(self, result: ResultLine, indent: int, number: int) -> None:
        top = self.stack[-1]
        if len(self.stack) > 1 or top.name is not None:
            if self._closes(top, result, indent):
                self._close(result, number)
                return
        top.seen += 1
        status, reason = classify(result.ok, result.directive)
        name = result.name or f"<unnamed #{result.number or top.seen}>"
        self._leaf(name, status, reason, number, result.text)
        self._end_document_if_complete()

    def _leaf(self, name: str, status: Result, reason: str, number: int, line: str) -> None:
        top = self.stack[-1]
        log = list(top.log)
        log.append(line)
        top.log.clear()
        case = Case(self.suite, name, status, log=log, reason=reason, line=number)
        self._deliver(len(self.stack) - 1, name, case)

    def _deliver(self, depth: int, relative: str, case: Case) -> None:
        """Name `case` by its ancestors, or hold it in the nearest block still unnamed."""
        for index in range(depth, -1, -1):
            block = self.stack[index]
            if block.prefix is not None:
                case.name = block.prefix + relative
                self.out.append(case)
                return
            if block.name is None:
                if len(block.buffer) >= MAX_BUFFERED:  # never named: stop holding its cases
                    self._name_unnamed(index)
                    self._deliver(index, relative, case)
                    return
                block.buffer.append((relative, case))
                return
            relative = f"{block.name}.{relative}"

    def _name_unnamed(self, index: int) -> None:
        """Give the unnamed block at `index` a placeholder name and release its cases."""
        block, parent = self.stack[index], self.stack[index - 1]
        block.name = f"<unnamed #{parent.seen + 1}>"
        block.prefix = None if parent.prefix is None else f"{parent.prefix}{block.name}."
        buffered, block.buffer = block.buffer, []
        for relative, case in buffered:
            self._deliver(index, relative, case)

    def _close(self, result: ResultLine, number: int) -> None:
        """The result line of the open block: report its missing or empty children."""
        block = self.stack[-1]
        name = block.name or result.name or f"<unnamed #{result.number}>"
        status, reason = classify(result.ok, result.directive)
        if len(self.stack) == 1:  # a document named by its `# Subtest:` header
            self._report_missing(block, "no result reported before the suite ended", number)
            self.stack.pop()
            return
        if block.seen == 0 and not block.buffer:
            if status is Result.PASS:
                status, reason = Result.ERROR, "0 tests run"
            self.stack.pop()
            self.stack[-1].seen += 1
            self.stack[-1].log.extend(block.log)
            self._leaf(name, status, reason, number, result.text)
            self._end_document_if_complete()
            return
        self._report_missing(block, "no result reported before the suite ended", number)
        self.stack.pop()
        self._flush(block, name)
        self.stack[-1].seen += 1
        self._end_document_if_complete()

    def _flush(self, block: Block, name: str) -> None:
        for relative, case in block.buffer:
            self._deliver(len(self.stack) - 1, f"{name}.{relative}", case)
        block.buffer.clear()

    def _report_missing(self, block: Block, reason: str, number: int) -> None:
        if block.expected is None or block.seen >= block.expected:
            return
        self.errors.append(f"line {number}: expected {block.expected} cases, got {block.seen}")
        if block.expected - block.seen > MAX_MISSING:  # a garbled plan: one case, not millions
            name = f"<missing #{block.seen + 1}..#{block.expected}>"
            self._leaf(name, Result.ERROR, reason, number, "")
        else:
            for missing in range(block.seen + 1, block.expected + 1):
                self._leaf(f"<missing #{missing}>", Result.ERROR, reason, number, "")
        block.seen = block.expected

    def _pop_unreported(self) -> None:
        """A complete block whose result line never came: close it silently."""
        block = self.stack.pop()
        self._flush(block, block.name or f"<unnamed #{self.stack[-1].seen + 1}>")
        self.stack[-1].seen += 1

    def _end_document_if_complete(self) -> None:
        if len(self.stack) == 1 and self.stack[0].complete:
            self.stack.pop()

    def _crash(self, reason: str, number: int, eof: bool = False) -> None:
        """The kernel stopped (panic, bail out, end of log): close every open block."""
        while self.stack:
            block = self.stack[-1]
            if block.expected is None and len(self.stack) > 1 and not (eof and block.complete):
                block.expected = block.seen + 1
            self._report_missing(block, reason, number)
            self.stack.pop()
            if self.stack:
                self._flush(block, block.name or f"<unnamed #{self.stack[-1].seen + 1}>")
                self.stack[-1].seen += 1
            else:
                self._flush_root(block)

    def _flush_root(self, block: Block) -> None:
        for relative, case in block.buffer:
            case.name = relative
            self.out.append(case)


def iter_cases(lines: Iterable[str], suite: str = "kunit") -> Iterator[Case]:
    """Yield the leaf cases of every KTAP document in `lines`, as they complete.

    Lines are read in chunks of `CHUNK_LINES` and go through `ChunkReader.read`; the
    cases are the ones `KtapParser.feed` gives line by line.
    """
    reader = ChunkReader(KtapParser(suite))
    source = iter(lines)
    while block := list(islice(source, CHUNK_LINES)):
        reader.read(block)
        yield from reader.drain()
    reader.parser.finish(reader.number)
    yield from reader.drain()


def iter_binary(stream: BinaryIO, suite: str = "kunit", head: Iterable[str] = ()) -> Iterator[Case]:
    """`iter_cases` on a log opened in binary mode: read in blocks of `BLOCK_BYTES`, lines
    split at `\\n` and decoded as UTF-8 with `errors="replace"` (as `lines.decode_lines`
    does). `head` are lines already read from `stream` (format detection), parsed first.
    """
    reader = ChunkReader(KtapParser(suite))
    first = list(head)
    if first:
        reader.read(first)
        yield from reader.drain()
    pending: list[bytes] = []
    while data := stream.read(BLOCK_BYTES):
        cut = data.rfind(b"\n") + 1
        if not cut:  # no line ends in this block: keep it for the next
            pending.append(data)
            continue
        reader.read_bytes(b"".join([*pending, data[:cut]]))
        pending = [data[cut:]]
        yield from reader.drain()
    rest = b"".join(pending)
    if rest:
        reader.read_bytes(rest + b"\n")
    reader.parser.finish(reader.number)
    yield from reader.drain()


class ChunkReader:
    """Feeds a `KtapParser` chunk by chunk, choosing the fast or the line-by-line path.

    Inside a document, a chunk goes to the C scanner (`SCANNER.scan`, which hands the
    lines it is not sure of to `feed` one by one) where it is built. Without it, a chunk
    with no escapes, CRs, glued results or end markers loses its printk prefixes in one
    regex substitution and is scanned by one regex (`FAST_EVENT`) for the lines that
    change the structure (`read_fast`); any other chunk goes line by line through
    `feed`. Every path gives the cases `feed` gives; the fast ones are what make 100 MB
    logs take a second or two (issue 3: at least 20x kunit_parser).
    """

    def __init__(self, parser: KtapParser) -> None:
        self.parser = parser
        self.number = 0

    def drain(self) -> list[Case]:
        """Take the cases finished so far."""
        out = self.parser.out
        self.parser.out = []
        return out

    def read(self, block: list[str]) -> None:
        """Process a list of raw lines."""
        if not self.parser.stack:
            block = block[self.read_until_document(block) :]
            if not block:
                return
        chunk = join_lines(block)
        if chunk is not None and SCANNER is not None:
            self.scan(chunk.encode("utf-8", "surrogatepass"), "surrogatepass")
            return
        if chunk is not None:
            chunk = strip_prefixes(chunk)
            if not needs_slow_path(chunk):
                self.read_fast(chunk)
                return
        self.read_slowly(block)

    def read_bytes(self, data: bytes) -> None:
        """Process `\\n`-ended lines of UTF-8 (invalid bytes decode to U+FFFD)."""
        if SCANNER is not None:
            self.scan(data, "replace")
            return
        text = data.decode("utf-8", "replace")
        self.read([line + "\n" for line in text[:-1].split("\n")])

    def scan(self, data: bytes, errors: str) -> None:
        """Run the C scanner over `data`; `feed` the lines it leaves, and those outside
        documents, one by one (decoded with `errors`)."""
        assert SCANNER is not None
        parser, pos, end = self.parser, 0, len(data)
        while pos < end:
            if parser.stack:
                context = (Case, parser.suite, *PLAIN.values(), parser.out, LOG_LINES, MAX_NESTING)
                pos, self.number, levels, to_python = SCANNER.scan(
                    data, pos, self.number, parser.stack, context
                )
                self.restore(levels)
                if not to_python:
                    continue
            newline = data.find(b"\n", pos)
            stop = end if newline < 0 else newline + 1
            self.number += 1
            parser.feed(clean(data[pos:stop].decode("utf-8", errors)), self.number)
            pos = stop

    def restore(self, levels: list[ScannedLevel]) -> None:
        """Set the parser's stack to what the scanner returned."""
        stack = self.parser.stack
        stack.clear()
        for block, name, indent, prefix, expected, seen, log in levels:
            if block is None:
                block = Block(name, indent, prefix)
            block.expected, block.seen = expected, seen
            block.log.clear()
            block.log.extend(log)
            stack.append(block)

    def read_until_document(self, block: list[str]) -> int:
        """Read lines one by one until a document opens; return how many were read."""
        feed, stack = self.parser.feed, self.parser.stack
        for index, raw in enumerate(block):
            self.number += 1
            feed(clean(raw), self.number)
            if stack:
                return index + 1
        return len(block)

    def read_slowly(self, block: Iterable[str]) -> None:
        feed = self.parser.feed
        for raw in block:
            self.number += 1
            feed(clean(raw), self.number)

    def read_fast(self, chunk: str) -> None:
        """Scan a cleaned chunk for the lines that change the structure.

        Python runs once per event line, not per line. Plain leaves are reported here
        (inline: this loop runs for every case of a 100 MB log); complete suites'
        result lines, plans and subtest headers by the `fast_*` methods; every other
        event goes through `feed`, the gap before it through `note`.
        """
        parser = self.parser
        stack, emit, suite = parser.stack, parser.out.append, parser.suite
        number = self.number
        last = 0  # the newline ending the last event line read
        for match in FAST_EVENT.finditer(chunk):
            start, end = match.span()
            if start == last:
                gap, number = "", number + 1
            else:
                gap = chunk[last + 1 : start + 1]
                lines_in_gap = gap.count("\n")
                number += lines_in_gap + 1
            last = end
            text, indent, status, name, _, header, plan = match.groups()
            top = stack[-1]
            if status is not None:
                prefix, expected = top.prefix, top.expected
                if (  # a plain leaf of a named block, as `feed` would take it
                    name is not None
                    and (name := name.strip())
                    and prefix is not None
                    and name != top.name
                    and (
                        top.seen < expected
                        if expected is not None
                        else top.name is not None or len(stack) == 1
                    )
                ):
                    top.seen += 1
                    if not gap:
                        lines = []
                    elif lines_in_gap == 1:
                        lines = [gap[:-1]]
                    else:
                        lines = gap[:-1].split("\n")[-LOG_LINES:]
                    if top.log:
                        top.log.extend(lines)
                        lines = list(top.log)
                        top.log.clear()
                    lines.append(text)
                    emit(Case(suite, prefix + name, PLAIN[status], lines, "", number))
                    if top.seen == expected and len(stack) == 1:
                        stack.pop()
                elif not self.fast_close(top):
                    self.slow_event(gap, text, number)
            elif plan is not None:
                if gap:
                    parser.note(gap)
                self.fast_plan(top, parse_int(plan))
            elif header is None or not self.fast_header(top, gap, header, len(indent)):
                self.slow_event(gap, text, number)
            if not stack:  # the document ended: look for the next one slowly
                self._read_rest(chunk, last, number)
                return
        if last + 1 < len(chunk):
            number += chunk.count("\n", last + 1)
            parser.note(chunk[last + 1 :])
        self.number = number

    def fast_close(self, top: Block) -> bool:
        """The result line of a complete suite with children: what `_close` does."""
        stack = self.parser.stack
        expected = top.expected
        if expected is None or not 0 < expected <= top.seen or len(stack) == 1 or top.buffer:
            return False
        stack.pop()  # its log (the gap too) goes with it
        stack[-1].seen += 1
        if len(stack) == 1 and stack[0].complete:
            stack.pop()
        return True

    def fast_plan(self, top: Block, count: int) -> None:
        """A plan line: what `_on_plan` does (the first plan counts, others vanish)."""
        if top.expected is None:
            top.expected = count
            if len(self.parser.stack) == 1 and top.complete:
                self.parser.stack.pop()

    def fast_header(self, top: Block, gap: str, header: str, indent: int) -> bool:
        """A `# Subtest:` header that opens a new block: what `_on_header` does then."""
        stack = self.parser.stack
        if top.complete or len(stack) >= MAX_NESTING:
            return False
        if top.name is None and not top.seen and top.expected is None and indent <= top.indent:
            return False  # it names the block its version line opened
        if gap:
            self.parser.note(gap)
        name, path = header.strip(), top.prefix
        stack.append(Block(name, indent, None if path is None else f"{path}{name}."))
        return True

    def slow_event(self, gap: str, text: str, number: int) -> None:
        """Any other event line: its gap to the open block's log, the line to `feed`."""
        if gap:
            self.parser.note(gap)
        self.parser.feed(text, number)

    def _read_rest(self, chunk: str, last: int, number: int) -> None:
        """Read what follows a document's end line by line (the lines are clean already)."""
        feed = self.parser.feed
        if last + 1 < len(chunk):
            for text in chunk[last + 1 : -1].split("\n"):
                number += 1
                feed(text, number)
        self.number = number


def join_lines(block: list[str]) -> str | None:
    """Join raw lines into text ending in a newline; None if they do not split back."""
    if block[0].endswith("\n"):
        chunk = "".join(block)
        if not chunk.endswith("\n"):
            chunk += "\n"
    else:
        chunk = "\n".join(block) + "\n"
    return chunk if chunk.count("\n") == len(block) else None


def strip_prefixes(chunk: str) -> str:
    """A newline, then the lines of `chunk` without their printk prefixes (`clean` does one)."""
    return LINE_PREFIX.sub("\n", "\n" + chunk)


def needs_slow_path(chunk: str) -> bool:
    """Tell whether a chunk has something only the line-by-line path handles."""
    if any(marker in chunk for marker in SLOW_MARKERS):
        return True
    if not chunk.isascii() and OTHER_SPACE.search(chunk) is not None:
        return True
    data = chunk.encode("utf-8", "surrogatepass")
    return len(data.translate(None, CONTROL_BYTES)) != len(data) or GLUED.search(chunk) is not None


def parse(lines: Iterable[str], suite: str = "kunit") -> list[Case]:
    """Parse a KTAP log into a list of leaf cases (see the module docstring)."""
    return list(iter_cases(lines, suite))
