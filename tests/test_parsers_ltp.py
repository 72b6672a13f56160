"""LTP parsers: pan result table/log/console, kirk console and JSON (synthetic logs)."""

from __future__ import annotations

import json

from pytest_lkft.parsers import kirk, ltp
from pytest_lkft.parsers.model import Case, Counts, Metric, Result

TABLE = """\
Test Start Time: Fri Nov 27 06:46:17 2026
-----------------------------------------
Testcase                                           Result     Exit Value
--------                                           ------     ----------
abort01                                            PASS       0    \n\
ioctl_loop01                                       FAIL       36   \n\
bpf_prog01                                         FAIL       2    \n\
warn_only01                                        FAIL       4    \n\
lsm_get_self_attr01                                CONF       32   \n\
demo_tmpdir_brok                                   PASS       0    \n\
sysconf01                                          PASS       0    \n\

-----------------------------------------------
Total Tests: 7
Total Skipped Tests: 1
Total Failures: 3
Kernel Version: 6.18.44-fc-v782
"""


def results(cases: list[Case]) -> dict[str, str]:
    return {c.id: c.result.value for c in cases}


def test_pan_result_table() -> None:
    cases = ltp.parse(TABLE.splitlines(), suite="ltp-syscalls")
    assert results(cases) == {
        "ltp-syscalls/abort01": "pass",
        "ltp-syscalls/ioctl_loop01": "fail",
        "ltp-syscalls/bpf_prog01": "fail",
        "ltp-syscalls/warn_only01": "fail",
        "ltp-syscalls/lsm_get_self_attr01": "skip",
        "ltp-syscalls/demo_tmpdir_brok": "pass",  # LKFT's sed makes it demo_tmpdir_fail
        "ltp-syscalls/sysconf01": "pass",  # ... and this one sysskip01
    }
    reasons = {c.name: c.reason for c in cases}
    assert reasons["warn_only01"] == "TWARN (warnings only, exit 4)"
    assert reasons["bpf_prog01"] == "TBROK (exit 2)"
    assert reasons["ioctl_loop01"] == "exit 36"


def test_pan_log_lines() -> None:
    log = [
        "tag=abort01 stime=1795762206 dur=0 exit=exited stat=0 core=no cu=0 cs=0",
        "tag=conf01 stime=1795762206 dur=1 exit=exited stat=32 core=no cu=0 cs=0",
        "tag=killed01 stime=1795762206 dur=3 exit=signaled stat=9 core=no cu=0 cs=0",
    ]
    cases = ltp.parse(log)
    assert results(cases) == {"ltp/abort01": "pass", "ltp/conf01": "skip", "ltp/killed01": "fail"}
    assert cases[2].reason == "killed by signal 9"
    assert cases[2].metrics == {"duration": Metric(3.0, "s")}


PAN_CONSOLE = """\
<<<test_start>>>
tag=bpf_prog01 stime=1795762254
cmdline="bpf_prog01"
contacts=""
analysis=exit
<<<test_output>>>
tst_test.c:2021: TINFO: LTP version: 20250930
bpf_common.c:23: TBROK: setrlimit(8,0x7fff74470440) failed: EPERM (1)

Summary:
passed   0
failed   0
broken   1
skipped  0
warnings 0
incrementing stop
<<<execution_status>>>
initiation_status="ok"
duration=0 termination_type=exited termination_id=2 corefile=no
cutime=1 cstime=0
<<<test_end>>>
<<<test_start>>>
tag=sockioctl01 stime=1795762255
<<<test_output>>>
sockioctl01    1  TPASS  :  bad file descriptor successful
<<<execution_status>>>
duration=1 termination_type=exited termination_id=0 corefile=no
<<<test_end>>>
<<<test_start>>>
tag=hangs01 stime=1795762256
<<<test_output>>>
hangs01.c:10: TINFO: waiting
"""


def test_pan_console_blocks_keep_the_output_as_log() -> None:
    cases = ltp.parse(PAN_CONSOLE.splitlines(), suite="ltp-syscalls")
    assert results(cases) == {
        "ltp-syscalls/bpf_prog01": "fail",
        "ltp-syscalls/sockioctl01": "pass",
        "ltp-syscalls/hangs01": "error",
    }
    bpf = cases[0]
    assert bpf.reason == "bpf_common.c:23: TBROK: setrlimit(8,0x7fff74470440) failed: EPERM (1)"
    assert bpf.log[0] == "tst_test.c:2021: TINFO: LTP version: 20250930"
    assert "incrementing stop" in bpf.log
    assert bpf.metrics == {
        "duration": Metric(0.0, "s"),
        "passed": Metric(0.0),
        "failed": Metric(0.0),
        "broken": Metric(1.0),
        "skipped": Metric(0.0),
        "warnings": Metric(0.0),
    }
    assert cases[1].reason == ""  # a pass has no reason, even with TCONF lines


def test_pan_console_skip_reason_is_the_tconf_line() -> None:
    log = [
        "<<<test_start>>>",
        "tag=lsm01 stime=1",
        "<<<test_output>>>",
        "tst_security.c:40: TCONF: /sys/kernel/security/lsm file is not present",
        "<<<execution_status>>>",
        "duration=0 termination_type=exited termination_id=32 corefile=no",
        "<<<test_end>>>",
    ]
    (case,) = ltp.parse(log)
    assert (case.result, case.reason) == (
        Result.SKIP,
        "tst_security.c:40: TCONF: /sys/kernel/security/lsm file is not present",
    )


def test_kirk_console_labels() -> None:
    log = [
        "Suite: syscalls",
        "────────────────────────",
        "abort01: pass  (0.019s)",
        "bpf_map01: broken  (0.005s)",
        "ioctl_loop01: skip  (0.002s)",
        "demo_legacy_false: fail  (0.000s)",
        "tainter01: pass | tainted  (1.000s)",
        "crasher01: kernel panic  (3.000s)",
    ]
    cases = ltp.parse(log)
    assert results(cases) == {
        "ltp-syscalls/abort01": "pass",
        "ltp-syscalls/bpf_map01": "fail",
        "ltp-syscalls/ioctl_loop01": "skip",
        "ltp-syscalls/demo_legacy_false": "fail",
        "ltp-syscalls/tainter01": "pass",
        "ltp-syscalls/crasher01": "error",
    }
    assert Counts.of(cases) == Counts(passed=2, failed=2, skipped=1, errors=1)


def report(*entries: dict[str, object]) -> str:
    return json.dumps({"results": list(entries), "stats": {}, "environment": {}})


def entry(fqn: str, status: str, retval: str = "0", log: str = "") -> dict[str, object]:
    test = {"log": log, "retval": [retval], "duration": 0.5, "result": status}
    return {"test_fqn": fqn, "status": status, "test": test}


def test_kirk_report_mapping_keeps_warn_and_names() -> None:
    text = report(
        entry("abort01", "pass"),
        entry("ioctl_loop01", "fail", "36"),
        entry("bpf_prog01", "brok", "2"),
        entry("timeout01", "brok", "-1"),
        entry("lsm01", "conf", "32"),
        entry("warn01", "warn", "4", "tst_kernel.c:126: TWARN: modules.dep missing\n"),
        entry("demo_tmpdir_brok", "pass"),
    )
    cases = kirk.parse_text(text, suite="ltp-syscalls")
    assert results(cases) == {
        "ltp-syscalls/abort01": "pass",
        "ltp-syscalls/ioctl_loop01": "fail",
        "ltp-syscalls/bpf_prog01": "fail",
        "ltp-syscalls/timeout01": "fail",
        "ltp-syscalls/lsm01": "skip",
        "ltp-syscalls/warn01": "fail",
        "ltp-syscalls/demo_tmpdir_brok": "pass",
    }
    by_name = {c.name: c for c in cases}
    assert by_name["warn01"].reason == "TWARN (warnings only)"
    assert by_name["warn01"].log == ["tst_kernel.c:126: TWARN: modules.dep missing"]
    assert by_name["timeout01"].reason == "no exit status (timeout or panic)"
    assert by_name["abort01"].metrics == {"duration": Metric(0.5, "s")}


def test_kirk_report_counts_become_metrics() -> None:
    test = {"result": "warn", "retval": ["4"], "passed": 3, "warnings": 1, "failed": "x"}
    (case,) = kirk.parse_text(report({"test_fqn": "w01", "status": "warn", "test": test}))
    assert case.metrics == {"passed": Metric(3.0), "warnings": Metric(1.0)}


def test_kirk_report_malformed_gives_no_cases() -> None:
    assert kirk.parse_text("{not json") == []
    assert kirk.parse_text("[]") == []
    assert kirk.parse_text('{"results": [1, {"status": "pass"}, {"test_fqn": 3}]}') == []
    (odd,) = kirk.parse_text('{"results": [{"test_fqn": "x", "status": "odd"}]}')
    assert odd.result is Result.ERROR


def test_pan_block_reason_comes_from_the_output_not_the_cmdline() -> None:
    log = [
        "<<<test_start>>>",
        "tag=skipped01 stime=1",
        "cmdline=\"echo 'lkft: TCONF: skipped01 is in the skipfile'; exit 32\"",
        "<<<test_output>>>",
        "lkft: TCONF: skipped01 is in the skipfile",
        "<<<execution_status>>>",
        "duration=0 termination_type=exited termination_id=32 corefile=no",
        "<<<test_end>>>",
        "<<<test_start>>>",
        "tag=conf_in_cmdline01 stime=1",
        "cmdline=\"run_it TCONF\"",
        "<<<test_output>>>",
        "t.c:1: TFAIL: wrong",
        "<<<execution_status>>>",
        "duration=0 termination_type=exited termination_id=1 corefile=no",
        "<<<test_end>>>",
    ]
    skipped, failed = ltp.parse(log)
    assert (skipped.result, skipped.reason) == (Result.SKIP,
                                                "lkft: TCONF: skipped01 is in the skipfile")
    assert (failed.result, failed.reason) == (Result.FAIL, "t.c:1: TFAIL: wrong")
