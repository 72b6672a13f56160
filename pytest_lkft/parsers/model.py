"""The one result model every parser, item and reporter shares.

A parser turns a log into a flat list of `Case`s. A `Case` knows its suite as SQUAD
names it (`kunit`, `kselftest-timers`, `ltp-syscalls`, `boot`), its test name inside
that suite, its result, the log lines that belong to it and any metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

MISSING = "missing: the run did not report it"  # the error of a known case a run omitted


class Result(enum.StrEnum):
    """A test case's outcome; values are the words SQUAD and `lkft parse` print."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    XFAIL = "xfail"
    ERROR = "error"


@dataclass
class Metric:
    """A measurement attached to a case (LAVA's measurement/units, boot time, ...)."""

    value: float
    unit: str = ""


@dataclass
class Case:
    """One test case: `suite/name` is its id, as SQUAD shows it."""

    suite: str
    name: str
    result: Result
    log: list[str] = field(default_factory=list)
    reason: str = ""
    line: int = 0
    metrics: dict[str, Metric] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"

    @property
    def ok(self) -> bool:
        return self.result in (Result.PASS, Result.SKIP, Result.XFAIL)


@dataclass(frozen=True)
class Counts:
    """How many cases ended in each result."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfailed: int = 0
    errors: int = 0

    @classmethod
    def of(cls, cases: Iterable[Case]) -> Counts:
        tally = {r: 0 for r in Result}
        for case in cases:
            tally[case.result] += 1
        return cls(
            passed=tally[Result.PASS],
            failed=tally[Result.FAIL],
            skipped=tally[Result.SKIP],
            xfailed=tally[Result.XFAIL],
            errors=tally[Result.ERROR],
        )

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.xfailed + self.errors


def unique_names(cases: Iterable[Case], name: Callable[[Case], str]) -> Iterator[tuple[str, Case]]:
    """(name, case) pairs, a repeated name numbered `#2`, `#3`, ... so no result is lost."""
    seen: dict[str, int] = {}
    for case in cases:
        key = name(case)
        seen[key] = seen.get(key, 0) + 1
        yield (key if seen[key] == 1 else f"{key}#{seen[key]}"), case
