"""Boots that go wrong, and what the user sees (issue 17): real QEMU boots of qemu-arm64.

A prompt proves the kernel started (`quiet` hides the start message); the device table and
options set the kernel-start message and prompts; a file that is no kernel image and a too
long command line are refused before anything boots; a device that does not boot is one
error, its other tests skipped as consequences; a timeout says so once, and the console
tail shows what the device printed, not the harness's markers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_qemu import SMOKE_CASES, junit_cases, properties, run_suites

from conftest import junit_results, need_qemu
from pytest_lkft.artifacts.cache import ArtifactCache
from pytest_lkft.provision.defaults import default_artifacts
from pytest_lkft.settings.device import BootMessages
from pytest_lkft.settings.devices import load_devices
from pytest_lkft.settings.tables import packaged_dir

pytestmark = pytest.mark.qemu


def kernel_version(junit: Path) -> str:
    """The kernel version boot/boot recorded."""
    return properties(junit_cases(junit)["qemu-arm64:boot/boot"])["lkft.meta.kernel_version"]


def test_quiet_boot_reaches_the_shell(pytester: pytest.Pytester, artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64",
                        "--lkft-boot-args=quiet", "--lkft-tests=boot", f"--junitxml={junit}")
    result.assert_outcomes(passed=2)
    console = (pytester.path / "lkft-results/qemu-arm64/boot/console.log").read_text()
    assert "Booting Linux" not in console  # quiet: the prompt was the proof
    assert kernel_version(junit).endswith("-cloud-arm64")  # asked of the shell: /proc/version


@pytest.mark.parametrize("where", ["table", "option"])
def test_device_table_or_option_sets_the_kernel_start_message(pytester: pytest.Pytester,
                                                              artifact_cache: Path,
                                                              where: str) -> None:
    need_qemu("qemu-system-aarch64")
    message = r"Machine model: (\S+)"
    if where == "table":
        table = yaml.safe_load((packaged_dir() / "qemu-devices.yaml").read_text())
        table["devices"]["qemu-arm64"]["kernel_start_message"] = message
        lab = pytester.mkdir("lab")
        (lab / "qemu-devices.yaml").write_text(yaml.safe_dump(table))
        args = [f"--lkft-lab-dir={lab}"]
    else:
        args = [f"--lkft-kernel-start-message={message}"]
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64", *args,
                        "--lkft-tests=boot", f"--junitxml={junit}")
    result.assert_outcomes(passed=2)
    assert kernel_version(junit) == "linux,dummy-virt"  # the given message, its group


def test_the_device_table_sets_the_prompts(tmp_path: Path) -> None:
    table = yaml.safe_load((packaged_dir() / "qemu-devices.yaml").read_text())
    table["devices"]["qemu-arm64"]["prompts"] = ["board# $", "login: $"]
    (tmp_path / "qemu-devices.yaml").write_text(yaml.safe_dump(table))
    devices = load_devices(tmp_path / "qemu-devices.yaml")
    assert devices.get("qemu-arm64").boot_messages.prompts == ("board# $", "login: $")
    assert devices.get("qemu-x86_64").boot_messages == BootMessages()  # the harness's


def test_prompts_option_and_silence_after_the_kernel_started(pytester: pytest.Pytester,
                                                             artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64",
                        "--lkft-prompts=NO-SUCH-PROMPT", "--lkft-timeouts=silence=5",
                        "--lkft-tests=boot")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["boot failed: no shell prompt: the console printed nothing "
                                 "for 5 s (--lkft-timeouts silence=S)",
                                 "--- console tail ---"])


@pytest.mark.parametrize(("content", "what"), [
    (b"garbage", "7 bytes, too small for one"),
    (b"<!DOCTYPE html>\n<html><body>Not Found</body></html>\n" + b" " * 70000,
     "text: '<!DOCTYPE html>'"),
], ids=["7-bytes", "html-page"])
def test_a_file_that_is_no_kernel_is_refused_before_booting(pytester: pytest.Pytester,
                                                            artifact_cache: Path, content: bytes,
                                                            what: str) -> None:
    need_qemu("qemu-system-aarch64")
    kernel = pytester.path / "Image"
    kernel.write_bytes(content)
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64",
                        f"--lkft-kernel={kernel}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (f"ERROR: --lkft-kernel {kernel} is not a kernel image "
                                      f"({what}); pass the kernel's boot image for qemu-arm64 "
                                      "(Image, built for arm64)")
    assert not (pytester.path / "lkft-results").exists()


def test_a_command_line_too_long_says_the_limit(pytester: pytest.Pytester,
                                                artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64",
                        "--lkft-boot-args=" + "x" * 100_000)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: the kernel command line is 100025 bytes but "
                                 "qemu-arm64's kernel takes at most 2047 (COMMAND_LINE_SIZE "
                                 "2048); shorten --lkft-boot-args"])


@pytest.mark.parametrize(("args", "line"), [
    (["--lkft-kernel-start-message=Linux ("],
     "ERROR: --lkft-kernel-start-message 'Linux (': not a regular expression (missing ), "
     "unterminated subpattern at position 6); give a Python regular expression"),
    (["--lkft-prompts=[#"], "ERROR: --lkft-prompts '[#': not a regular expression (*); give "
                            "a Python regular expression"),
], ids=["kernel-start", "prompt"])
def test_a_bad_message_pattern_is_one_line(pytester: pytest.Pytester, artifact_cache: Path,
                                           args: list[str], line: str) -> None:
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])


def test_a_corrupt_rootfs_is_one_error_for_the_device(pytester: pytest.Pytester,
                                                      artifact_cache: Path) -> None:
    """A truncated initramfs: the kernel cannot unpack it, finds no init and panics while
    booting. boot/boot fails with the panic; every other test of the device is a
    consequence, never booted, never a pass (in JUnit and in the store's table alike)."""
    need_qemu("qemu-system-aarch64")
    cache = ArtifactCache(artifact_cache)
    busybox = default_artifacts(load_devices().get("qemu-arm64"), cache.root, cache.fetch).rootfs
    rootfs = pytester.path / "rootfs.cpio.gz"
    rootfs.write_bytes(busybox.read_bytes()[:4096])
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64",
                        f"--lkft-rootfs={rootfs}", "--lkft-tests=boot,smoke,kunit",
                        f"--junitxml={junit}")
    result.assert_outcomes(failed=1, skipped=1 + (SMOKE_CASES + 1) + 2)
    result.stdout.fnmatch_lines(["boot failed: the kernel crashed while booting; kernel-panic "
                                 "during boot *"])
    results = junit_results(junit)
    assert results.pop("boot/boot") == "failure"
    assert set(results.values()) == {"skipped"}, results
    skipped = junit_cases(junit)["qemu-arm64:smoke/uname"].find("skipped")
    assert skipped is not None
    assert "not run: qemu-arm64 failed earlier in this run (see " in skipped.get("message", "")
    assert not (pytester.path / "lkft-results/qemu-arm64/smoke").exists()  # never booted
    table = [line.split() for line in result.outlines if line.startswith("qemu-arm64 / ")]
    assert [row[4] for row in table] == ["0", "0", "0"]  # pass column: boot, kunit, smoke


SLOW_SUITE = '''
import pytest
from pytest_lkft.suites import run_case

pytestmark = pytest.mark.lkft_suite("slow")

def test_sleep(device, request):
    run_case(device, "sleep 60", request.node)

from pytest_lkft.suites import test_crash
'''


def test_a_timeout_says_so_once_with_the_devices_own_output(pytester: pytest.Pytester,
                                                            artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    pytester.makepyfile(test_slow=SLOW_SUITE)
    result = pytester.runpytest_subprocess("test_slow.py", f"--lkft-cache-dir={artifact_cache}",
                                           "--lkft-device=qemu-arm64", "-p", "no:cacheprovider",
                                           "--lkft-timeouts=test=3")
    result.assert_outcomes(failed=1, passed=1)  # the crash check saw a live console
    out = result.stdout.str()
    failures = out[out.index("= FAILURES ="):out.index("= lkft results =")]
    assert failures.count("'sleep 60' timed out after 3 s") == 1  # (the summary repeats it)
    assert "During handling of the above exception" not in out
    tail = out[out.index("--- console tail ---"):]
    tail = tail[:tail.index("= lkft results =")]
    assert "/ # sleep 60" in tail  # the command as the shell showed it
    for marker in ("LKFT-START", "LKFT-RC=", 'LKFT""', "\x1b[6n", "[6n"):
        assert marker not in tail, tail
