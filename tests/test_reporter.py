"""LkftReporter, black-box through pytester: store contents and the end-of-run summary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pytest_lkft.parsers.model import Counts
from pytest_lkft.pytestplugin.reporter import SUMMARY_TITLE
from pytest_lkft.reporting.store import Change, Store

pytest_plugins = ["pytester"]

# plugin.py wires the reporter; configuring it again from a conftest changes nothing.
WIRING = """
from pytest_lkft.pytestplugin import reporter

def pytest_configure(config):
    reporter.configure(config)
"""

ITEMS = """
import os
import pytest

NAMES = ["abort01", "brk01", "chdir01", "dup01", "ebadf01", "fork01"]

@pytest.fixture
def lkft(record_property, request):
    device = os.environ.get("DEVICE", "qemu-arm64")
    record_property("lkft.suite", "ltp-syscalls")
    record_property("lkft.test", request.node.callspec.params["name"])
    record_property("lkft.device", device)
    record_property("lkft.meta.kernel_version", os.environ.get("KVER", "6.1.1"))
    record_property("lkft.metric.boot-time", "2.5 s")
    return device

@pytest.fixture
def setup(name):
    if name == "ebadf01":
        pytest.skip("no ebadf on this rootfs")

@pytest.mark.parametrize("name", NAMES)
def test_ltp(lkft, setup, name):
    if name in os.environ.get("FAIL", "").split(","):
        raise AssertionError(f"{name} failed: TFAIL")
    if name == "fork01":
        pytest.xfail("known to fail")

def test_not_lkft():
    pass
"""

KNOWN = """
known_issues:
  - test: "ltp-syscalls/chdir*"
    environments: [qemu-arm64]
    reason: "chdir01 fails under TCG, bug 42"
"""


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep HOME and the caches inside the test's tmp_path; return the cache dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LKFT_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("LKFT_STORE", "LKFT_SQUAD_URL", "LKFT_SQUAD_TOKEN", "CI_JOB_URL", "BUILD_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester dir with six LTP-like items and one plain test."""
    pytester.makeconftest(WIRING)
    pytester.makepyfile(test_ltp=ITEMS)
    pytester.makefile(".yaml", known=KNOWN)
    return pytester


def lkft_args(*args: str) -> list[str]:
    """Arguments for an in-process run.

    labgrid's pytest plugin, when installed, starts a process-wide StepLogger once and
    asserts on a second start, so in-process pytester runs leave it out.
    """
    blocked = ["-p", "no:labgrid"]
    if importlib.util.find_spec("pytest_lkft.plugin") is None:
        blocked += ["-p", "no:lkft"]
    return [*blocked, *args]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_results_recorded_and_summarised(
    project: pytest.Pytester, isolated_home: Path, xdist: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAIL", "brk01")
    result = project.runpytest(*lkft_args(*xdist))
    result.assert_outcomes(passed=4, failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines([
        f"lkft: store={isolated_home}/store.sqlite3 project=lkft/local squad=off known-issues=0",
        f"*= {SUMMARY_TITLE} =*",
        "device / suite * tests *pass *fail *skip *xfail *error",
        "qemu-arm64 / ltp-syscalls * 6 * 3 * 1 * 1 * 1 * 0",
        f"recorded in {isolated_home}/store.sqlite3 as lkft/local build 6.1.1",
        "no previous build of this project in the store: nothing to compare",
    ])
    with Store(isolated_home / "store.sqlite3") as store:
        assert store.counts("lkft", "local", "6.1.1") == Counts(3, 1, 1, 1)
        tests = {t.name: t for t in store.tests("lkft", "local", "6.1.1")}
        assert "brk01 failed: TFAIL" in tests["ltp-syscalls/brk01"].log
        metadata = store.db.execute("SELECT metadata FROM testrun").fetchone()[0]
    assert '"kernel_version": "6.1.1"' in metadata


def test_regressions_against_previous_build(
    project: pytest.Pytester, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL", "brk01")
    project.runpytest(*lkft_args()).assert_outcomes(passed=4, failed=1, skipped=1, xfailed=1)
    monkeypatch.setenv("FAIL", "abort01")
    monkeypatch.setenv("KVER", "6.1.2")
    result = project.runpytest(*lkft_args("-n", "2"))
    result.stdout.fnmatch_lines([
        "compared with previous build 6.1.1: 1 regressions, 1 fixes, 0 flaky, 0 missing",
        "  REGRESSION qemu-arm64: ltp-syscalls/abort01 (pass -> fail)",
        "  FIX qemu-arm64: ltp-syscalls/brk01 (fail -> pass)",
    ])
    with Store(isolated_home / "store.sqlite3") as store:
        assert store.compare("lkft", "local", "6.1.1", "6.1.2").regressions == [
            Change("qemu-arm64", "ltp-syscalls/abort01", "pass", "fail")]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_known_issue_becomes_xfail_in_terminal_junit_and_store(
    project: pytest.Pytester, isolated_home: Path, xdist: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAIL", "chdir01")
    result = project.runpytest(
        *lkft_args("--lkft-known-issues", "known.yaml", "--junitxml", "out.xml", "-rx", *xdist)
    )
    result.assert_outcomes(passed=4, xfailed=2, skipped=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["XFAIL *chdir01* - chdir01 fails under TCG, bug 42"])
    junit = (project.path / "out.xml").read_text()
    assert 'name="lkft.result" value="xfail"' in junit
    assert junit.count('name="lkft.build" value="6.1.1"') == 6
    assert 'message="chdir01 fails under TCG, bug 42"' in junit
    with Store(isolated_home / "store.sqlite3") as store:
        assert store.counts("lkft", "local", "6.1.1") == Counts(passed=3, skipped=1, xfailed=2)
        issues = store.db.execute("SELECT test_name, environments, reason FROM knownissue")
        assert issues.fetchall() == [
            ("ltp-syscalls/chdir*", '["qemu-arm64"]', "chdir01 fails under TCG, bug 42")]


def test_options_choose_store_project_build_environment(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    store_path = tmp_path / "elsewhere.db"
    result = project.runpytest(*lkft_args(
        "--lkft-store", str(store_path), "--lkft-squad-group", "kernel",
        "--lkft-squad-project", "stable-6.1", "--lkft-squad-build", "v6.1.99",
        "--lkft-squad-environment", "board-1"))
    result.stdout.fnmatch_lines(["qemu-arm64 / ltp-syscalls *"])
    with Store(store_path) as store:
        assert store.projects() == [("kernel", "stable-6.1")]
        assert {t.environment for t in store.tests("kernel", "stable-6.1", "v6.1.99")} == {
            "board-1"}


def test_bad_option_value_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest(*lkft_args("--lkft-squad-url", "ftp://x"))
    result.stderr.fnmatch_lines(["*invalid SQUAD URL 'ftp://x' from --lkft-squad-url*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_bad_project_name_from_environment(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LKFT_SQUAD_PROJECT", "linux 6.1")
    result = project.runpytest(*lkft_args())
    result.stderr.fnmatch_lines(
        ["*invalid SQUAD name 'linux 6.1' from LKFT_SQUAD_PROJECT environment variable*"])


def test_no_lkft_items_no_summary(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(WIRING)
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(*lkft_args())
    result.assert_outcomes(passed=1)
    assert SUMMARY_TITLE not in result.stdout.str()


def test_unwritable_store_is_reported_not_a_crash(project: pytest.Pytester, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = project.runpytest(*lkft_args("--lkft-store", str(blocker / "store.sqlite3")))
    result.assert_outcomes(passed=5, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines([f"lkft: results NOT recorded in {blocker}/store.sqlite3: *;"
                                 " fix it or choose another file with --lkft-store"])


MATRIX = """
import os
import pytest

BANNERS = {
    "qemu-x86_64": "6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP"
                   " PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)",
    "qemu-arm64": "6.1.0-57-cloud-arm64 (debian-kernel@lists.debian.org) (gcc-12 (Debian"
                  " 12.2.0-14+deb12u1) 12.2.0) # SMP Debian 6.1.192-3 (2026-11-26)",
    "qemu-riscv64": "6.12.0-rc1-00001-gabcdef (builder@host) #1 SMP",
}

@pytest.mark.parametrize("dev", os.environ["DEVICES"].split(","))
def test_boot(record_property, dev):
    record_property("lkft.suite", "boot")
    record_property("lkft.test", "boot")
    record_property("lkft.device", dev)
    # what a device records before booting: the banner read from the kernel image
    record_property("lkft.meta.kernel_banner", BANNERS[dev])
    record_property("lkft.meta.kernel_version", BANNERS[dev].split()[0])
    if dev in os.environ.get("BROKEN", ""):
        raise AssertionError("the kernel never started")
"""


@pytest.mark.parametrize(("devices", "broken", "build"), [
    ("qemu-x86_64,qemu-arm64", "", "6.1.192-3"),
    ("qemu-arm64,qemu-x86_64", "qemu-arm64", "6.1.192-3"),  # a failed boot: same build
    ("qemu-riscv64", "", "6.12.0-rc1-00001-gabcdef"),        # no distro: the whole release
])
def test_build_is_named_after_the_kernel_whatever_finishes_first(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, devices: str, broken: str,
    build: str,
) -> None:
    pytester.makeconftest(WIRING)
    pytester.makepyfile(test_matrix=MATRIX)
    monkeypatch.setenv("DEVICES", devices)
    monkeypatch.setenv("BROKEN", broken)
    result = pytester.runpytest(*lkft_args("--junitxml", "m.xml"))
    result.stdout.fnmatch_lines([f"recorded in * as lkft/local build {build}"])
    junit = (pytester.path / "m.xml").read_text()
    assert junit.count(f'name="lkft.build" value="{build}"') == len(devices.split(","))


def test_image_banner_without_booting(tmp_path: Path) -> None:
    import gzip
    import struct

    from pytest_lkft.provision.kernelimage import image_banner, kernel_facts

    banner = b"6.1.0-57-cloud-arm64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.192-3"
    image = tmp_path / "Image.gz"
    image.write_bytes(gzip.compress(b"\0" * 4096 + b"Linux version " + banner + b"\n\0" * 9))
    assert image_banner(image) == banner.decode()
    bzimage = bytearray(0x400)
    bzimage[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", bzimage, 0x20E, 0x100)
    bzimage[0x300:0x300 + len(banner) + 1] = banner + b"\0"
    (tmp_path / "bzImage").write_bytes(bytes(bzimage))
    assert image_banner(tmp_path / "bzImage") == banner.decode()
    assert image_banner(tmp_path / "missing") == ""
    assert kernel_facts(banner.decode())["kernel_version"] == "6.1.0-57-cloud-arm64"
    assert kernel_facts("") == {}
