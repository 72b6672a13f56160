"""pytest as its users know it (issue 17): --lf and --ff work, a run without a device is a
usage error, JUnit names do not change with the matrix, option values are no test paths,
and a crash check that saw no console is an error.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO, TESTSUITES, need_qemu
from pytest_lkft.pytestplugin.fixtures import NO_DEVICE

CORPUS = REPO.parent / "shared" / "corpus"
KUNIT_LOG = CORPUS / "kunit" / "kunit-test_data-test_is_test_passed-failure.log"


def test_suites_without_a_device_are_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(str(TESTSUITES), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: {NO_DEVICE}"
    workers = pytester.runpytest_subprocess(str(TESTSUITES), "-p", "no:cacheprovider", "-n", "2")
    assert workers.ret != pytest.ExitCode.OK
    assert "INTERNALERROR" not in workers.stdout.str()
    workers.stdout.fnmatch_lines(["*_ ERROR collecting test session _*", NO_DEVICE,
                                  "*= 1 error in *"])
    listed = pytester.runpytest_subprocess(str(TESTSUITES), "-p", "no:cacheprovider", "--co")
    assert listed.ret == pytest.ExitCode.OK  # listing the suites needs no device


def test_other_tests_need_no_device(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:labgrid").assert_outcomes(passed=1)


SUITE = '''
import pytest
from pytest_lkft.suites import run_case

pytestmark = pytest.mark.lkft_suite("{name}")
CASES = {{"one": "true", "two": "true", "three": "{three}", "four": "true"}}

@pytest.mark.parametrize("case", list(CASES))
def test_command(device, case, request):
    run_case(device, CASES[case], request.node)

from pytest_lkft.suites import test_crash
'''


def executed(result: pytest.RunResult) -> list[str]:
    """The node ids in the order they ran (`-v` lines)."""
    return [line.split()[0] for line in result.outlines
            if line.startswith("test_") and line.split()[1:2] in (["PASSED"], ["FAILED"])]


@pytest.mark.qemu
def test_failed_first_and_last_failed_keep_each_suite_run_whole(pytester: pytest.Pytester,
                                                                artifact_cache: Path) -> None:
    """With the project's own configuration (its addopts once disabled the cache plugin)."""
    need_qemu("qemu-system-aarch64")
    pytester.makepyfile(test_a=SUITE.format(name="a", three="true"),
                        test_b=SUITE.format(name="b", three="false"))
    args = ["-c", str(REPO / "pyproject.toml"), f"--rootdir={pytester.path}", "test_a.py",
            "test_b.py", f"--lkft-cache-dir={artifact_cache}", "--lkft-device=qemu-arm64"]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=9, failed=1)
    first = pytester.runpytest_subprocess(*args, "--ff")
    first.assert_outcomes(passed=9, failed=1)
    b, a = "test_b.py::test_", "test_a.py::test_"
    assert executed(first) == [  # b's run first, its failed case first, its crash check last
        f"{b}command[qemu-arm64-three]", f"{b}command[qemu-arm64-one]",
        f"{b}command[qemu-arm64-two]", f"{b}command[qemu-arm64-four]", f"{b}crash[qemu-arm64]",
        f"{a}command[qemu-arm64-one]", f"{a}command[qemu-arm64-two]",
        f"{a}command[qemu-arm64-three]", f"{a}command[qemu-arm64-four]", f"{a}crash[qemu-arm64]"]
    for suite in ("a", "b"):  # one boot per suite run
        log = pytester.path / "lkft-results" / "qemu-arm64" / suite / "console.log"
        assert log.read_text().count("Linux version") == 1
    last = pytester.runpytest_subprocess(*args, "--lf")
    last.assert_outcomes(failed=1)
    assert executed(last) == [f"{b}command[qemu-arm64-three]"]


def junit_cases(junit: Path) -> dict[tuple[str, str], ET.Element]:
    return {(case.get("classname", ""), case.get("name", "")): case
            for case in ET.parse(junit).getroot().iter("testcase")}


def test_junit_names_are_the_same_alone_and_in_a_matrix(pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The modules suite without a tarball: a placeholder skip and a crash check, no boot."""
    need_qemu("qemu-system-aarch64", "qemu-system-x86_64")
    monkeypatch.setenv("LKFT_PREBOOT", "0")

    def run(*devices: str) -> dict[tuple[str, str], ET.Element]:
        junit = pytester.path / f"{len(devices)}.xml"
        pytester.runpytest(str(TESTSUITES), "-p", "no:cacheprovider", "-p", "no:labgrid",
                           "--lkft-tests=modules", f"--junitxml={junit}",
                           *(f"--lkft-device={d}" for d in devices))
        return junit_cases(junit)

    alone = run("qemu-arm64")
    matrix = run("qemu-arm64", "qemu-x86_64")
    assert sorted(alone) == [("modules", "crash [qemu-arm64]"), ("modules", "none [qemu-arm64]")]
    assert sorted(matrix) == sorted([*alone, ("modules", "crash [qemu-x86_64]"),
                                     ("modules", "none [qemu-x86_64]")])
    placeholder = alone["modules", "none [qemu-arm64]"]
    properties = {p.get("name"): p.get("value") for p in placeholder.iter("property")}
    assert properties.items() >= {"lkft.suite": "modules", "lkft.test": "none",
                                  "lkft.device": "qemu-arm64"}.items()
    skipped = placeholder.find("skipped")
    assert skipped is not None and "no modules tarball" in skipped.get("message", "")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=lkft", "-c", "user.email=lkft@localhost", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.mark.parametrize("option", ["--lkft-results", "--lkft-ltp"])
def test_an_options_value_is_no_test_path(pytester: pytest.Pytester, tmp_path: Path,
                                          option: str) -> None:
    """`--option VALUE` (a space, not `=`): pytest's rootdir and configuration stay the
    project's, whatever git repository or directory the value is in."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\naddopts = "-v"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = elsewhere / "results.log"
    shutil.copy(KUNIT_LOG, log)
    git(elsewhere, "init", "-q")
    git(elsewhere, "add", ".")
    git(elsewhere, "commit", "-q", "-m", "logs")
    git(elsewhere, "tag", "LOGS-TAG")
    result = pytester.runpytest_subprocess(option, str(log), "-p", "no:labgrid")
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}", "configfile: pyproject.toml"])
    assert not (elsewhere / ".pytest_cache").exists()
    if option == "--lkft-results":
        result.assert_outcomes(passed=9, failed=1)
        result.stdout.fnmatch_lines(["*::kunit/example.example_simple_test FAILED*",  # -v
                                     "recorded in * as lkft/local build local-*"])
        assert "LOGS-TAG" not in result.stdout.str()
        assert (pytester.path / ".pytest_cache").is_dir()


SILENT_KIND = '''
import subprocess

import pytest
from pytest_lkft.devices.console import CommandResult


class Silent:
    """A device whose console shows nothing at all."""

    def __init__(self, name, run_dir):
        self.name, self.arch, self.metadata = name, "x86_64", {"device": name}
        self.boot_time = self.boot_error = self.broken = None
        self.console_log = run_dir / "console.log"
        self.booted = False

    def boot(self):
        self.booted, self.boot_time = True, 0.0

    def run(self, command, timeout=None):
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        return CommandResult(command, done.stdout, done.returncode, 0.0)

    def crashes(self):
        return []

    def set_context(self, context):
        pass

    def close(self):
        pass


class SilentKind:
    name = "silent"

    def configure(self, config): pass
    def names(self): return ["silent"]
    def claims(self, device): return device == "silent"
    def arch(self, device): return "x86_64"
    def check(self, config, devices): pass
    def make(self, request, device, suite, run_dir, stream): return Silent(device, run_dir)


@pytest.hookimpl
def pytest_lkft_device_kinds(config):
    return [SilentKind()]
'''

HELLO = '''
import pytest
from pytest_lkft.suites import run_case, test_crash

pytestmark = pytest.mark.lkft_suite("hello")

def test_greeting(device, request):
    run_case(device, "true", request.node)
'''


def test_a_crash_check_that_saw_no_console_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SILENT_KIND)
    pytester.makepyfile(test_hello=HELLO)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("-p", "no:labgrid", "-p", "no:cacheprovider",
                                "--lkft-device=silent", f"--junitxml={junit}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["no console to check for crashes: *console.log is empty"])
    crash = junit_cases(junit)["hello", "crash [silent]"]
    assert crash.find("error") is not None  # in JUnit, and so in the store: never a pass
