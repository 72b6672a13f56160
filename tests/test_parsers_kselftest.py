"""kselftest parser: test-definitions naming, nesting, directives (synthetic logs)."""

from __future__ import annotations

from pytest_lkft.parsers import kselftest
from pytest_lkft.parsers.model import Counts

RUN = """\
TAP version 13
1..4
# timeout set to 45
# selftests: demo: harness_test
# TAP version 13
# 1..2
# # Starting 2 tests from 1 test cases.
# #  RUN           global.first ...
# #            OK  global.first
# ok 1 global.first
# #  RUN           global.second ...
# # second.c:10:second:Expected 0 (0) == 1 (1)
# #          FAIL  global.second
# not ok 2 global.second
# # FAILED: 1 / 2 tests passed.
not ok 1 selftests: demo: harness_test # exit=1
# timeout set to 45
# selftests: demo: plain
# TAP version 13
# 1..3
# ok 1 CLOCK_REALTIME   \n\
# ok 2 # SKIP CLOCK_TAI   \n\
# ok 3 # XFAIL known
ok 2 selftests: demo: plain
# selftests: demo: slow
#
not ok 3 selftests: demo: slow # TIMEOUT 45 seconds
# selftests: demo: nothing
ok 4 selftests: demo: nothing # SKIP
"""


def results(text: str) -> dict[str, str]:
    return {c.id: c.result.value for c in kselftest.parse(text.splitlines())}


def test_names_results_and_order_follow_parse_output_py() -> None:
    cases = kselftest.parse(RUN.splitlines())
    assert [(c.id, c.result.value) for c in cases] == [
        ("kselftest-demo/demo_harness_test_global_first", "pass"),
        ("kselftest-demo/demo_harness_test_global_second", "fail"),
        ("kselftest-demo/demo_harness_test", "fail"),
        ("kselftest-demo/demo_plain_CLOCK_REALTIME", "pass"),
        ("kselftest-demo/demo_plain_CLOCK_TAI", "skip"),
        ("kselftest-demo/demo_plain_unknown", "xfail"),
        ("kselftest-demo/demo_plain", "pass"),
        ("kselftest-demo/demo_slow", "fail"),
        ("kselftest-demo/demo_nothing", "skip"),
    ]
    assert Counts.of(cases) == Counts(passed=3, failed=3, skipped=2, xfailed=1)


def test_reason_and_log_of_a_failed_test() -> None:
    cases = {c.name: c for c in kselftest.parse(RUN.splitlines())}
    slow = cases["demo_slow"]
    assert slow.reason == "TIMEOUT 45 seconds"
    assert slow.log[-1] == "not ok 3 selftests: demo: slow # TIMEOUT 45 seconds"
    second = cases["demo_harness_test_global_second"]
    assert "# # second.c:10:second:Expected 0 (0) == 1 (1)" in second.log


def test_slugify_matches_test_definitions() -> None:
    assert kselftest.slugify(" clone3: clone3") == "clone3_clone3"
    assert kselftest.slugify("CLONE_ARGS_SIZE_VER0 - 8") == "CLONE_ARGS_SIZE_VER0___8"
    assert kselftest.slugify("pidfd [1234] test") == "pidfd_test"
    assert kselftest.slugify("__x__") == "_x_"


def test_duplicates_get_dup_suffix() -> None:
    log = "# selftests: d: t\n# ok 1 same\n# ok 2 same\n# ok 3 same\nok 1 selftests: d: t\n"
    assert list(results(log)) == [
        "kselftest-d/d_t_same",
        "kselftest-d/d_t_same_dup2",
        "kselftest-d/d_t_same_dup3",
        "kselftest-d/d_t",
    ]


def test_three_levels_deep() -> None:
    log = "# selftests: d: t\n# # ok 1 inner\n# ok 1 middle\nok 1 selftests: d: t\n"
    assert results(log) == {
        "kselftest-d/d_t_middle_inner": "pass",
        "kselftest-d/d_t_middle": "pass",
        "kselftest-d/d_t": "pass",
    }


def test_not_ok_skip_is_fail_and_lower_case_skip_names() -> None:
    log = "not ok 1 selftests: d: a # SKIP odd\nok 2 selftests: d: b # skip lower reason\n"
    assert results(log) == {"kselftest-d/d_a": "fail", "kselftest-d/d_b_lower_reason": "skip"}


def test_bail_out_gives_no_result_but_stays_in_the_log() -> None:
    log = """\
# selftests: breakpoints: step_after_suspend_test
[   67.432985] PM: suspend entry (deep)
# TAP version 13
# Bail out! Failed to enter Suspend state
not ok 1 selftests: breakpoints: step_after_suspend_test # exit=1
"""
    (case,) = kselftest.parse(log.splitlines())
    assert case.id == "kselftest-breakpoints/breakpoints_step_after_suspend_test"
    assert case.reason == "exit=1"
    assert "# Bail out! Failed to enter Suspend state" in case.log
    assert "PM: suspend entry (deep)" in case.log


def test_glued_nested_result_is_read() -> None:
    # parse-output.py loses it: the line is a diagnostic for tap.py.
    log = """\
# selftests: timers: posix_timers
# ok 1 ITIMER_VIRTUAL
# Diff too high: 3078188..not ok 2 timer_create() per CLOCK_THREAD_CPUTIME_ID
not ok 1 selftests: timers: posix_timers # TIMEOUT 10 seconds
"""
    assert results(log) == {
        "kselftest-timers/timers_posix_timers_ITIMER_VIRTUAL": "pass",
        "kselftest-timers/timers_posix_timers_timer_create_per_CLOCK_THREAD_CPUTIME_ID": "fail",
        "kselftest-timers/timers_posix_timers": "fail",
    }


def test_crash_mid_test_is_an_error_with_the_reason() -> None:
    log = """\
ok 1 selftests: d: before
# selftests: d: crasher
# ok 1 step
[   70.000000] Kernel panic - not syncing: Fatal exception
"""
    cases = kselftest.parse(log.splitlines())
    assert [(c.name, c.result.value) for c in cases] == [
        ("d_before", "pass"),
        ("d_crasher_step", "pass"),
        ("d_crasher", "error"),
    ]
    assert cases[-1].reason == "Kernel panic - not syncing: Fatal exception"


def test_truncated_log_reports_the_running_test() -> None:
    cases = kselftest.parse(["# selftests: d: hung", "# still going"])
    assert [(c.id, c.result.value) for c in cases] == [("kselftest-d/d_hung", "error")]


def test_suite_override_and_indented_lines_are_not_results() -> None:
    log = "  ok 1 indented\nok 1 selftests: d: t\n"
    assert results_with_suite(log, "kselftest-x") == {"kselftest-x/d_t": "pass"}


def results_with_suite(text: str, suite: str) -> dict[str, str]:
    return {c.id: c.result.value for c in kselftest.parse(text.splitlines(), suite=suite)}


def test_absurd_nesting_does_not_recurse() -> None:
    line = "# " * 5000 + "ok 1 deep"
    cases = kselftest.parse([line, "ok 1 selftests: d: t"])
    assert cases[-1].name == "d_t"
