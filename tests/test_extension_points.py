"""The four extension points of docs/architecture.md, each added through that page alone.

Every test takes its code from the page's recipe (the Python blocks under its heading), so
the page cannot drift from what works: a device kind, a test suite with a staging module,
a results format and a result sink. The suite recipe boots qemu-arm64 for real.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO, TESTSUITES, junit_results, need_qemu

ARCHITECTURE = REPO / "docs" / "architecture.md"


def recipe(heading: str) -> list[str]:
    """The Python code blocks under `### heading` in docs/architecture.md, in order."""
    text = ARCHITECTURE.read_text()
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks, f"no code under '### {heading}' in {ARCHITECTURE}"
    return blocks


HOST_SUITE = """
import pytest
from pytest_lkft.suites import run_case, test_crash  # noqa: F401

pytestmark = pytest.mark.lkft_suite("host-smoke")

def test_uname(device, request):
    run_case(device, "uname -s", request.node)
    assert device.name == "host"
"""


def test_a_device_kind(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A kind from a conftest.py makes the devices of its names; the suites run on them."""
    pytester.makeconftest(recipe("A device kind")[0])
    pytester.makepyfile(test_uname=HOST_SUITE)
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(
        str(TESTSUITES / "test_boot.py"), "test_uname.py", "--lkft-device=host",
        f"--junitxml={junit}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert junit_results(junit) == {"boot/boot": "pass", "boot/crash": "pass",
                                    "host-smoke/uname": "pass", "host-smoke/crash": "pass"}
    log = pytester.path / "lkft-results" / "host" / "host-smoke" / "console.log"
    assert "$ uname -s\nLinux" in log.read_text()


def test_an_unknown_device_lists_the_kinds_names(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(recipe("A device kind")[0])
    pytester.makepyfile(test_uname=HOST_SUITE)
    result = pytester.runpytest_subprocess("test_uname.py", "--lkft-device=hots")
    result.stderr.fnmatch_lines(["ERROR: unknown device 'hots'; valid devices: host, qemu-*"])


@pytest.mark.qemu
def test_a_suite_with_its_staging_module(pytester: pytest.Pytester, private_cache: Path,
                                         tmp_path: Path) -> None:
    """A suite file and a stage from the recipe: the staged file is on the booted device."""
    need_qemu("qemu-system-aarch64")
    suite, stage = recipe("A test suite")
    pytester.makeconftest(stage)
    (pytester.path / "testsuites").mkdir()
    (pytester.path / "testsuites" / "test_hello.py").write_text(suite)
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "testsuites/test_hello.py", "--lkft-device=qemu-arm64",
        f"--lkft-cache-dir={private_cache}", f"--junitxml={junit}")
    result.assert_outcomes(passed=2)
    assert junit_results(junit) == {"hello/greeting": "pass", "hello/crash": "pass"}
    log = pytester.path / "lkft-results" / "qemu-arm64" / "hello" / "console.log"
    assert re.search(r"cat /hello.txt\r?\n.*\bhello\r?\n", log.read_text(), re.DOTALL)
    properties = junit.read_text()
    assert 'name="lkft.meta.hello" value="1"' in properties


def test_a_results_format(pytester: pytest.Pytester) -> None:
    """A format from the recipe is sniffed before the built-in ones; its cases are items."""
    pytester.makeconftest(recipe("A results format")[0])
    log = pytester.path / "run.log"
    log.write_text("TALLY\nalpha pass\nbeta fail\ngamma skip\n")
    result = pytester.runpytest_subprocess(f"--lkft-results={log}", "-v")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*run.log::tally/alpha PASSED*",
                                 "*run.log::tally/beta FAILED*"])


def test_a_result_sink(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A sink from the recipe gets every case of the run, and says so on the terminal."""
    pytester.makeconftest(recipe("A result sink")[0])
    log = pytester.path / "kselftest.log"
    log.write_text("# selftests: timers: nanosleep\nok 1 selftests: timers: nanosleep\n"
                   "not ok 2 selftests: timers: posix_timers\n")
    result = pytester.runpytest_subprocess(f"--lkft-results={log}",
                                           f"--lkft-store={tmp_path / 'store.sqlite3'}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["results.jsonl: 2 results"])
    lines = (pytester.path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"test": "kselftest-timers/timers_nanosleep", "result": "pass",
         "environment": "results"},
        {"test": "kselftest-timers/timers_posix_timers", "result": "fail",
         "environment": "results"},
    ]
