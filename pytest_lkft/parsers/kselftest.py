"""kselftest (`run_kselftest.sh`) output, named as Linaro test-definitions name it.

Accepted lines (the runner's TAP at column 0, each test's own output prefixed `# `,
nested once more per level):

    TAP version 13
    1..9
    # timeout set to 45                        (or `# overriding timeout to 10`)
    # selftests: timers: nanosleep             (header of the running test)
    # TAP version 13                           (the test's own TAP, one `#` deeper)
    # ok 3 # SKIP CLOCK_PROCESS_CPUTIME_ID     (unnamed: the SKIP reason names it)
    # # Starting 6 tests from 1 test cases.    (kselftest_harness, two levels deep)
    # not ok 1 user.register_events
    # Bail out! Failed to enter Suspend state  (kept in the log; the runner fails it)
    ok 2 selftests: timers: nanosleep
    not ok 1 selftests: timers: posix_timers # TIMEOUT 10 seconds
    not ok 4 selftests: clone3: clone3_cap_checkpoint_restore # exit=1
    ok 9 selftests: timers: rtcpie # SKIP

Names and results follow `automated/linux/kselftest/parse-output.py` (test-definitions,
since 2024-02) so that results line up with LKFT's history in SQUAD:

- suite `kselftest-<collection>`; a result's name is its description without a leading
  `selftests:`, plus the SKIP reason when it is `ok ... # SKIP reason`, slugified
  (`[N]` groups dropped, runs of other than `A-Za-z0-9_-` -> `_`, one `_` trimmed at
  each end, `_-` -> `__`); an empty name is `unknown`;
- the results found in the `#` lines before a result line are its children, named
  `<parent>_<child>` and listed before it, at any depth; a repeated name gets `_dup2`,
  `_dup3`, ...;
- `ok` -> pass, `ok ... # SKIP` -> skip, `not ok` (`# TIMEOUT`, `# exit=N`, even
  `# SKIP`) -> fail, keeping the directive as the reason.

Where we differ from parse-output.py (see docs/results.md): `ok ... # XFAIL` is `xfail`
(it says pass); a result glued after a test's unterminated output
(`# Diff too high: 3078188..not ok 4 timer_create() ...`) is read (it is lost there);
a test whose header was seen but whose result never came (crash, end of log) is an
`error` case with the reason.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pytest_lkft.parsers.lines import drive
from pytest_lkft.parsers.model import Case, Result

LOG_LINES = 200
MAX_DEPTH = 32
# tap.py's result regex: `ok`/`not ok`, optional number, description up to `#`.
TAP_RESULT = re.compile(r"(not ok|ok)\s*(\d*)\s*([^#]*)#?\s*(.*)")
GLUED = re.compile(r"(?<![\w#])(?:not ok|ok) \d+ ")
HEADER = re.compile(r"selftests: (\S+): (.*)")
SKIP = re.compile(r"SKIP\S*\s*(.*)", re.IGNORECASE)
CRASH_MARKERS = ("Kernel panic - not syncing", "reboot: System halted")


def slugify(text: str) -> str:
    """Make a SQUAD-safe name exactly as parse-output.py does."""
    text = re.sub(r"\[\d{1,5}\]", "", text)
    text = re.sub(r"(^_|_$)", "", re.sub(r"[^A-Za-z0-9_-]+", "_", text))
    return re.sub(r"_-", "__", text)


def make_name(description: str, directive: str, ok: bool) -> str:
    """Name one result as parse-output.py's make_name does."""
    if description.startswith("selftests:"):
        description = description[10:]
    skip = ok and SKIP.match(directive) is not None
    extra = directive[4:] if skip and directive.lower().startswith("skip") else ""
    return slugify(f"{description} {extra}".strip() or "<unknown>")


def classify(ok: bool, directive: str) -> Result:
    """`ok` -> pass, `ok # SKIP` -> skip, `ok # XFAIL` -> xfail, `not ok` -> fail."""
    if not ok:
        return Result.FAIL
    if SKIP.match(directive):
        return Result.SKIP
    if directive[:5].upper() == "XFAIL":
        return Result.XFAIL
    return Result.PASS


@dataclass
class Level:
    """The results read at one nesting depth since the last result one level up."""

    done: list[Case] = field(default_factory=list)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))


class KselftestParser:
    """Push parser: `feed` cleaned lines, collect finished cases from `out`.

    Lifecycle: level 0 holds the runner's lines; a `#` line is handed, without its `#`
    and blanks, to the next level, recursively. A result at level k takes the results
    of level k+1 as its children and resets the deeper levels.
    """

    def __init__(self, suite: str | None = None) -> None:
        self.suite = suite
        self.levels: list[Level] = [Level()]
        self.out: list[Case] = []
        self.counts: dict[str, int] = {}
        self.header: tuple[str, str] | None = None
        self.line = 0

    def feed(self, text: str, number: int) -> None:
        """Process one cleaned line."""
        self.line = number
        self.levels[0].log.append(text)
        if text.startswith("#"):
            self._nested(text[1:].strip(), 1, text)
            return
        if text[:1] in ("o", "n") and self._result(text, 0):
            return
        if any(marker in text for marker in CRASH_MARKERS):
            self._crash(text.strip())

    def finish(self) -> None:
        """End of input: a test that started but reported nothing is an error."""
        self._crash("the log ended before its result")

    def _nested(self, text: str, depth: int, raw: str) -> None:
        """A `#` line: each level keeps it in its log; the innermost reads it."""
        if depth == 1:
            self._note_header(text)
        self._level(depth).log.append(raw)
        while text.startswith("#") and depth < MAX_DEPTH:  # a loop: `# # # ...` of any length
            text, depth = text[1:].strip(), depth + 1
            self._level(depth).log.append(raw)
        if text[:1] in ("o", "n") and self._result(text, depth):
            return
        if "ok " in text:
            glued = GLUED.search(text)
            if glued is not None and glued.start() > 0:
                self._result(text[glued.start() :], depth)

    def _level(self, depth: int) -> Level:
        while len(self.levels) <= depth:
            self.levels.append(Level())
        return self.levels[depth]

    def _note_header(self, text: str) -> None:
        match = HEADER.match(text)
        if match is not None:
            self.header = (match.group(1), match.group(2).strip())

    def _result(self, text: str, depth: int) -> bool:
        match = TAP_RESULT.match(text)
        if match is None:
            return False
        ok = match.group(1) == "ok"
        description, directive = match.group(3).strip(), match.group(4)
        name = make_name(description, directive, ok)
        level = self._level(depth)
        children = self._take_children(depth + 1)
        case = Case(
            suite="",
            name=name,
            result=classify(ok, directive),
            log=list(level.log),
            reason=directive,
            line=self.line,
        )
        level.log.clear()
        for child in children:
            child.name = f"{name}_{child.name}"
        children.append(case)
        if depth:
            level.done.extend(children)
        else:
            self._emit(children, description)
        return True

    def _take_children(self, depth: int) -> list[Case]:
        if depth >= len(self.levels):
            return []
        children = self.levels[depth].done
        del self.levels[depth:]
        return children

    def _emit(self, cases: list[Case], description: str) -> None:
        suite = self.suite or self._suite_of(description)
        self.header = None
        for case in cases:
            case.suite = suite
            count = self.counts[case.name] = self.counts.get(case.name, 0) + 1
            if count > 1:
                case.name = f"{case.name}_dup{count}"
            self.out.append(case)

    def _suite_of(self, description: str) -> str:
        match = HEADER.match(description)
        if match is not None:
            return f"kselftest-{match.group(1)}"
        if self.header is not None:
            return f"kselftest-{self.header[0]}"
        return "kselftest"

    def _crash(self, reason: str) -> None:
        if self.header is None:
            return
        collection, test = self.header
        text = f"not ok 0 selftests: {collection}: {test}"
        self._result(text, 0)
        self.out[-1].result = Result.ERROR
        self.out[-1].reason = reason


def iter_cases(lines: Iterable[str], suite: str | None = None) -> Iterator[Case]:
    """Yield kselftest cases (children before their parent) as their results come."""
    parser = KselftestParser(suite)
    yield from drive(parser, lines)
    parser.finish()
    yield from parser.out


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """Parse `run_kselftest.sh` output into cases (see the module docstring)."""
    return list(iter_cases(lines, suite))
