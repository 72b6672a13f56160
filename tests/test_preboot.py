"""The first device boots while pytest collects (`pytestplugin.preboot`), only when tests run.

A wrapper passed as --lkft-qemu-binary records each QEMU start (its pid) before exec'ing the
real qemu-system-aarch64, so the tests count real boots.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TESTSUITES, need_qemu

pytestmark = pytest.mark.qemu

SMOKE_CASES = 13
WRAPPER = """#!/bin/sh
[ "$1" = --version ] || echo "$$" >> {starts}
exec qemu-system-aarch64 "$@"
"""


def qemu_wrapper(pytester: pytest.Pytester) -> tuple[Path, Path]:
    """A QEMU binary that logs the pid of every boot to the returned file."""
    need_qemu("qemu-system-aarch64")
    starts = pytester.path / "starts"
    script = pytester.path / "qemu-system-aarch64"
    script.write_text(WRAPPER.format(starts=starts))
    script.chmod(0o755)
    return script, starts


def run(pytester: pytest.Pytester, cache: Path, qemu: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        str(TESTSUITES), f"--lkft-cache-dir={cache}", "-p", "no:cacheprovider",
        "--lkft-device=qemu-arm64", f"--lkft-qemu-binary={qemu}", *args)


def pids(starts: Path) -> list[int]:
    return [int(x) for x in starts.read_text().split()] if starts.exists() else []


def running(pid: int) -> bool:
    """True while `pid` lives and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("args", [["--help"], ["--markers"], ["--collect-only"], ["--fixtures"]])
def test_nothing_boots_when_no_test_runs(pytester: pytest.Pytester, artifact_cache: Path,
                                         args: list[str]) -> None:
    qemu, starts = qemu_wrapper(pytester)
    result = run(pytester, artifact_cache, qemu, *args)
    assert result.ret == 0, result.stdout.str()
    assert pids(starts) == []
    assert not (pytester.path / "lkft-results" / "qemu-arm64" / ".preboot").exists()


def test_the_first_suite_run_takes_the_pre_booted_device(pytester: pytest.Pytester,
                                                          artifact_cache: Path) -> None:
    qemu, starts = qemu_wrapper(pytester)
    result = run(pytester, artifact_cache, qemu, "-k", "boot or smoke", "-v")
    result.assert_outcomes(passed=2 + SMOKE_CASES + 1)
    assert len(pids(starts)) == 2  # one boot per suite run, the first one started early
    results = pytester.path / "lkft-results" / "qemu-arm64"
    assert not (results / ".preboot").exists()
    for suite in ("boot", "smoke"):
        assert (results / suite / "console.log").read_text().count("Linux version") == 1
    reproducer = (results / "boot" / "reproducer.sh").read_text()
    assert ".preboot" not in reproducer
    assert not any(map(running, pids(starts)))


def test_a_pre_boot_no_test_claims_is_stopped(pytester: pytest.Pytester,
                                              artifact_cache: Path) -> None:
    qemu, starts = qemu_wrapper(pytester)
    result = run(pytester, artifact_cache, qemu, "-k", "no_test_has_this_name")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert len(pids(starts)) == 1  # started at session start, before collection ended
    assert not any(map(running, pids(starts)))
    assert not (pytester.path / "lkft-results" / "qemu-arm64" / ".preboot").exists()


def test_lkft_preboot_0_turns_it_off(pytester: pytest.Pytester, artifact_cache: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LKFT_PREBOOT", "0")
    qemu, starts = qemu_wrapper(pytester)
    result = run(pytester, artifact_cache, qemu, "-k", "no_test_has_this_name")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert pids(starts) == []  # where the test above boots once


def test_download_progress_and_console_stream_from_the_boot_thread(
        pytester: pytest.Pytester, artifact_cache: Path) -> None:
    """The pre-boot thread fetches a slowly served kernel and streams the console: both reach
    the terminal, and pytest's own output capture is left alone (see
    pytest_lkft.pytestplugin.terminal)."""
    need_qemu("qemu-system-aarch64")
    from origin_server import Origin

    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    shared = ArtifactCache(artifact_cache)
    found = default_artifacts(load_devices().get("qemu-arm64"), shared.root, shared.fetch)
    origin = Origin(pytester.path / "origin")
    try:
        (pytester.path / "origin").mkdir(exist_ok=True)
        origin.add("Image", found.kernel.read_bytes())
        result = pytester.runpytest_subprocess(
            str(TESTSUITES), f"--lkft-cache-dir={pytester.path / 'cache'}", "-p",
            "no:cacheprovider", "--lkft-device=qemu-arm64", "-k", "boot", "--lkft-console",
            f"--lkft-kernel={origin.url('Image', 'slow256')}",
            f"--lkft-rootfs={found.rootfs}")
    finally:
        origin.stop()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["fetching http://127.0.0.1:*/slow256/Image: * MB of * MB at *",
                                 "fetched http://127.0.0.1:*/slow256/Image: * MB of * MB at *",
                                 "*Linux version 6.*", "*lkft: init done*"])
