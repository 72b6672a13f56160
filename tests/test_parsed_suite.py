"""Parsed suites on a real device: the run's output becomes one test per case.

The device is real (Debian arm64 kernel, busybox initramfs, QEMU); the suite's command
prints a small KTAP document, so the test knows exactly which cases to expect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import junit_results, need_qemu

pytestmark = pytest.mark.qemu

SUITE = r'''
import pytest

KTAP = "printf 'KTAP version 1\\n1..3\\nok 1 alpha\\nnot ok 2 beta\\nok 3 gamma # SKIP not here\\n'"
pytestmark = [pytest.mark.lkft_suite("demo"),
              pytest.mark.lkft_parsed(format="ktap", command=KTAP)]

from pytest_lkft.suites import lkft_case, test_case, test_crash, test_run
'''


def run(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(f"--lkft-cache-dir={cache}", "-p", "no:cacheprovider",
                                         "--lkft-device=qemu-arm64", *args)


@pytest.fixture
def cache(private_cache: Path) -> Path:
    """A private cache (case lists) sharing the downloaded kernels (see conftest)."""
    return private_cache


def test_first_run_reports_every_case_then_collects_them(pytester: pytest.Pytester,
                                                         cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    pytester.makepyfile(test_demo=SUITE)
    junit = pytester.path / "first.xml"
    first = run(pytester, cache, "-n", "2", "-v", f"--junitxml={junit}")
    first.assert_outcomes(passed=3, failed=1, skipped=1)  # run, crash, alpha; beta; gamma
    assert junit_results(junit) == {"demo/run": "pass", "demo/crash": "pass",
                                    "demo/alpha": "pass", "demo/beta": "failure",
                                    "demo/gamma": "skipped"}
    lists = list((cache / "caselists").glob("demo-*.json"))
    assert [json.loads(p.read_text()) for p in lists] == [["alpha", "beta", "gamma"]]

    junit = pytester.path / "second.xml"
    second = run(pytester, cache, "-v", f"--junitxml={junit}")
    second.assert_outcomes(passed=3, failed=1, skipped=1)
    second.stdout.fnmatch_lines(["*test_demo.py::test_case?qemu-arm64-beta? FAILED*"])
    assert junit_results(junit) == {"demo/run": "pass", "demo/crash": "pass",
                                    "demo/alpha": "pass", "demo/beta": "failure",
                                    "demo/gamma": "skipped"}


def test_a_known_case_the_run_does_not_report_is_an_error(pytester: pytest.Pytester,
                                                          cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    pytester.makepyfile(test_demo=SUITE)
    run(pytester, cache).assert_outcomes(passed=3, failed=1, skipped=1)
    (listing,) = (cache / "caselists").glob("demo-*.json")
    listing.write_text(json.dumps(["alpha", "beta", "delta", "gamma"]))
    result = run(pytester, cache, "-v")
    result.assert_outcomes(passed=3, failed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*test_case?qemu-arm64-delta? ERROR*",
                                 "*demo/delta: error (missing: the run did not report it)*"])


PER_ARCH_SUITE = r'''
import pytest

KTAP = ("printf 'KTAP version 1\\nok 1 common\\n'; "
        "[ $(uname -m) = aarch64 ] && printf 'ok 2 arm_only\\n'; true")
pytestmark = [pytest.mark.lkft_suite("arch"),
              pytest.mark.lkft_parsed(format="ktap", command=KTAP)]

from pytest_lkft.suites import lkft_case, test_case, test_crash, test_run
'''


def test_each_device_collects_only_the_cases_it_reported(pytester: pytest.Pytester,
                                                         cache: Path) -> None:
    need_qemu("qemu-system-aarch64", "qemu-system-x86_64")
    pytester.makepyfile(test_arch=PER_ARCH_SUITE)
    both = ("--lkft-device=qemu-x86_64", "-n", "2")
    run(pytester, cache, *both).assert_outcomes(passed=2 * 2 + 3)  # run+crash each; 3 extras
    second = run(pytester, cache, *both, "-v")
    second.assert_outcomes(passed=2 * 2 + 3)  # no "missing" arm_only on x86_64
    second.stdout.fnmatch_lines(["*PASSED*test_case?qemu-arm64-arm_only?*"])
    assert "qemu-x86_64-arm_only" not in second.stdout.str()
