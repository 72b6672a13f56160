"""`--lkft-tests SUITE[,SUITE]`: run only the named suites, the others deselected as by -k.

Collection needs no device, so most of these collect the repository's testsuites without
one; the last one boots qemu-arm64 to show that `smoke` runs without `boot`.
"""

from __future__ import annotations

import pytest

from conftest import TESTSUITES, need_qemu
from pytest_lkft.pytestplugin.selection import NO_SUITE

ALL_SUITES = ("boot, build, kselftest, kunit, libgpiod, libhugetlbfs, ltp, modules, perf, "
              "rcutorture, smoke, v4l2")
KTAP = """KTAP version 1
1..1
    KTAP version 1
    # Subtest: demo
    1..2
    ok 1 first
    not ok 2 second
ok 1 demo
"""
KSELFTEST = """TAP version 13
1..1
# selftests: size: get_size
ok 1 selftests: size: get_size
"""


def collect(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Collect the repository's testsuites (no device: nothing boots)."""
    return pytester.runpytest(str(TESTSUITES), "-p", "no:labgrid", "-p", "no:cacheprovider",
                              "--collect-only", "-q", *args)


def suites_of(result: pytest.RunResult) -> list[str]:
    """The test modules collected (`<Module test_x.py>` or `test_x.py::...` lines), sorted."""
    modules = {line.strip().removeprefix("<Module ").removesuffix(">")
               for line in result.outlines if line.strip().startswith("<Module ")}
    modules |= {line.split("::")[0].rsplit("/", 1)[-1] for line in result.outlines
                if "::" in line}
    return sorted(modules)


def test_one_suite_is_kept_and_the_others_deselected(pytester: pytest.Pytester) -> None:
    result = collect(pytester, "--lkft-tests=smoke")
    assert suites_of(result) == ["test_smoke.py"]
    result.stdout.fnmatch_lines(["*14/43 tests collected (29 deselected)*"])  # 13 cases + crash


def test_a_suite_case_keeps_those_cases_and_the_suites_checks(pytester: pytest.Pytester) -> None:
    result = collect(pytester, "--lkft-tests=smoke/uname,smoke/*info")
    kept = [line.strip() for line in result.outlines if line.strip().startswith("<Function")]
    assert kept == ["<Function test_smoke[uname]>", "<Function test_smoke[cpuinfo]>",
                    "<Function test_smoke[meminfo]>", "<Function test_crash>"]
    logs = pytester.runpytest("-p", "no:labgrid", "-p", "no:cacheprovider", "-v",
                              "--lkft-results", str(pytester.makefile(".log", kunit=KTAP)),
                              "--lkft-tests=kunit/demo.sec*")
    logs.assert_outcomes(failed=1, deselected=1)
    nothing = collect(pytester, "--lkft-tests=smok/uname")
    nothing.stderr.fnmatch_lines(["*'smok/uname' matches no suite*"])


def test_comma_list_repeats_and_globs(pytester: pytest.Pytester) -> None:
    result = collect(pytester, "--lkft-tests=boot,smoke", "--lkft-tests", "kselftest-*")
    assert suites_of(result) == ["test_boot.py", "test_kselftest.py", "test_smoke.py"]
    kunit_only = collect(pytester, "--lkft-tests=k?nit")
    assert suites_of(kunit_only) == ["test_kunit.py"]


def test_environment_then_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = pytester.makeini("[pytest]\nlkft_tests =\n    modules\n    build\n")
    from_ini = collect(pytester, "-c", str(ini))
    assert suites_of(from_ini) == ["test_build.py", "test_modules.py"]
    monkeypatch.setenv("LKFT_TESTS", "boot")
    assert suites_of(collect(pytester, "-c", str(ini))) == ["test_boot.py"]  # env over ini
    assert suites_of(collect(pytester, "-c", str(ini), "--lkft-tests=kunit")) == \
        ["test_kunit.py"]  # command line over both


def test_a_name_of_no_suite_is_one_line_naming_its_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = collect(pytester, "--lkft-tests=smoke,smok")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: " + NO_SUITE.format(source="--lkft-tests", value="smok", suites=ALL_SUITES)])
    monkeypatch.setenv("LKFT_TESTS", "kunnit")
    from_env = collect(pytester)
    from_env.stderr.fnmatch_lines(["ERROR: LKFT_TESTS 'kunnit' matches no suite; *"])


def test_kselftest_placeholder_says_how_to_get_kselftests(pytester: pytest.Pytester) -> None:
    """No kselftests given: `kselftest-size` selects the placeholder, which says why."""
    result = pytester.runpytest(str(TESTSUITES), "-p", "no:labgrid", "-p", "no:cacheprovider",
                                "--lkft-device=qemu-arm64", "-rs", "--lkft-tests=kselftest-size")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*no kselftests: pass --lkft-kselftest kselftest.tar.xz*"])


def test_under_xdist_the_error_is_shown_once(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(str(TESTSUITES), "-p", "no:labgrid", "-n", "2",
                                           "--lkft-tests=nope")
    assert result.ret != 0
    assert "INTERNALERROR" not in result.stdout.str()
    assert result.stdout.str().count("'nope' matches no suite") == 2  # error, summary line


def test_results_logs_are_selected_by_their_suites(pytester: pytest.Pytester) -> None:
    ktap = pytester.makefile(".log", kunit=KTAP)
    kselftest = pytester.makefile(".log", size=KSELFTEST)
    result = pytester.runpytest("-p", "no:labgrid", "-p", "no:cacheprovider", "-v",
                                "--lkft-results", str(ktap), str(kselftest),
                                "--lkft-tests=kselftest-*")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*size.log::kselftest-size/size_get_size PASSED*"])


@pytest.mark.qemu
def test_smoke_without_boot_boots_its_own_device(pytester: pytest.Pytester,
                                                 artifact_cache: object) -> None:
    need_qemu("qemu-system-aarch64")
    result = pytester.runpytest_subprocess(
        str(TESTSUITES), f"--lkft-cache-dir={artifact_cache}", "-p", "no:cacheprovider",
        "--lkft-device=qemu-arm64", "--lkft-tests=smoke", "-v")
    result.assert_outcomes(passed=14, deselected=29)  # the other suites
    result.stdout.fnmatch_lines(["lkft: devices=qemu-arm64 * tests=smoke",
                                 "*test_smoke.py::test_smoke?qemu-arm64-uname? PASSED*"])
    assert "test_boot.py" not in result.stdout.str()
