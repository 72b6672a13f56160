"""`--lkft-kselftest kselftest.tar.xz`: a prebuilt kselftest install, one suite per collection.

The tarball is real: kselftest's own `make -C tools/testing/selftests install` of
Debian's linux-source-6.1 for arm64 (`size`, static, and `breakpoints`, dynamically
linked against the cross glibc), packed under a leading `kselftest/` as LKFT publishes
it. Only those two collections are built (a second or so), never a kernel: the device
boots Debian's kernel with the busybox initramfs, the install laid over it.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from shared_kernel import linux_source, need_tools  # noqa: F401  (linux_source is a fixture)

from conftest import TESTSUITES, junit_name, need_qemu
from pytest_lkft.errors import UserError
from pytest_lkft.provision.kselftest import read_install

COLLECTIONS = ("breakpoints", "size")


@pytest.fixture
def kselftest_tarball(linux_source: Path, tmp_path: Path) -> Path:  # noqa: F811
    """kselftest.tar.xz of a real arm64 install of `size` and `breakpoints`."""
    need_tools("aarch64-linux-gnu-gcc")
    install = tmp_path / "install"
    subprocess.run(["make", "-s", "-C", str(linux_source / "tools/testing/selftests"),
                    "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", f"O={tmp_path / 'obj'}",
                    f"INSTALL_PATH={install}", f"TARGETS={' '.join(COLLECTIONS)}", "install"],
                   check=True, capture_output=True)
    tarball = tmp_path / "kselftest.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        tar.add(install, arcname="kselftest")
    return tarball


def junit_suites(junit: Path) -> dict[str, dict[str, str]]:
    """suite -> test -> pass/failure/skipped/error, from a JUnit file."""
    suites: dict[str, dict[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        suites.setdefault(case.get("classname", ""), {})[junit_name(case)] = \
            tags[0] if tags else "pass"
    return suites


def make_tarball(path: Path, members: dict[str, bytes | str]) -> Path:
    """A tarball of files (bytes) and symlinks (str: the target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


LISTING = b"size:get_size\ntimers:posix_timers\ntimers:nanosleep\nnet/forwarding:x.sh\n"


@pytest.mark.parametrize("prefix", ["", "./", "kselftest/", "./kselftest/"])
def test_layout_is_read_with_or_without_a_leading_directory(tmp_path: Path, prefix: str) -> None:
    tarball = make_tarball(tmp_path / "k.tar.gz", {f"{prefix}run_kselftest.sh": b"#!/bin/sh\n",
                                                   f"{prefix}kselftest-list.txt": LISTING})
    install = read_install(tarball, "--lkft-kselftest k.tar.gz")
    assert install.collections == ("net/forwarding", "size", "timers")
    assert install.root == ("kselftest" if "kselftest/" in prefix else "")


@pytest.mark.qemu
@pytest.mark.kernel_build
def test_each_collection_of_the_tarball_is_a_suite(pytester: pytest.Pytester,
                                                   kselftest_tarball: Path,
                                                   private_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    args = [str(TESTSUITES), f"--lkft-cache-dir={private_cache}",
            "--lkft-device=qemu-arm64", f"--lkft-kselftest={kselftest_tarball.as_uri()}",
            "--lkft-tests=kselftest-*", "-p", "no:cacheprovider", "-p", "no:labgrid"]
    first = pytester.runpytest_subprocess(*args, f"--junitxml={pytester.path / 'first.xml'}")
    learned = junit_suites(pytester.path / "first.xml")
    assert set(learned) == {f"kselftest-{c}" for c in COLLECTIONS}, first.stdout.str()[-3000:]
    assert learned["kselftest-size"] == {"run": "pass", "crash": "pass", "size_get_size": "pass",
                                         "size_get_size_get_runtime_memory_use": "pass"}
    breakpoints = learned["kselftest-breakpoints"]
    assert {"breakpoints_step_after_suspend_test", "breakpoints_breakpoint_test_arm64"} \
        <= set(breakpoints)  # dynamically linked: they ran, with the cross glibc under /lib,
    assert len(breakpoints) > 100  # and reported their own TAP (one case per watchpoint)
    assert "error" not in breakpoints.values()
    progress = [int(p) for p in re.findall(r"\[\s*(\d+)%\]", first.stdout.str())]
    assert progress and max(progress) == 100, progress  # extra cases count as collected

    second = pytester.runpytest_subprocess(*args, "-v",
                                           f"--junitxml={pytester.path / 'second.xml'}")
    second.stdout.fnmatch_lines([
        "lkft: devices=qemu-arm64 * kselftest=file://*kselftest.tar.xz tests=kselftest-*",
        "*test_kselftest.py::test_run?qemu-arm64-breakpoints? * PASSED*",
        "*test_kselftest.py::test_crash?qemu-arm64-breakpoints? * PASSED*",
        "*test_kselftest.py::test_run?qemu-arm64-size? * PASSED*",
        "*test_kselftest.py::test_case?qemu-arm64-size_get_size-size? * PASSED*",
        "*test_kselftest.py::test_crash?qemu-arm64-size? * PASSED*",
    ])
    assert junit_suites(pytester.path / "second.xml") == learned  # now items of their own
    log = pytester.path / "lkft-results" / "qemu-arm64" / "kselftest" / "console.log"
    console = log.read_text()  # the module's collections share one boot of the device
    assert "ok 1 selftests: size: get_size" in console
    assert "selftests: breakpoints: breakpoint_test_arm64" in console


def bad_inputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (--lkft-kselftest value, the one line it gives)."""
    top = {"run_kselftest.sh": b"#!/bin/sh\n", "kselftest-list.txt": b"size:get_size\n"}
    junk = tmp_path / "junk.tar.xz"
    junk.write_text("not a tarball\n")
    no_runner = make_tarball(tmp_path / "no-runner.tar.gz", {"size/get_size": b"\0"})
    climbs = make_tarball(tmp_path / "climbs.tar.gz", {**top, "../evil": b"x"})
    link = make_tarball(tmp_path / "link.tar.gz", {**top, "size/get_size": "../../etc/passwd"})
    return {
        "missing": ("nowhere.tar.xz", "--lkft-kselftest nowhere.tar.xz: no such file; check "
                    "the path or give a URL"),
        "junk": (str(junk), f"--lkft-kselftest {junk} is not a readable tarball (*); pass the "
                 "tarball of a kselftest install (LKFT's kselftest.tar.xz, or `make -C "
                 "tools/testing/selftests gen_tar`)"),
        "no-runner": (str(no_runner), f"--lkft-kselftest {no_runner} has no run_kselftest.sh "
                      "at its top; pass the tarball of a kselftest install*"),
        "climbs": (str(climbs), f"--lkft-kselftest {climbs}: {climbs}: member '../evil' "
                   "climbs out of the rootfs with '..'; nothing was written*"),
        "link": (str(link), f"--lkft-kselftest {link}: {link}: member 'size/get_size' links "
                 "out of the rootfs (to '../../etc/passwd')*"),
    }


@pytest.mark.parametrize("case", ["missing", "junk", "no-runner", "climbs", "link"])
def test_bad_tarball_is_one_line_from_the_kselftest_run(pytester: pytest.Pytester,
                                                        tmp_path: Path, case: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing boots: the suite's run fails before the device is needed."""
    value, line = bad_inputs(tmp_path)[case]
    monkeypatch.setenv("LKFT_PREBOOT", "0")
    result = pytester.runpytest(str(TESTSUITES), "-p", "no:labgrid", "-p", "no:cacheprovider",
                                "--lkft-device=qemu-arm64", f"--lkft-kselftest={value}",
                                "--lkft-tests=kselftest-*", "-rfEs")
    result.assert_outcomes(errors=1, skipped=1)  # <suite>/run errors, <suite>/crash skips
    result.stdout.fnmatch_lines(["*_ ERROR at setup of test_run?qemu-arm64-none? _*", line])
    assert not (pytester.path / "lkft-results" / "qemu-arm64").exists()  # nothing booted


def test_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^LKFT_KSELFTEST x has no run_kselftest.sh"):
        read_install(make_tarball(tmp_path / "x", {"a": b""}), "LKFT_KSELFTEST x")


@pytest.mark.qemu
def test_other_suites_still_run(pytester: pytest.Pytester, tmp_path: Path,
                                artifact_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_qemu("qemu-system-aarch64")
    junk = tmp_path / "junk.tar.xz"
    junk.write_text("not a tarball\n")
    monkeypatch.setenv("LKFT_KSELFTEST", str(junk))
    result = pytester.runpytest_subprocess(
        str(TESTSUITES), f"--lkft-cache-dir={artifact_cache}", "-p", "no:cacheprovider",
        "--lkft-device=qemu-arm64", "--lkft-tests=boot,kselftest", "-rfE")
    result.assert_outcomes(passed=2, errors=1, skipped=1)  # boot/boot, boot/crash
    result.stdout.fnmatch_lines(["*_ ERROR at setup of test_run?qemu-arm64-none? _*",
                                 f"LKFT_KSELFTEST {junk} is not a readable tarball (*"])
