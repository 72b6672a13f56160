"""`pytest --lkft-results LOG`: every case of a real log is its own item and JUnit testcase."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from conftest import junit_name
from pytest_lkft.parsers.detect import parse
from pytest_lkft.parsers.model import Result

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
LOGS = sorted(p for p in CORPUS.glob("*/*") if p.suffix in (".log", ".yaml")
              or p.name.endswith(".report.json")) if CORPUS.is_dir() else []
JUNIT_TAG = {Result.PASS: None, Result.FAIL: "failure", Result.SKIP: "skipped",
             Result.XFAIL: "skipped", Result.ERROR: "error"}


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:labgrid", "-p", "no:cacheprovider", *args)


def junit_outcomes(path: Path) -> list[tuple[str, str | None]]:
    """(suite/test, failure|error|skipped|None) of every testcase, sorted."""
    cases = ET.parse(path).getroot().iter("testcase")
    return sorted((f"{c.get('classname')}/{junit_name(c)}",
                   next((child.tag for child in c
                         if child.tag in ("failure", "error", "skipped")), None))
                  for c in cases)


@pytest.fixture(autouse=True)
def _corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")


@pytest.mark.parametrize("log", LOGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_corpus_log_becomes_one_junit_testcase_per_case(pytester: pytest.Pytester,
                                                             log: Path) -> None:
    cases = parse(log)
    junit = pytester.path / "junit.xml"
    run(pytester, f"--lkft-results={log}", f"--junitxml={junit}")
    assert junit_outcomes(junit) == sorted((c.id, JUNIT_TAG[c.result]) for c in cases)


def test_outcomes_messages_and_selection(pytester: pytest.Pytester) -> None:
    log = CORPUS / "kunit" / "kunit-test_data-test_is_test_passed-failure.log"
    junit = pytester.path / "junit.xml"
    result = run(pytester, f"--lkft-results={log}", "-v", f"--junitxml={junit}")
    counts = Counter(c.result for c in parse(log))
    result.assert_outcomes(passed=counts[Result.PASS], failed=counts[Result.FAIL])
    result.stdout.fnmatch_lines(["*::kunit/example.example_simple_test FAILED*",
                                 "*_ kunit: example.example_simple_test _*",
                                 "*Expected 1 + 1 == 3, but*"])
    case = next(c for c in ET.parse(junit).getroot().iter("testcase")
                if c.get("name") == "example.example_simple_test [results]")
    assert case.get("classname") == "kunit"
    parsed = next(c for c in parse(log) if c.name == "example.example_simple_test")
    assert case.findtext("system-out") == "\n".join(parsed.log)  # the log, once
    failure = case.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message == "kunit/example.example_simple_test: fail [log line 32]"  # log: system-out
    # the terminal shows the log once, as the captured `log` section, not again in the failure
    assert result.stdout.str().count("EXPECTATION FAILED at lib/kunit/example-test.c:30") == 1
    result.stdout.fnmatch_lines(["*_ kunit: example.example_simple_test _*",
                                 "kunit/example.example_simple_test: fail [log line 32]",
                                 "*- Captured log call -*"])
    selected = run(pytester, f"--lkft-results={log}", "-k", "sysctl_test")
    selected.assert_outcomes(passed=sum(1 for c in parse(log) if "sysctl_test" in c.name))


def test_missing_and_crashed_cases_are_errors(pytester: pytest.Pytester) -> None:
    log = CORPUS / "kunit" / "kunit-test_data-test_kernel_panic_interrupt.log"
    errors = [c for c in parse(log) if c.result is Result.ERROR]
    assert errors
    result = run(pytester, f"--lkft-results={log}")
    assert result.parseoutcomes()["errors"] == len(errors)
    result.stdout.fnmatch_lines(["*kunit/string-stream-test.<missing #2>: error*"])
    assert "Traceback" not in result.stdout.str()


def test_under_xdist_every_case_runs_once(pytester: pytest.Pytester) -> None:
    logs = [CORPUS / "lava" / "tuxrun-pass-1.yaml", CORPUS / "ltp" / "kirk.report.json"]
    total = sum(len(parse(log)) for log in logs)
    result = run(pytester, "-n", "2", "--lkft-results", *map(str, logs))
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped", "errors",
                                            "xfailed")) == total


BLANK_REPORTS = """
def pytest_terminal_summary(terminalreporter):
    blank = terminalreporter.stats.get("", [])
    print(f"blank reports kept: {len(blank)} " + " ".join(r.when for r in blank))
"""
NOISY_TEARDOWN = """
import pytest

@pytest.fixture
def noisy():
    yield
    print("noise from teardown")

def test_case(record_property, noisy):
    record_property("lkft.suite", "demo")
    record_property("lkft.test", "case")
    assert False
"""


def test_silent_setup_and_teardown_reports_leave_the_terminal_stats(
        pytester: pytest.Pytester) -> None:
    """pytest scans its passing setup/teardown reports once per failure at the end: a
    log's cases leave none there; a case's teardown with output stays and is printed."""
    log = CORPUS / "kunit" / "kunit-test_data-test_is_test_passed-failure.log"
    pytester.makeconftest(BLANK_REPORTS)
    pytester.makepyfile(test_noisy=NOISY_TEARDOWN)
    result = run(pytester, "-rA", f"--lkft-results={log}", "test_noisy.py")
    result.assert_outcomes(passed=sum(c.result is Result.PASS for c in parse(log)),
                           failed=1 + sum(c.result is Result.FAIL for c in parse(log)))
    # test_noisy's setup report (no lkft.suite yet) and its teardown with output stay
    result.stdout.fnmatch_lines(["*- Captured stdout teardown -*", "noise from teardown",
                                 "blank reports kept: 2 setup teardown"])


def test_a_missing_log_is_one_line(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--lkft-results=nowhere.log")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --lkft-results nowhere.log: no such log file; "
                                 "check the path"])
