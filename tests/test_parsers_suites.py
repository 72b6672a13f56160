"""The parsers of the suites on the Debian rootfs: perf, v4l2, libhugetlbfs, rcutorture.

Each reads a real console (tests/data/suites/, from runs on qemu-arm64 with Debian's 6.1
kernels) and names the cases as test-definitions' scripts do.
"""

from __future__ import annotations

from pathlib import Path

from pytest_lkft.parsers import hugetlbfs, perf, rcutorture, v4l2
from pytest_lkft.parsers.detect import detect_format, parse
from pytest_lkft.parsers.model import Case, Counts, Metric, Result
from pytest_lkft.parsers.scripted import scripted_case, suite_skip

DATA = Path(__file__).parent / "data" / "suites"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_scripted_lines() -> None:
    assert scripted_case("LKFT-CASE: modprobe-vivid fail modprobe vivid failed", "v4l2", 3) == \
        Case("v4l2", "modprobe-vivid", Result.FAIL,
             log=["LKFT-CASE: modprobe-vivid fail modprobe vivid failed"],
             reason="modprobe vivid failed", line=3)
    assert scripted_case("echo LKFT-CASE: $*", "v4l2") is None
    assert suite_skip("x\nLKFT-SKIP: the kernel lacks CONFIG_X (not set)\nLKFT-SKIP: y\n") == \
        "the kernel lacks CONFIG_X (not set)"
    assert suite_skip('    echo "LKFT-SKIP: $*"') == ""


def test_perf_names_and_results_as_test_definitions() -> None:
    cases = perf.parse(lines("perf.log"))
    by_name = {case.name: case for case in cases}
    assert [c.name for c in cases[:3]] == ["perf_record_test", "perf_report_test",
                                           "perf_stat_test"]
    assert by_name["Detect_openat_syscall_event"].result is Result.PASS
    subtest = by_name["mmap_interface_tests_subtest_2"]
    assert subtest == Case(
        "perf", "mmap_interface_tests_subtest_2", Result.SKIP,
        log=["test child forked, pid 183", "failed to open evsel: No such file or directory",
             "test child finished with -2", "mmap interface tests subtest 2: Skip (permissions)"],
        reason="permissions", line=subtest.line)
    # skipped with -s: not run, so not verbose: named as test-definitions names it
    assert by_name["_1_vmlinux_symtab_matches_kallsyms"].reason == "user override"
    failed = by_name["CoreSight_ASM_Pure_Loop"]
    assert failed.result is Result.FAIL and "test child finished with -1" in failed.log
    assert by_name["perf_test"].result is Result.PASS
    assert Counts.of(cases) == Counts(passed=10, failed=1, skipped=5)
    assert detect_format(lines("perf.log")) == "perf"


def test_perf_result_inside_a_test_output_is_not_a_case() -> None:
    text = ["  9: Some test :", "--- start ---", "step one: Ok", "---- end ----",
            "Some test: FAILED!"]
    assert [(c.name, c.result) for c in perf.parse(text)] == [("Some_test", Result.FAIL)]


def test_v4l2_names_and_the_failure_log() -> None:
    cases = v4l2.parse(lines("v4l2-vivid.log"))
    assert cases[0].name == "modprobe-vivid" and cases[0].result is Result.PASS
    names = [case.name for case in cases]
    assert "VIDIOC_G-S_PRIORITY" in names and "MC_information_(see_'Media_Driver_Info'_above)" \
        in names
    assert next(c for c in cases if c.name == "VIDIOC_DBG_G-S_REGISTER").reason == \
        "Not Supported"
    failed = [c for c in cases if c.result is Result.FAIL]
    assert [c.name for c in failed] == ["VIDIOC_ENUM_FMT-FRAMESIZES-FRAMEINTERVALS",
                                        "v4l2-compliance"]
    assert failed[0].log[-2].startswith("fail: v4l2-test-formats.cpp(263): fmtdesc")
    assert detect_format(lines("v4l2-vivid.log")[30:]) == "v4l2"


def test_libhugetlbfs_names_as_test_definitions() -> None:
    cases = hugetlbfs.parse(lines("libhugetlbfs-func.log"))
    assert len(cases) == 85  # run_tests.py's summary: Total testcases 85
    assert Counts.of(cases) == Counts(passed=74, failed=1, skipped=10)
    by_name = {case.name: case for case in cases}
    assert by_name["zero_filesize_segment-2M-64"].result is Result.PASS
    assert by_name["HUGETLB_VERBOSE_1-empty_mounts-2M-64"].result is Result.PASS
    assert by_name["slbpacaflush-2M-64"].result is Result.PASS  # PASS (inconclusive)
    assert by_name["direct-2M-64"].result is Result.SKIP
    assert by_name["direct-2M-64"].reason.startswith("Bad configuration: Failed to open")
    assert by_name["LD_PRELOAD_libhugetlbfs.so-HUGETLB_MORECORE_yes-malloc-2M-64"].result \
        is Result.SKIP
    killed = by_name["brk_near_huge-2M-64"]  # test-definitions' script drops it
    assert killed.result is Result.FAIL and killed.reason.startswith("Fatal glibc error")
    assert detect_format(lines("libhugetlbfs-func.log")) == "hugetlbfs"


def test_rcutorture_verdicts_and_statistics() -> None:
    cases = rcutorture.parse(lines("rcutorture.log"))
    assert {c.name: str(c.result) for c in cases} == {
        "modprobe-rcutorture": "pass", "rmmod-rcutorture": "pass", "rcutorture-start": "pass",
        "rcutorture-end": "pass", "modprobe-rcutorture-srcu": "pass",
        "rmmod-rcutorture-srcu": "pass", "rcutorture-start-srcu": "pass",
        "rcutorture-end-srcu": "pass"}
    end = next(c for c in cases if c.name == "rcutorture-end")
    assert end.metrics["rcu-rtmbe"] == Metric(0.0) and end.metrics["rcu-ver"].value > 0
    assert "rcu-torture:--- End of test: SUCCESS" in end.log[-1]
    assert detect_format(lines("rcutorture.log")) == "rcutorture"


def test_rcutorture_failure_carries_the_lines_that_said_so() -> None:
    text = ["LKFT-RCUTORTURE: srcu", "LKFT-CASE: modprobe-rcutorture-srcu pass",
            "[ 16.1] srcu-torture:--- Start of test: nreaders=1",
            "[ 17.1] srcu-torture: rtc: 000000 ver: 9 tfle: 0 rtmbe: 2 nt: 44 barrier: 0/0:0",
            "[ 17.2] srcu-torture: !!! Reader Pipe: 1 2 3",
            "[ 18.1] srcu-torture:--- End of test: FAILURE: nreaders=1",
            "LKFT-RCUTORTURE: tasks", "LKFT-CASE: modprobe-rcutorture-tasks pass"]
    cases = {c.name: c for c in rcutorture.parse(text)}
    end = cases["rcutorture-end-srcu"]
    assert (end.result, end.reason) == (Result.FAIL, "FAILURE")
    assert end.log == ["srcu-torture: !!! Reader Pipe: 1 2 3",
                       "srcu-torture: rtc: 000000 ver: 9 tfle: 0 rtmbe: 2 nt: 44 barrier: 0/0:0",
                       "srcu-torture:--- End of test: FAILURE: nreaders=1"]
    assert end.metrics == {"srcu-ver": Metric(9.0), "srcu-tfle": Metric(0.0),
                           "srcu-rtmbe": Metric(2.0), "srcu-nt": Metric(44.0)}
    assert (cases["rcutorture-start-tasks"].result, cases["rcutorture-end-tasks"].reason) == \
        (Result.FAIL, "no `--- End of test` in the kernel log")


def test_libgpiod_tap_is_read_by_the_ktap_parser() -> None:
    cases = parse(DATA / "libgpiod-sim.log", "ktap", "libgpiod")
    assert len(cases) == 21 and Counts.of(cases) == Counts(passed=21)
    assert [c.name for c in cases[:2]] == ["gpiodetect_list_chips", "gpiodetect_invalid_args"]
