"""LTP results: runltp/ltp-pan result files and console, kirk's console, test output.

Accepted lines:

- ltp-pan `-p` result table (runltp `-l FILE`), LKFT's source until 2026-02:
  `abort01                                            PASS       0    `
  (`TAG  PASS|FAIL|CONF  EXIT`); the header, `Total Tests: 86` etc. are skipped;
- ltp-pan result file without `-p`:
  `tag=abort01 stime=1795762206 dur=0 exit=exited stat=0 core=no cu=0 cs=0`;
- ltp-pan console without `-q`: `<<<test_start>>>`, `tag=bpf_prog01 stime=...`,
  `<<<test_output>>>` (the test's output, kept as the case log; its first
  TFAIL/TBROK/TWARN line, or TCONF line for a skip, is the reason and its `Summary:`
  counts become metrics `passed`, `failed`, `broken`, `skipped`, `warnings`),
  `<<<execution_status>>>`, `duration=0 termination_type=exited termination_id=2 ...`,
  `<<<test_end>>>`;
- kirk's console: `Suite: syscalls` then `abort01: pass  (0.019s)` (labels pass, fail,
  broken, skip, `kernel panic`, `SUT not responding`, `timed out`, `| tainted`);
- inside a test's output, new-library `access01.c:237: TPASS: ...`, shell
  `which01 1 TPASS: ...`, legacy `sockioctl01    1  TPASS  :  ...` lines and the
  `Summary:` block give the reason (the first TFAIL/TBROK/TWARN/TCONF line).

Names are `ltp-<runtest file>/<tag>` (suite from `--suite` or kirk's `Suite:` line,
else `ltp`); the tag is never rewritten (LKFT's `sed 's/brok/fail/; s/conf/skip/'`
renames `demo_tmpdir_brok`, `sysconf01`, `confstr01`...).

Results, from the exit status as ltp-pan and kirk decide them (LTP sets bit 1 for
TFAIL, 2 for TBROK, 4 for TWARN, 32 for TCONF without any TPASS):
exit 0 -> pass; 32 (conf) -> skip; 2 (brok) -> fail; **4 (warn only) -> fail**, reason
"TWARN": LTP exits non-zero for it and ltp-pan said FAIL in LKFT's runltp era, where
LKFT's kirk pipeline drops the test; any other exit or a signal -> fail. kirk's
`kernel panic` and `SUT not responding` labels -> error.
runltp's `-q` console has no test names (only concatenated outputs): read its `-l` file.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator

from pytest_lkft.parsers.lines import drive, parse_int
from pytest_lkft.parsers.model import Case, Metric, Result

LOG_LINES = 200
TABLE = re.compile(r"(\S+)\s+(PASS|FAIL|CONF|BROK|WARN)\s+(-?\d+)\s*$")
PAN_LOG = re.compile(r"tag=(\S+) stime=\d+ dur=(\d+) exit=(\w+) stat=(-?\d+)")
PAN_START = re.compile(r"tag=(\S+) stime=\d+\s*$")
PAN_STATUS = re.compile(r"duration=(\d+) termination_type=(\w+) termination_id=(-?\d+)")
KIRK_LINE = re.compile(
    r"(\S+): (pass|fail|broken|skip|kernel panic|SUT not responding|timed out)"
    r"(?: \| tainted)?\s+\((\d+(?:\.\d+)?)s\)\s*$"
)
KIRK_SUITE = re.compile(r"Suite: (\S+)\s*$")
TTYPE = re.compile(r"\b(TFAIL|TBROK|TWARN|TCONF)\b")
SUMMARY = re.compile(r"(passed|failed|broken|skipped|warnings)\s+(\d+)\s*$")
KIRK_LABELS = {
    "pass": (Result.PASS, ""),
    "fail": (Result.FAIL, ""),
    "broken": (Result.FAIL, "TBROK"),
    "skip": (Result.SKIP, "TCONF"),
    "timed out": (Result.FAIL, "timed out"),
    "kernel panic": (Result.ERROR, "kernel panic"),
    "SUT not responding": (Result.ERROR, "SUT not responding"),
}
TABLE_WORDS = {"PASS": 0, "CONF": 32, "BROK": 2, "WARN": 4}


def result_of_exit(status: int, signaled: bool = False) -> tuple[Result, str]:
    """Map an LTP exit status (or a signal) to a result and a reason."""
    if signaled:
        return Result.FAIL, f"killed by signal {status}"
    if status == 0:
        return Result.PASS, ""
    if status == 32:
        return Result.SKIP, "TCONF"
    if status == 4:
        return Result.FAIL, "TWARN (warnings only, exit 4)"
    if status == 2:
        return Result.FAIL, "TBROK (exit 2)"
    return Result.FAIL, f"exit {status}"


class LtpParser:
    """Push parser over every LTP line shape; `out` collects finished cases.

    Lifecycle: lines outside a pan `<<<test_start>>>` block are matched against the
    table, pan-log and kirk shapes; inside a block the output is kept (bounded) until
    `<<<execution_status>>>` gives the exit status.
    """

    def __init__(self, suite: str | None = None) -> None:
        self.suite = suite or "ltp"
        self.fixed_suite = suite is not None
        self.out: list[Case] = []
        self.tag: str | None = None
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.firsts: dict[str, str] = {}  # first "fail" (TFAIL/TBROK/TWARN), "conf" line
        self.counts: dict[str, float] = {}  # the Summary block

    def feed(self, text: str, number: int) -> None:
        """Process one cleaned line."""
        if self.tag is not None:
            self._in_block(text, number)
        elif text.startswith("<<<test_start>>>"):
            self.tag = ""
            self.log.clear()
            self.firsts.clear()
            self.counts.clear()
        else:
            self._outside(text, number)

    def finish(self, number: int) -> None:
        """End of input inside a pan block: the test never finished."""
        if self.tag:
            self._add(self.tag, Result.ERROR, "the log ended before the test did", number)
        self.tag = None

    def _outside(self, text: str, number: int) -> None:
        for handler in (self._table, self._pan_log, self._kirk):
            if handler(text, number):
                return

    def _table(self, text: str, number: int) -> bool:
        match = TABLE.match(text)
        if match is None:
            return False
        tag, word, status = match.group(1), match.group(2), parse_int(match.group(3))
        if word in ("PASS", "CONF"):
            result, reason = result_of_exit(TABLE_WORDS[word])
        else:  # pan says FAIL for any exit but 0 and 32, or for a signal
            result, reason = Result.FAIL, result_of_exit(status or TABLE_WORDS.get(word, 1))[1]
        self._add(tag, result, reason, number, text)
        return True

    def _pan_log(self, text: str, number: int) -> bool:
        match = PAN_LOG.match(text)
        if match is None:
            return False
        tag, duration, how, status = match.groups()
        result, reason = result_of_exit(parse_int(status), signaled=how != "exited")
        case = self._add(tag, result, reason, number, text)
        case.metrics["duration"] = Metric(float(duration), "s")
        return True

    def _kirk(self, text: str, number: int) -> bool:
        suite = KIRK_SUITE.match(text)
        if suite is not None:
            if not self.fixed_suite:
                self.suite = f"ltp-{suite.group(1)}"
            return True
        match = KIRK_LINE.match(text)
        if match is None:
            return False
        result, reason = KIRK_LABELS[match.group(2)]
        case = self._add(match.group(1), result, reason, number, text)
        case.metrics["duration"] = Metric(float(match.group(3)), "s")
        return True

    def _in_block(self, text: str, number: int) -> None:
        if not self.tag:
            match = PAN_START.match(text)
            if match is not None:
                self.tag = match.group(1)
            return
        status = PAN_STATUS.match(text)
        if status is not None:
            self._end_block(status, number)
            return
        if text.startswith("<<<test_end>>>"):
            self.tag = None
            return
        if text.startswith(("<<<", "initiation_status=")):
            if text.startswith("<<<test_output>>>"):
                self.log.clear()  # drop cmdline=, contacts=, analysis=
                self.firsts.clear()  # a TCONF in the cmdline is not the test's reason
            return
        self.log.append(text)
        self._note_output(text)

    def _note_output(self, text: str) -> None:
        """Keep the first TFAIL/TBROK/TWARN and TCONF lines and the Summary counts."""
        ttype = TTYPE.search(text)
        if ttype is not None:
            key = "conf" if ttype.group(1) == "TCONF" else "fail"
            self.firsts.setdefault(key, text.strip())
            return
        summary = SUMMARY.match(text)
        if summary is not None:
            self.counts[summary.group(1)] = float(summary.group(2))

    def _end_block(self, status: re.Match[str], number: int) -> None:
        duration, how, code = status.groups()
        result, reason = result_of_exit(parse_int(code), signaled=how != "exited")
        if result is Result.SKIP:
            reason = self.firsts.get("conf", reason)
        elif result is not Result.PASS:
            reason = self.firsts.get("fail", reason)
        case = self._add(self.tag or "", result, reason, number)
        case.log = list(self.log)
        case.metrics["duration"] = Metric(float(duration), "s")
        case.metrics.update((key, Metric(value)) for key, value in self.counts.items())
        self.tag = None

    def _add(self, tag: str, result: Result, reason: str, number: int, text: str = "") -> Case:
        case = Case(self.suite, tag, result, [text] if text else [], reason, number)
        self.out.append(case)
        return case


def iter_cases(lines: Iterable[str], suite: str | None = None) -> Iterator[Case]:
    """Yield LTP cases from a result file or console log as they are read."""
    parser = LtpParser(suite)
    last = yield from drive(parser, lines)
    parser.finish(last)
    yield from parser.out


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """Parse LTP output into cases (see the module docstring)."""
    return list(iter_cases(lines, suite))
