"""LAVA parsers: console signals and the YAML job log (synthetic logs)."""

from __future__ import annotations

from pytest_lkft.parsers import lava
from pytest_lkft.parsers.model import Metric, Result

CONSOLE = """\
<8>[    4.291919] <LAVA_SIGNAL_STARTRUN 0_ltp-smoke 1_1.1.3.1>
access01.c:237: TPASS: access passed
<8>[    8.208468] <LAVA_SIGNAL_TESTCASE TEST_CASE_ID=access01 RESULT=pass>
<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=chdir01 RESULT=FAIL>
<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=boot-time RESULT=pass MEASUREMENT=4.25 UNITS=seconds>
<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=odd RESULT=maybe>
<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=unk RESULT=unknown>
<LAVA_SIGNAL_ENDRUN 0_ltp-smoke 1_1.1.3.1>
<LAVA_SIGNAL_STARTRUN 1_kselftest-timers 1_1.1.3.2>
\x1b[0m<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=timers_nanosleep RESULT=skip>
<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=split RESULT=
"""


def test_console_signals() -> None:
    cases = lava.parse_console(CONSOLE.splitlines())
    assert [(c.id, c.result.value) for c in cases] == [
        ("ltp-smoke/access01", "pass"),
        ("ltp-smoke/chdir01", "fail"),
        ("ltp-smoke/boot-time", "pass"),
        ("ltp-smoke/unk", "error"),
        ("kselftest-timers/timers_nanosleep", "skip"),
    ]
    assert cases[0].log == ["access01.c:237: TPASS: access passed"]
    assert cases[0].line == 3
    assert cases[2].metrics == {"measurement": Metric(4.25, "seconds")}


def test_console_suite_override_and_no_startrun() -> None:
    lines = ["<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=a RESULT=pass>"]
    assert [c.id for c in lava.parse_console(lines)] == ["lava/a"]
    assert [c.id for c in lava.parse_console(lines, suite="boot")] == ["boot/a"]


JOB_LOG = """\
- {"dt": "2023-12-05T11:20:09.207861", "lvl": "info", "msg": "lava-dispatcher"}
- {"dt": "2023-12-05T11:20:12.592023", "lvl": "results", "msg": {"case": "validate", \
"definition": "lava", "result": "pass"}}
- {"dt": "2023-12-05T11:21:01.5", "lvl": "target", "msg": "access01.c:237: TPASS: ok"}
- {"dt": "2023-12-05T11:21:01.515044", "lvl": "results", "msg": {"case": "access01", \
"definition": "0_ltp-smoke", "endtc": ! "1756", "result": "pass", "starttc": ! "1756"}}
- {"dt": "2023-12-05T11:21:02", "lvl": "results", "msg": {"case": "boot-time", \
"definition": "1_boot", "result": "pass", "measurement": 4.5, "units": "s"}}
- {"dt": "2023-12-05T11:21:03", "lvl": "results", "msg": {"case": "x", "result": "pass"}}
- {"dt": broken yaml
not a log line
"""


def test_job_log_results_as_tuxrun_reads_them() -> None:
    cases = lava.parse_job_log(JOB_LOG.splitlines())
    assert [(c.id, c.result) for c in cases] == [
        ("ltp-smoke/access01", Result.PASS),
        ("boot/boot-time", Result.PASS),
    ]
    assert cases[0].log == ["access01.c:237: TPASS: ok"]
    assert cases[1].metrics == {"measurement": Metric(4.5, "s")}


def test_definition_suite() -> None:
    assert lava.definition_suite("0_ltp-smoke") == "ltp-smoke"
    assert lava.definition_suite("ltp-smoke") == "ltp-smoke"
    assert lava.definition_suite("12_kselftest-x") == "kselftest-x"
