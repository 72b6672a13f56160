"""The main job for real: Debian kernels and a busybox initramfs booted in QEMU.

Every test here runs the plugin as a user does (pytester, the repository's testsuites)
and boots real kernels; the artifact cache is shared so each kernel is fetched once.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import TESTSUITES, need_qemu
from pytest_lkft.pytestplugin.scheduling import device_of

pytestmark = pytest.mark.qemu

SMOKE_CASES = 13


def run_suites(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    """Run the repository's testsuites as a user would, with the shared artifact cache."""
    return pytester.runpytest_subprocess(str(TESTSUITES), f"--lkft-cache-dir={cache}",
                                         "-p", "no:cacheprovider", *args)


def junit_cases(junit: Path) -> dict[str, ET.Element]:
    """JUnit testcases by `device:suite/test` (the LKFT properties each one carries)."""
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = properties(case)
        if "lkft.suite" not in props:  # skipped before it reached the device
            continue
        cases[f"{props['lkft.device']}:{props['lkft.suite']}/{props['lkft.test']}"] = case
    return cases


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_main_job_on_qemu_arm64(pytester: pytest.Pytester, artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    junit = pytester.path / "junit.xml"
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64", "-v", "-rs",
                        f"--junitxml={junit}")
    # boot: boot + crash; build: skipped (no --lkft-tree); kselftest: run and crash skipped
    # (nothing built); kunit: run skipped (Debian's kernel has no KUnit) + crash; modules:
    # skipped (no tarball), its crash check skipped; smoke: cases + crash; ltp: run and
    # crash skipped (no --lkft-ltp)
    result.assert_outcomes(passed=2 + 1 + SMOKE_CASES + 1, skipped=1 + 2 + 1 + 2 + 2)
    result.stdout.fnmatch_lines([
        "*test_boot.py::test_boot?qemu-arm64?* PASSED*",
        "*test_smoke.py::test_smoke?qemu-arm64-uname?* PASSED*",
        "*test_smoke.py::test_crash?qemu-arm64?* PASSED*",
        "lkft: console logs and reproducers in *lkft-results",
        "*kunit: no ktap output found; see *console.log: the kernel runs no built-in KUnit*",
    ])
    cases = junit_cases(junit)
    boot = cases["qemu-arm64:boot/boot"]
    assert (boot.get("classname"), boot.get("name")) == ("boot", "boot [qemu-arm64]")
    props = properties(boot)
    assert props["lkft.device"] == "qemu-arm64"
    assert props["lkft.meta.kernel"].startswith("debian:linux-image-")
    assert props["lkft.meta.rootfs"] == "busybox:busybox-static"
    assert props["lkft.meta.kernel_version"].endswith("-arm64")
    assert re.search(r"#\S* .*Debian 6\.1\.\d+-\d+", props["lkft.meta.kernel_banner"])
    assert props["lkft.build"] == props["lkft.meta.kernel_banner"].split("Debian ")[-1].split()[0]
    assert props["lkft.meta.qemu_version"][0].isdigit()
    assert float(props["lkft.metric.boot-time"].split()[0]) > 0
    uname = cases["qemu-arm64:smoke/uname"]
    assert (uname.get("classname"), uname.get("name")) == ("smoke", "uname [qemu-arm64]")
    assert "GNU/Linux" in (uname.findtext("system-out") or "")  # the command's output
    run_dir = pytester.path / "lkft-results" / "qemu-arm64" / "smoke"
    assert "aarch64" in (run_dir / "console.log").read_text()
    reproducer = (run_dir / "reproducer.sh").read_text()
    assert "qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a57" in reproducer


def test_two_devices_in_parallel_boot_once_per_suite(
    pytester: pytest.Pytester, artifact_cache: Path
) -> None:
    need_qemu("qemu-system-aarch64", "qemu-system-x86_64")
    result = run_suites(pytester, artifact_cache, "-n", "2", "-v", "--lkft-device=qemu-arm64",
                        "--lkft-device=qemu-x86_64", "-k", "boot or smoke")
    result.assert_outcomes(passed=2 * (2 + SMOKE_CASES + 1))
    workers: dict[str, set[str]] = {}
    for line in result.outlines:
        if "PASSED" in line and line.startswith("[gw"):
            nodeid = next(word for word in line.split() if "::" in word)
            device = device_of(nodeid, ["qemu-arm64", "qemu-x86_64"])
            workers.setdefault(str(device), set()).add(line.split("]")[0])
    # each device stays on one worker, and the two devices run on different workers
    assert sorted(workers) == ["qemu-arm64", "qemu-x86_64"]
    assert all(len(w) == 1 for w in workers.values()), workers
    assert workers["qemu-arm64"] != workers["qemu-x86_64"]
    for device in ("qemu-arm64", "qemu-x86_64"):
        for suite in ("boot", "smoke"):
            log = (pytester.path / "lkft-results" / device / suite / "console.log").read_text()
            assert log.count("Linux version") == 1, f"{device}/{suite} booted more than once"
    # one build for the matrix, named after Debian's version both kernels share (issue 16)
    builds = {line.split(" build ")[-1] for line in result.outlines if "recorded in" in line}
    assert len(builds) == 1 and re.fullmatch(r"6\.1\.\d+-\d+", builds.pop()), result.outlines[-8:]


PANIC_SUITE = '''
import pytest
from pytest_lkft.suites import run_case

pytestmark = pytest.mark.lkft_suite("panic")
COMMANDS = {
    "before": "true",
    "panic": "[ $(uname -m) = aarch64 ] && echo c > /proc/sysrq-trigger; true",
    "after": "true",
}

@pytest.mark.parametrize("case", list(COMMANDS))
def test_command(device, case, request):
    run_case(device, COMMANDS[case], request.node)

from pytest_lkft.suites import test_crash
'''

NEXT_SUITE = '''
import pytest
from pytest_lkft.suites import run_case

pytestmark = pytest.mark.lkft_suite("next")

def test_alive(device, request):
    run_case(device, "cat /proc/uptime", request.node)
'''


def test_panic_is_reported_and_the_matrix_carries_on(
    pytester: pytest.Pytester, artifact_cache: Path
) -> None:
    need_qemu("qemu-system-aarch64", "qemu-system-x86_64")
    pytester.makepyfile(test_1_panic=PANIC_SUITE, test_2_next=NEXT_SUITE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        f"--lkft-cache-dir={artifact_cache}", "-n", "2", "-v", "--lkft-device=qemu-arm64",
        "--lkft-device=qemu-x86_64", f"--junitxml={junit}")
    # arm64: before passes, panic fails, after errors (device broken), crash check fails,
    # the next suite boots afresh and passes; x86_64: everything passes.
    result.assert_outcomes(passed=1 + 1 + 4 + 1, failed=2, errors=1)
    result.stdout.fnmatch_lines(["*FAILED test_1_panic.py::test_command?qemu-arm64-panic?*"])
    cases = junit_cases(junit)
    panic = cases["qemu-arm64:panic/panic"].find("failure")
    assert panic is not None
    assert "Kernel panic - not syncing: sysrq triggered crash" in panic.get("message", "")
    after = cases["qemu-arm64:panic/after"].find("error")
    assert after is not None and "device is broken" in after.get("message", "")
    crash = cases["qemu-arm64:panic/crash"].find("failure")
    assert crash is not None and "kernel-panic during panic/panic" in crash.get("message", "")
    assert cases["qemu-arm64:panic/before"].find("failure") is None
    assert cases["qemu-arm64:next/alive"].find("failure") is None
    assert cases["qemu-x86_64:panic/crash"].find("failure") is None


def qemu_processes(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "qemu-system" in line]


def test_silent_kernel_is_stopped_early_and_qemu_is_killed(
    pytester: pytest.Pytester, artifact_cache: Path
) -> None:
    need_qemu("qemu-system-aarch64")
    silent = pytester.path / "silent-kernel.img"
    silent.write_bytes(b"\0" * 65536)  # a kernel that prints nothing: QEMU runs zeros
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64", "-k", "boot",
                        f"--lkft-kernel={silent}", "--lkft-timeouts=silence=3", "-rs")
    # boot fails after 3 s of silence, not boot=300; the crash check saw no console: it is a
    # consequence of the failed boot, never a pass
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "boot failed: the kernel never started: the console printed nothing for 3 s "
        "(--lkft-timeouts silence=S)",
        "*not run: qemu-arm64 failed earlier in this run (see *test_boot.py::test_boot?qemu-"
        "arm64?)*"])
    assert "console tail" not in result.stdout.str()  # nothing to show
    assert qemu_processes(str(silent)) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lkft-device=qemu-nope"], "ERROR: unknown device 'qemu-nope'; valid devices: "
         "qemu-arm64, qemu-arm64be, *, qemu-x86_64"),
        (["--lkft-device=qemu-arm64", "--lkft-qemu-binary=qemu-system-missing"],
         "ERROR: qemu-system-missing not found: install it with `apt-get install "
         "qemu-system-arm`, or pass --lkft-qemu-binary"),
        (["--lkft-device=qemu-arm64", "--lkft-rootfs=/nonexistent/rootfs.cpio"],
         "ERROR: --lkft-rootfs /nonexistent/rootfs.cpio: no such file; check the path or "
         "give a URL"),
        (["--lkft-device=qemu-arm64", "--lkft-timeouts=boot=soon"],
         "ERROR: invalid timeout 'soon' for boot in --lkft-timeouts 'boot=soon'; give "
         "seconds, e.g. boot=300"),
    ],
    ids=["unknown-device", "missing-qemu", "missing-file", "bad-timeout"],
)
def test_bad_input_is_one_line(pytester: pytest.Pytester, artifact_cache: Path,
                               args: list[str], message: str) -> None:
    result = run_suites(pytester, artifact_cache, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_kernel_for_the_wrong_architecture(pytester: pytest.Pytester, artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64", "qemu-system-x86_64")
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    cache = ArtifactCache(artifact_cache)
    x86 = default_artifacts(load_devices().get("qemu-x86_64"), cache.root, cache.fetch).kernel
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64",
                        f"--lkft-kernel={x86}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --lkft-kernel {x86} is an x86 bzImage but qemu-arm64 "
                                 "needs an arm64 kernel; pass a kernel built for arm64 or "
                                 "choose another device"])


def test_unreachable_url_is_one_line(pytester: pytest.Pytester,
                                      artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64", "-k", "boot",
                        "--lkft-kernel=http://127.0.0.1:9/Image")
    result.assert_outcomes(errors=1, skipped=1)  # the boot; the crash check a consequence
    result.stdout.fnmatch_lines(["*qemu-arm64: cannot fetch http://127.0.0.1:9/Image*"])
    assert "Traceback" not in result.stdout.str()


def test_console_is_streamed_with_s(pytester: pytest.Pytester, artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-arm64", "-k", "boot",
                        "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*Linux version 6.*", "*lkft: init done*"])


OTHER_DEFAULT_DEVICES = {"qemu-armv7": "qemu-system-arm", "qemu-i386": "qemu-system-i386",
                         "qemu-ppc64le": "qemu-system-ppc64", "qemu-s390": "qemu-system-s390x",
                         "qemu-mips64el": "qemu-system-mips64el"}


def test_every_default_device_boots(pytester: pytest.Pytester, artifact_cache: Path) -> None:
    need_qemu(*OTHER_DEFAULT_DEVICES.values())
    devices = [f"--lkft-device={name}" for name in OTHER_DEFAULT_DEVICES]
    result = run_suites(pytester, artifact_cache, "-n", "2", "-k", "test_boot", *devices)
    result.assert_outcomes(passed=2 * len(OTHER_DEFAULT_DEVICES))  # boot and crash check
    for name in OTHER_DEFAULT_DEVICES:
        log = (pytester.path / "lkft-results" / name / "boot" / "console.log").read_text()
        assert "lkft: init done" in log


def test_device_without_defaults_names_the_options(pytester: pytest.Pytester,
                                                   artifact_cache: Path) -> None:
    need_qemu("qemu-system-riscv64")
    result = run_suites(pytester, artifact_cache, "--lkft-device=qemu-riscv64",
                        "--lkft-tests=boot,smoke", "-rs")
    # one error for the device; its other tests are skipped as consequences, not 15 copies
    result.assert_outcomes(errors=1, skipped=1 + SMOKE_CASES + 1)
    result.stdout.fnmatch_lines(["*qemu-riscv64: qemu-riscv64 has no default kernel and rootfs "
                                 "(Debian ships none for it); pass --lkft-kernel (a Image) and "
                                 "--lkft-rootfs*"])
    assert result.stdout.str().count("has no default kernel") == 1
    result.stdout.fnmatch_lines(["SKIPPED [[]13[]] *: not run: qemu-riscv64 failed earlier in "
                                 "this run (see *test_boot.py::test_boot?qemu-riscv64?)"])


@pytest.fixture
def http_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A directory served over HTTP on 127.0.0.1 (python's http.server), stopped by PID."""
    import socket
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = tmp_path / "served"
    served.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               "--directory", str(served), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield served, f"http://127.0.0.1:{port}"
    server.kill()
    server.wait()


def test_kernel_and_rootfs_from_urls_go_through_the_cache(pytester: pytest.Pytester,
                                                          artifact_cache: Path,
                                                          http_dir: tuple[Path, str]) -> None:
    need_qemu("qemu-system-aarch64")
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    shared = ArtifactCache(artifact_cache)
    found = default_artifacts(load_devices().get("qemu-arm64"), shared.root, shared.fetch)
    served, url = http_dir
    (served / "Image").write_bytes(found.kernel.read_bytes())
    (served / "rootfs.cpio.gz").write_bytes(found.rootfs.read_bytes())
    cache = pytester.path / "cache"
    args = ["--lkft-device=qemu-arm64", "-k", "boot", f"--lkft-kernel={url}/Image",
            f"--lkft-rootfs={url}/rootfs.cpio.gz"]
    first = run_suites(pytester, cache, *args)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["lkft cache: * MB fetched upstream, * MB served"])
    assert len(list((cache / "entries").iterdir())) == 2
    second = run_suites(pytester, cache, *args)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["lkft cache: 0.0 MB fetched upstream, * MB served"])
    props = (pytester.path / "lkft-results" / "qemu-arm64" / "boot" / "reproducer.sh").read_text()
    assert str(cache / "entries") in props
