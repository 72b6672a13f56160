"""Every real log of ../shared/corpus against its reference results.

Our results equal `X.expected.json` except where a reference is known to be wrong;
each such difference is listed in `DIFFERENCES` and has a test below saying why ours
is right. The corpus is read in place, never copied.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_lkft.parsers import detect, kirk, ltp
from pytest_lkft.parsers.lines import clean
from pytest_lkft.parsers.model import Case

CORPUS = Path(__file__).parents[1].parent / "shared" / "corpus"
pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS} (it lives beside the repo)"
)

# (log, test) -> (our result, the reference's result); None = absent from that side.
DIFFERENCES: dict[tuple[str, str], tuple[str | None, str | None]] = {
    # test-definitions loses a `not ok` glued after unterminated test output
    (
        "kselftest/local-6.12.117-timers-override-timeout-10.log",
        "timers_posix_timers_timer_create_per_CLOCK_THREAD_CPUTIME_ID",
    ): ("fail", None),
    # LKFT's kirk pipeline `sed 's/brok/fail/'` renames the test
    ("ltp/kirk.report.json", "demo_tmpdir_brok"): ("pass", None),
    ("ltp/kirk.report.json", "demo_tmpdir_fail"): (None, "pass"),
    ("ltp/kirk.console.log", "demo_tmpdir_brok"): ("pass", None),
    ("ltp/kirk.console.log", "demo_tmpdir_fail"): (None, "pass"),
    # kirk's console label comes from the result counts, not the exit status
    ("ltp/kirk.console.log", "add_key01"): ("skip", "pass"),
    ("ltp/kirk.console.log", "fanotify10"): ("skip", "pass"),
    ("ltp/kirk.console.log", "which01_sh"): ("skip", "pass"),
    ("ltp/kirk.console.log", "swapon01"): ("skip", "pass"),
    ("ltp/kirk.console.log", "ioctl_loop01"): ("skip", "fail"),
    # LAVA stopped listening at its test-shell timeout; the console shows 3 more tests
    ("lava/tuxrun-fail-1.console.log", "ltp-containers/sem_nstest_none"): ("pass", None),
    ("lava/tuxrun-fail-1.console.log", "ltp-containers/sem_nstest_clone"): ("pass", None),
    ("lava/tuxrun-fail-1.console.log", "ltp-containers/sem_nstest_unshare"): ("pass", None),
}


def corpus_logs() -> list[str]:
    if not CORPUS.is_dir():
        return []
    logs = [p for p in CORPUS.glob("*/*") if p.suffix in (".log", ".yaml")]
    logs += [CORPUS / "ltp" / "kirk.report.json"]
    return sorted(str(p.relative_to(CORPUS)) for p in logs)


def expected_path(log: str) -> Path:
    path = CORPUS / log
    stem = path.name.rsplit(".", 1)[0]
    return path.with_name(f"{stem}.expected.json")


def our_results(log: str) -> dict[str, str]:
    # kunit/'s reference is kunit_parser whatever the log looks like: force KTAP there
    fmt = "ktap" if log.startswith("kunit/") else "auto"
    cases = detect.parse(CORPUS / log, format=fmt)
    return {key(log, c): c.result.value for c in cases}


def key(log: str, case: Case) -> str:
    """The references name lava results `suite/case`, the others by test name only."""
    return case.id if log.startswith("lava/") else case.name


@pytest.mark.parametrize("log", corpus_logs())
def test_corpus_log_matches_reference(log: str) -> None:
    ours = our_results(log)
    reference = json.loads(expected_path(log).read_text())
    for (fault_log, test), (our, ref) in DIFFERENCES.items():
        if fault_log == log:
            assert (ours.pop(test, None), reference.pop(test, None)) == (our, ref)
    assert ours == reference


def test_every_listed_difference_belongs_to_a_corpus_log() -> None:
    assert {log for log, _ in DIFFERENCES} <= set(corpus_logs())


def test_auto_detection_on_the_corpus() -> None:
    detected: dict[str, set[str]] = {log.split("/")[0]: set() for log in corpus_logs()}
    for log in corpus_logs():
        with open(CORPUS / log, errors="replace") as handle:
            detected[log.split("/")[0]].add(detect.detect_format(handle))
    assert detected["kselftest"] == {"kselftest"}
    assert detected["lava"] == {"lava"}
    assert detected["ltp"] == {"ltp", "kirk"}
    assert detected["kunit"] == {"ktap", "kselftest"}  # one fixture is kselftest output


# --- why each difference is right ------------------------------------------------------


def test_glued_kselftest_result_is_a_real_failure() -> None:
    """posix_timers printed `Diff too high: 3078188..` without a newline, then its
    result `not ok 4 timer_create() ...`: tap.py sees one diagnostic line and the
    failure vanishes from SQUAD. The test failed (its runner line is TIMEOUT, the
    nested plan said 18); we report the failing subtest."""
    log = CORPUS / "kselftest/local-6.12.117-timers-override-timeout-10.log"
    line = next(t for t in log.read_text().splitlines() if "Diff too high" in t)
    assert line == "# Diff too high: 3078188..not ok 4 timer_create() per CLOCK_THREAD_CPUTIME_ID"
    cases = {c.name: c for c in detect.parse(log)}
    glued = cases["timers_posix_timers_timer_create_per_CLOCK_THREAD_CPUTIME_ID"]
    assert glued.result.value == "fail"
    assert glued.log[-1] == line


def test_ltp_names_are_not_rewritten() -> None:
    """`sed 's/brok/fail/; s/conf/skip/'` runs on the whole `NAME RESULT` line, so the
    first `brok` in a name is rewritten: demo_tmpdir_brok (which passes) becomes
    demo_tmpdir_fail. kirk's report and pan's table of the same tests both say
    demo_tmpdir_brok, the runtest tag."""
    report = json.loads((CORPUS / "ltp/kirk.report.json").read_text())
    fqns = {r["test_fqn"] for r in report["results"]}
    assert "demo_tmpdir_brok" in fqns and "demo_tmpdir_fail" not in fqns
    table = (CORPUS / "ltp/runltp-pq.result.log").read_text()
    assert "demo_tmpdir_brok" in table
    cases = kirk.parse_text((CORPUS / "ltp/kirk.report.json").read_text())
    assert {c.name: c.result.value for c in cases}["demo_tmpdir_brok"] == "pass"


def test_kirk_console_label_is_not_the_status() -> None:
    """kirk's console prints `skip` when a test reported any TCONF, even if it passed
    (exit 0) or failed (ioctl_loop01, exit 36 = TCONF|TWARN). That is what the console
    says, and all it says; the JSON report carries the exit status and is what
    `lkft parse` should be given. We report the console faithfully."""
    console = (CORPUS / "ltp/kirk.console.log").read_text()
    report = json.loads((CORPUS / "ltp/kirk.report.json").read_text())
    retval = {r["test_fqn"]: r["test"]["retval"] for r in report["results"]}
    assert "ioctl_loop01: skip  (" in console and retval["ioctl_loop01"] == ["36"]
    assert "swapon01: skip  (" in console and retval["swapon01"] == ["0"]
    by_name = {c.name: c.result.value for c in detect.parse(CORPUS / "ltp/kirk.report.json")}
    assert by_name["ioctl_loop01"] == "fail"
    assert by_name["swapon01"] == "pass"


def test_late_lava_signals_were_real_results() -> None:
    """tuxrun-fail-1 hit LAVA's test-shell timeout; the three last tests still ran and
    printed their signals, which LAVA then read only as `feedback`. The console log
    carries them, so reading the console we report them (naive reading agrees)."""
    job_log = (CORPUS / "lava/tuxrun-fail-1.yaml").read_text()
    for name in ("sem_nstest_none", "sem_nstest_clone", "sem_nstest_unshare"):
        assert f"TEST_CASE_ID={name} RESULT=pass" in job_log
    naive = json.loads((CORPUS / "lava/tuxrun-fail-1.console.signals-naive.json").read_text())
    assert our_results("lava/tuxrun-fail-1.console.log") == naive


def test_prefix_stripped_per_line_keeps_not_ok() -> None:
    """The LKFT excerpt starts at an indented `<6>[ts]     KTAP version 1`: kunit_parser
    cuts those 22 characters from every line and reads `not ok 95 Handshake API
    tests` as `ok` (its tree says SUCCESS). We strip each line's own prefix."""
    log = CORPUS / "kunit/lkft-email-kunit-handshake-6.5.6-rc1-qemu-armv7.log"
    last = log.read_text().splitlines()[-1]
    assert last[22:] == "ok 95 Handshake API tests"
    assert clean(last) == "not ok 95 Handshake API tests"
    detail = json.loads(log.with_name(log.stem + ".kunit_parser-detail.json").read_text())
    suite = next(n for n in detail["nodes"] if n["name"] == "Handshake API tests")
    assert suite["kunit_status"] == "SUCCESS"
    cases = detect.parse(log, format="ktap")
    assert [c.name for c in cases if c.result.value == "fail"] == [
        "Handshake API tests.req_destroy works"
    ]


def test_names_are_not_truncated_like_lkft_2022() -> None:
    """LKFT's 2022-2025 parser kept the first word only: all 17 leaves of the excerpt
    became `req_alloc` (and its tab-indented `not ok` became pass)."""
    log = CORPUS / "kunit/lkft-email-kunit-handshake-6.5.6-rc1-qemu-armv7.log"
    lkft = json.loads(log.with_name(log.stem + ".expected.lkft-2022.json").read_text())
    assert {k.split("#")[0] for k in lkft} == {"req_alloc"}
    names = [c.name for c in detect.parse(log, format="ktap")]
    assert len(names) == len(set(names)) == 17
    failure = CORPUS / "kunit/kunit-test_data-test_is_test_passed-failure.log"
    lkft_failure = json.loads(
        failure.with_name(failure.stem + ".expected.lkft-2022.json").read_text()
    )
    assert lkft_failure["example_-example_simple_test"] == "pass"
    ours = {c.name: c.result.value for c in detect.parse(failure, format="ktap")}
    assert ours["example.example_simple_test"] == "fail"


def test_runltp_quiet_console_reads_its_result_file() -> None:
    """`runltp -q` prints no test names; its banner names the `-l` result file, which
    we read when it sits beside the console log."""
    console = CORPUS / "ltp/runltp-pq.console.log"
    assert ltp.parse(console.read_text().splitlines()) == []
    assert "LOG File: /scratch/ltp-runs/runltp-pq.result.log" in console.read_text()
    assert our_results("ltp/runltp-pq.console.log") == our_results("ltp/runltp-pq.result.log")


@pytest.mark.parametrize("log", [log for log in corpus_logs() if log.startswith("kunit/")])
def test_ktap_fast_path_equals_line_by_line_on_real_logs(log: str) -> None:
    from pytest_lkft.parsers import ktap

    lines = (CORPUS / log).read_text(errors="replace").splitlines(keepends=True)
    reader = ktap.ChunkReader(ktap.KtapParser())
    reader.read_slowly(lines)
    reader.parser.finish(reader.number)
    assert ktap.parse(lines) == reader.drain()
