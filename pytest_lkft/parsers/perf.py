"""perf's own tests (`perf test -v`) and the perf suite's checks, as test-definitions has them.

Accepted lines (linux-perf 6.1):

    ' 2: Detect openat syscall event        :'      a test begins (not a case)
    '--- start ---' ... '---- end ----'             its output: the case's log
    'Detect openat syscall event: Ok'               -> Detect_openat_syscall_event pass
    'mmap interface tests subtest 2: Skip (permissions)'  -> skip, reason `permissions`
    'Setup struct perf_event_attr: FAILED!'         -> fail
    'LKFT-CASE: perf_record_test pass'              a check of the script (record,
                                                    report, stat; `perf_test`)

Names are test-definitions' (`automated/linux/perf/parse-output.py`): every run of
characters outside `[A-Za-z0-9_-]` becomes `_`, a trailing `_` goes, `_-` becomes `_`.
A result line inside a test's start/end block is that test's output, not a result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytest_lkft.parsers.lines import clean
from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.parsers.scripted import scripted_case

RESULT = re.compile(r"^(?P<name>.*): (?:(?P<ok>Ok)|(?P<failed>FAILED!)|Skip(?: \((?P<why>.*)\))?)$")
START, END = "--- start ---", "---- end ----"
LOG_LINES = 200


def slugify(text: str) -> str:
    """test-definitions' perf test name of a result line's description."""
    text = re.sub(r"/tmp/perf.*$", "", text)
    return re.sub(r"_-", "_", re.sub(r"_$", "", re.sub(r"[^A-Za-z0-9_-]+", "_", text)))


def parse(lines: Iterable[str], suite: str | None = None) -> list[Case]:
    """The cases of a perf suite run's output (see the module docstring)."""
    suite = suite or "perf"
    cases: list[Case] = []
    block: list[str] = []
    inside = False
    for number, raw in enumerate(lines, start=1):
        line = clean(raw)
        scripted = scripted_case(line, suite, number)
        if scripted is not None:
            cases.append(scripted)
        elif line == START:
            inside, block = True, []
        elif line == END:
            inside = False
        elif inside:
            block = (block + [line])[-LOG_LINES:]
        else:
            found = RESULT.match(line.rstrip())
            if found is not None:
                cases.append(_case(found, suite, block + [line], number))
                block = []
    return cases


def _case(found: re.Match[str], suite: str, log: list[str], number: int) -> Case:
    result, reason = Result.SKIP, found.group("why") or ""
    if found.group("ok"):
        result = Result.PASS
    elif found.group("failed"):
        result = Result.FAIL
    return Case(suite, slugify(found.group("name") + ":"), result, log=log, reason=reason,
                line=number)
