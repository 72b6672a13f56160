"""kirk's verbose console (`kirk --verbose`, on a device's serial console), one case per test.

Accepted lines (kirk 4.2.0's `VerboseUserInterface`; its colours and LTP's go with
`lines.clean`):

    Suite: math                         the suite, `ltp-math` (unless --suite is given)
    ───────────
    ──────────────────                  a banner: a rule, the test's name, a rule, then
          abs01                         `Executing: COMMAND`; the test's output follows
    ──────────────────                  (it becomes the case's log, its last LOG_LINES
    Executing: abs01                    lines)

    abs01       1  TPASS  :  Test passed
    Summary:                            the test's own Summary block (LTP's library
    passed    3                         prints one), or the one kirk adds when the test
    failed    0                         printed none
    broken    0
    skipped   0
    warnings  0

    Duration: 0.012s                    the test's end (also `1m 2s`, `1h 0m 10s`)

`Test timed out` (before the Summary) says kirk's exec timeout stopped the test. The
banner kirk draws around `TEST SUMMARY` at the end is followed by no `Executing:` line,
so it is no test.

The console shows no exit status, and kirk's JSON report takes its status from the exit
status alone; the Summary counts give it back, because LTP's library exits with exactly
these bits (`do_exit` in lib/tst_test.c): 1 if any TFAIL, 2 if any TBROK, 4 if any
TWARN, 32 if skips and no pass. kirk's counts for a test without a Summary (legacy
tests) are its TPASS/TFAIL/... words, or one count from the exit status when there are
none; a test kirk stopped (exec timeout, kernel panic) has `broken 1` and no TBROK line.
From that status, as `ltp.result_of_exit` and LKFT's `sed 's/brok/fail/; s/conf/skip/'`
(names never rewritten): 0 pass, 32 skip, 2 (brok) fail, 4 (warn only) fail, anything
else fail; the reason is the test's first TFAIL/TBROK/TWARN line (TCONF for a skip), else
its counts (`Summary: failed 1`), and a test kirk stopped says so. A test the console cut
short (the log ends, or the next banner comes, before its `Duration:`) is an error. A test
that exits with a status its output does not explain (a legacy test killed by a signal
after a TPASS) cannot be told from the console: kirk's `--json-report` has its status.

Metrics: `duration` (s) and the counts `passed`, `failed`, `broken`, `skipped`,
`warnings`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator

from pytest_lkft.parsers.lines import drive, parse_int
from pytest_lkft.parsers.ltp import KIRK_SUITE, LOG_LINES, SUMMARY, TTYPE, result_of_exit
from pytest_lkft.parsers.model import Case, Metric, Result

RULE = re.compile(r"─{3,}\s*$")
BANNER_NAME = re.compile(r"\s+(\S+)\s*$")
DURATION = re.compile(r"Duration: (?:(\d+)h )?(?:(\d+)m )?(\d+(?:\.\d+)?)s\s*$")
COUNTS = ("passed", "failed", "broken", "skipped", "warnings")
EXIT_BITS = {"failed": 1, "broken": 2, "warnings": 4}  # LTP's TFAIL, TBROK, TWARN


def exit_status(counts: dict[str, int]) -> int:
    """The exit status LTP's library gives a test with these Summary counts."""
    status = sum(bit for key, bit in EXIT_BITS.items() if counts.get(key))
    if counts.get("skipped") and not counts.get("passed"):
        status |= 32  # TCONF
    return status


def seconds(match: re.Match[str]) -> float:
    """The seconds of a `Duration:` line (kirk's `1h 0m 10s`, `1m 2s`, `0.012s`)."""
    hours, minutes, rest = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(rest)


class Running:
    """The test between its banner and its `Duration:` line."""

    def __init__(self, name: str, line: int) -> None:
        self.name, self.line = name, line
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.firsts: dict[str, str] = {}  # first "fail" (TFAIL/TBROK/TWARN) and "conf" lines
        self.words: set[str] = set()  # the TFAIL/TBROK/TWARN/TCONF words seen
        self.block: dict[str, int] | None = None  # a Summary block being read
        self.counts: dict[str, int] | None = None  # the first complete one
        self.timed_out = False

    def note(self, text: str) -> None:
        """Keep an output line, its TFAIL/TBROK/TWARN/TCONF word and Summary counts."""
        if not text and not self.log:  # kirk's blank line after `Executing:`
            return
        self.log.append(text)
        count = SUMMARY.match(text) if self.block is not None else None
        if text.startswith("Summary:"):
            self.block = {}
        elif count is not None:  # (a kernel message between two counts is passed over)
            self._count(count.group(1), parse_int(count.group(2)))
        elif text.startswith("Test timed out"):
            self.timed_out = True
        elif (word := TTYPE.search(text)) is not None:
            self.words.add(word.group(1))
            self.firsts.setdefault("conf" if word.group(1) == "TCONF" else "fail", text.strip())

    def _count(self, key: str, value: int) -> None:
        """One count of a Summary block; the first complete block gives the counts."""
        assert self.block is not None
        self.block[key] = value
        if len(self.block) == len(COUNTS):
            self.counts = self.counts or self.block
            self.block = None

    def result(self) -> tuple[Result, str]:
        """The result and reason its counts give (see the module docstring)."""
        assert self.counts is not None
        if self.timed_out:
            return Result.FAIL, "timed out (kirk's --exec-timeout)"
        if self.counts["broken"] and "TBROK" not in self.words:
            return Result.FAIL, "no exit status (kirk stopped it: timeout or kernel panic)"
        result = result_of_exit(exit_status(self.counts))[0]
        if result is Result.PASS:
            return result, ""
        counted = ", ".join(f"{key} {self.counts[key]}" for key in COUNTS[1:] if self.counts[key])
        return result, self.firsts.get("conf" if result is Result.SKIP else "fail",
                                       f"Summary: {counted}")


class KirkConsoleParser:
    """Push parser over kirk's verbose console; `out` collects finished cases.

    Lifecycle: outside a test it looks for `Suite:` lines and banners (the last three
    lines are kept to recognise one when `Executing:` comes); inside a test it keeps the
    output until the `Duration:` line ends the test.
    """

    def __init__(self, suite: str | None = None) -> None:
        self.suite = suite or "ltp"
        self.fixed_suite = suite is not None
        self.out: list[Case] = []
        self.recent: deque[str] = deque(maxlen=3)
        self.test: Running | None = None

    def feed(self, text: str, number: int) -> None:
        """Process one cleaned line."""
        name = self._started(text)
        if name is not None:
            self.finish(number)  # a test the next one's banner cut short
            self.test = Running(name, number)
        elif self.test is not None:
            self._in_test(text, number)
        else:
            self._outside(text)
        self.recent.append(text)

    def finish(self, number: int) -> None:
        """End of input (or the next banner) inside a test: it never finished."""
        if self.test is not None:
            self._add(self.test, Result.ERROR, "the log ended before the test did")
        self.test = None

    def _started(self, text: str) -> str | None:
        """The test's name when `text` is `Executing: ...` after a banner (rule, name, rule)."""
        if not text.startswith("Executing: ") or len(self.recent) < 3:
            return None
        above, middle, below = self.recent
        name = BANNER_NAME.match(middle)
        if name is None or RULE.match(above) is None or RULE.match(below) is None:
            return None
        return name.group(1)

    def _outside(self, text: str) -> None:
        suite = KIRK_SUITE.match(text)
        if suite is not None and not self.fixed_suite:
            self.suite = f"ltp-{suite.group(1)}"

    def _in_test(self, text: str, number: int) -> None:
        test = self.test
        assert test is not None
        duration = DURATION.match(text)
        if duration is None or test.counts is None:
            test.note(text)
            return
        result, reason = test.result()
        case = self._add(test, result, reason)
        case.metrics["duration"] = Metric(seconds(duration), "s")
        case.metrics.update((key, Metric(float(test.counts[key]))) for key in COUNTS)
        self.test = None

    def _add(self, test: Running, result: Result, reason: str) -> Case:
        log = list(test.log)
        while log and not log[-1]:  # kirk's blank line before `Duration:`
            log.pop()
        case = Case(self.suite, test.name, result, log, reason, test.line)
        self.out.append(case)
        return case


def iter_cases(lines: Iterable[str], suite: str | None = None) -> Iterator[Case]:
    """Yield the cases of a kirk verbose console as they are read."""
    parser = KirkConsoleParser(suite)
    last = yield from drive(parser, lines)
    parser.finish(last)
    yield from parser.out


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """Parse a kirk verbose console into cases (see the module docstring)."""
    return list(iter_cases(lines, suite))
