"""Results as pytest items: each case of a log is its own test (`--lkft-results LOG`).

A log already on disk (a LAVA job log, a tuxrun console, kirk's JSON, a kselftest or KUnit
console) becomes a `ResultsFile` whose items replay the cases: pass passes, fail fails with
the case's own log as the message (no Python traceback), skip skips with its reason,
xfail is an expected failure, and error is an error in setup, as JUnit wants it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_lkft.errors import LkftError
from pytest_lkft.parsers.model import Case, Result, unique_names

RESULTS_KEY = pytest.StashKey[frozenset[Path]]()
EXCERPT_LINES = 50


class CaseFailed(Exception):
    """A case that failed, or errored, in the kernel's own terms."""

    def __init__(self, case: Case) -> None:
        super().__init__(case.id)
        self.case = case

    def describe(self, log: bool = True) -> str:
        """The result, the reason and (unless the log is shown apart) its last log lines."""
        case = self.case
        head = f"{case.id}: {case.result}" + (f" ({case.reason})" if case.reason else "")
        where = f" [log line {case.line}]" if case.line else ""
        lines = [head + where]
        if log:
            lines += case.log[-EXCERPT_LINES:]
        return "\n".join(lines)


def case_properties(case: Case, device: str) -> list[tuple[str, object]]:
    """The reporting contract's user_properties for one case (see `pytest_lkft.reporting`)."""
    props: list[tuple[str, object]] = [("lkft.suite", case.suite), ("lkft.test", case.name),
                                       ("lkft.device", device)]
    if case.result in (Result.XFAIL, Result.ERROR):
        props.append(("lkft.result", str(case.result)))
    props += [(f"lkft.metric.{name}", f"{m.value:g} {m.unit}".strip())
              for name, m in case.metrics.items()]
    return props


def replay(case: Case) -> None:
    """Turn a case's result into the pytest outcome of the running test."""
    if case.result is Result.SKIP:
        pytest.skip(case.reason or "skipped by the test")
    if case.result is Result.XFAIL:
        pytest.xfail(case.reason or "expected failure")
    if case.result is not Result.PASS:
        raise CaseFailed(case)


class CaseItem(pytest.Item):
    """One case of a results log."""

    def __init__(self, *, case: Case, device: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.fixturenames: list[str] = []  # plugins (labgrid's) look for it on every item
        self.user_properties += case_properties(case, device)

    def setup(self) -> None:
        if self.case.result is Result.ERROR:  # an error is an error, not a failure
            pytest.fail(CaseFailed(self.case).describe(), pytrace=False)

    def runtest(self) -> None:
        if self.case.log:
            self.add_report_section("call", "log", "\n".join(self.case.log))
        replay(self.case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, CaseFailed):  # the log is the report's `log` section
            return excinfo.value.describe(log=False)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.case.line or None, f"{self.case.suite}: {self.case.name}"


class ResultsFile(pytest.File):
    """A test log given with --lkft-results; its cases are the items."""

    def collect(self) -> Iterator[CaseItem]:
        from pytest_lkft.parsers.detect import parse  # only when logs are given

        device = str(self.config.getoption("lkft_results_device") or "results")
        try:
            cases = sorted(parse(self.path), key=lambda c: c.id)
        except LkftError as error:  # an unreadable log: one line, no traceback
            raise self.CollectError(f"--lkft-results {self.path}: {error}") from None
        for name, case in unique_names(cases, lambda c: c.id):
            yield CaseItem.from_parent(self, name=name, case=case, device=device)


def results_paths(config: pytest.Config) -> list[Path]:
    """The --lkft-results logs, resolved; a missing one is a UsageError naming it."""
    paths = []
    for value in config.getoption("lkft_results") or []:
        path = Path(config.invocation_params.dir, value).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--lkft-results {value}: no such log file; check the path")
        paths.append(path)
    return paths
