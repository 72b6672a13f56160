"""kirk's verbose console against kirk's own JSON report of the same run (real logs).

tests/data/kirk/ holds two real runs of kirk 4.2.0 (PyPI) on this machine (its default SUT,
the host, as LKFT runs kirk on a device), each with its console and its report:

    LTP_TIMEOUT_MUL=1 LTPROOT=$PWD/opt-ltp kirk --verbose --run-suite lkftmix \\
        --exec-timeout 5 --json-report lkftmix.report.json > lkftmix.console.log
    LTP_TIMEOUT_MUL=1 LTPROOT=$PWD/opt-ltp kirk --verbose --no-colors --run-suite math \\
        --skip-tests float_bessel --exec-timeout 300 --json-report math.report.json \\
        > math.console.log

LTP 20260529 (../shared/ltp/) built natively outside the repository under the build lock:
`./configure --prefix=$PWD/opt-ltp`, `make -C lib`, `make -C testcases/lib`, `make -C
testcases/misc/math` + install, `make -C lib/newlib_tests` (LTP's own library tests, which
end in each LTP outcome), runtest/math copied. The `lkftmix` runtest file:

    test05 test05                    pass (2 TPASS)
    test_macros01 test_macros01      TFAIL: exit 1, fail
    test02 test02                    TBROK: exit 2, brok
    tst_needs_cmds02 tst_needs_cmds02    TCONF: exit 32, conf
    test14 test14                    TPASS, TCONF and TWARNs: exit 4, warn
    tst_res_flags tst_res_flags      every flag: exit 7, fail
    test_brk_fail test_brk_fail      tst_brk(TFAIL) in a child: exit 1
    abs01 abs01                      legacy test, no Summary of its own (kirk adds one)
    sysconf01_brok test05            a tag LKFT's sed would rename
    nosuchcmd01 nosuchcmd01          not found: exit 127, kirk counts failed 1
    sleeper01 sleep 30               stopped by --exec-timeout 5: kirk's brok, retval -1

The one change to what kirk printed: the `Cmdline:` of "Target information" (this
machine's kernel command line) and the report's `cmdline` are replaced by a note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lkft.parsers import detect, kirk, kirk_console
from pytest_lkft.parsers.model import Counts, Metric, Result

DATA = Path(__file__).parent / "data" / "kirk"


def console(name: str) -> list[str]:
    return (DATA / f"{name}.console.log").read_text().splitlines(keepends=True)


@pytest.mark.parametrize("name", ["lkftmix", "math"])
def test_console_gives_the_results_of_kirks_report(name: str) -> None:
    cases = kirk_console.parse(console(name))
    report = kirk.parse_text((DATA / f"{name}.report.json").read_text(), f"ltp-{name}")
    assert [(c.id, c.result) for c in cases] == [(c.id, c.result) for c in report]
    for ours, theirs in zip(cases, report, strict=True):
        counts = {k: v for k, v in theirs.metrics.items() if k != "duration"}
        assert {k: v for k, v in ours.metrics.items() if k != "duration"} == counts
        assert ours.metrics["duration"].value == pytest.approx(theirs.metrics["duration"].value,
                                                               abs=0.001)


def test_names_results_and_reasons() -> None:
    cases = {c.name: c for c in detect.parse(DATA / "lkftmix.console.log")}
    assert {name: (c.result, c.reason) for name, c in cases.items()} == {
        "test05": (Result.PASS, ""),
        "test_macros01": (Result.FAIL, "test_macros01.c:36: TFAIL: fail_fd() failed: EINVAL (22)"),
        "test02": (Result.FAIL, "test02.c:27: TBROK: Non-NULL cleanup in newlib!"),
        "tst_needs_cmds02": (Result.SKIP,
                             "tst_cmd.c:270: TCONF: Couldn't find 'mkfs.ext45' in $PATH"),
        "test14": (Result.FAIL, "test14.c:14: TWARN: TBROK in cleanup"),
        "tst_res_flags": (Result.FAIL, "tst_res_flags.c:37: TFAIL: TFAIL message"),
        "test_brk_fail": (Result.FAIL, "test_brk_fail.c:18: TFAIL: Test child exiting..."),
        "abs01": (Result.PASS, ""),
        "sysconf01_brok": (Result.PASS, ""),  # the tag as it is: no sed
        "nosuchcmd01": (Result.FAIL, "Summary: failed 1"),
        "sleeper01": (Result.FAIL, "no exit status (kirk stopped it: timeout or kernel panic)"),
    }
    assert {c.suite for c in cases.values()} == {"ltp-lkftmix"}
    assert Counts.of(cases.values()) == Counts(passed=3, failed=7, skipped=1)
    flags = cases["tst_res_flags"]
    assert flags.metrics == {"duration": Metric(0.007, "s"), "passed": Metric(1.0),
                             "failed": Metric(1.0), "broken": Metric(1.0),
                             "skipped": Metric(1.0), "warnings": Metric(2.0)}
    assert flags.log[0] == "tst_test.c:2042: TINFO: LTP version: 20260529"  # colours gone
    assert flags.log[-6:] == ["Summary:", "passed   1", "failed   1", "broken   1",
                              "skipped  1", "warnings 2"]
    assert flags.line == 136  # its `Executing:` line


def test_detected_before_ltp_and_suite_option() -> None:
    with detect.LogFile(DATA / "math.console.log") as log:
        assert (log.format, log.recognised) == ("kirk-console", True)
    cases = detect.parse(DATA / "math.console.log", suite="ltp-cpu")
    assert [c.id for c in cases][:2] == ["ltp-cpu/abs01", "ltp-cpu/atof01"]


def test_a_test_cut_short_is_an_error() -> None:
    """The log ends inside a test (a kernel panic, a lost console): that test is an error, the
    tests before it keep their results."""
    lines = console("lkftmix")
    cut = next(i for i, line in enumerate(lines) if line.startswith("Executing: test02"))
    cases = kirk_console.parse(lines[: cut + 5])
    assert [(c.name, c.result) for c in cases] == [
        ("test05", Result.PASS), ("test_macros01", Result.FAIL), ("test02", Result.ERROR)]
    assert cases[-1].reason == "the log ended before the test did"


def test_a_test_whose_end_is_lost_before_the_next_banner() -> None:
    lines = console("lkftmix")
    start = next(i for i, line in enumerate(lines) if line.startswith("Executing: test02"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Duration: 0.007s"))
    cases = kirk_console.parse(lines[: start + 3] + lines[end + 2 :])  # test02's end lost
    assert [(c.name, c.result) for c in cases][1:4] == [
        ("test_macros01", Result.FAIL), ("test02", Result.ERROR),
        ("tst_needs_cmds02", Result.SKIP)]


def test_kernel_messages_interleaved_on_the_serial_console() -> None:
    """On a device's serial console kernel messages land between kirk's lines (these two are
    inserted into the real log, with the printk prefixes of a console)."""
    lines = console("lkftmix")
    at = next(i for i, line in enumerate(lines) if line.startswith("passed   0"))
    noisy = [*lines[:at], "[   42.123456] loop0: detected capacity change\n",
             *lines[at : at + 2], "<6>[   42.2] EXT4-fs (loop0): unmounting filesystem.\n",
             *lines[at + 2 :]]
    assert [(c.id, c.result) for c in kirk_console.parse(noisy)] == [
        (c.id, c.result) for c in kirk_console.parse(lines)]


def test_a_summary_in_the_output_does_not_hide_later_lines() -> None:
    """A `Summary:` the test prints before its end (a child's, a shell test's) is counted if
    complete, and what follows it is still read (its TFAIL gives the reason)."""
    lines = ["──────\n", "      twice01\n", "──────\n", "Executing: twice01\n", "\n",
             "Summary:\n", "see below\n", "twice01.c:9: TFAIL: after the first summary\n",
             "Summary:\n", "passed   0\n", "failed   1\n", "broken   0\n", "skipped  0\n",
             "warnings 0\n", "\n", "Duration: 1m 2s\n"]
    (case,) = kirk_console.parse(lines)
    assert case.result == Result.FAIL
    assert case.reason == "twice01.c:9: TFAIL: after the first summary"
    assert case.metrics["duration"] == Metric(62.0, "s")


@pytest.mark.parametrize(("counts", "status"), [
    ({"passed": 3}, 0),
    ({"passed": 1, "skipped": 1}, 0),  # a TCONF beside a TPASS: exit 0 (swapon01)
    ({"skipped": 1}, 32),
    ({"skipped": 1, "warnings": 2}, 36),  # ioctl_loop01
    ({"passed": 1, "failed": 1, "broken": 1, "skipped": 1, "warnings": 2}, 7),
])
def test_exit_status_of_the_summary_counts(counts: dict[str, int], status: int) -> None:
    assert kirk_console.exit_status(counts) == status
