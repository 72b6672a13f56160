"""Real LTP on a real device (issue 14): built from source, run on qemu-arm64, checked.

LTP 20260529 is built from the shared source tarball (`../shared/ltp/`, read in place,
never copied into the repository) for arm64, static, for the runtest files LKFT runs
that fit CI's time: math, fcntl-locktests, nptl, fs_perms_simple, fs_bind, pty and the
syscalls tags a* to c*, less the few that run for minutes under TCG (SLOW, skipped through
a skipfile, which also keeps them out of the build). The build is made once per machine
(cached under $LKFT_TEST_CACHE, holding the machine-wide build lock); one pytest run of
`testsuites/test_ltp.py` on qemu-arm64 with Debian's kernel is shared by the checks:

- every JUnit result equals what LTP itself printed for that test on the console (its
  TPASS/TFAIL/TBROK/TCONF lines and Summary block), read here by its own code, not the
  plugin's parser;
- tests that failed for the rootfs's sake before (kernel config, getpwnam("nobody"), a
  loop device) pass;

and a stand-in runtest file (shell commands, no build) shows a test that outlives its
timeout, and one that panics the kernel, each in the middle of a runtest file: the file
resumes after them and the next suite runs; that next suite checks the system LTP gets
(`lo` up; the loop, veth, dummy and af_alg modules) and the console while tests run
(warnings shown, info messages not). `math` built again, dynamically linked, is given to
the plugin as a URL (the shared tarball served on 127.0.0.1): the cached build from the
path is the one used, and its results are what its console says. A kernel the plugin
builds (the real tests' shared one, tests/shared_kernel.py) puts its modules and config on
the LTP disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_kernel import (  # noqa: F401  (linux_source, shared_kernel: fixtures)
    linux_source,
    need_tools,
    plugin_options,
    shared_kernel,
)
from test_ltp_suite import ltp_tarball, messages

from conftest import REPO, SHARED_CACHE, TESTSUITES, junit_results, need_qemu
from pytest_lkft.build.kernel import BuildResult
from pytest_lkft.build.ltp import LtpBuild, LtpBuildResult, LtpSource, missing_defaults
from pytest_lkft.build.ltprun import runtest_entries

LTP_SOURCE = REPO.parent / "shared" / "ltp" / "ltp-20260529.tar.xz"
BUILD_LOCK = Path("/tmp/lkft-build.lock")  # one heavy build at a time on this machine
RUNTESTS = ("math", "fcntl-locktests", "nptl", "fs_perms_simple", "fs_bind", "pty", "syscalls")
# Minutes each under TCG (measured here: float_bessel 78 s, nptl01 135 s; pty06, pty07 and
# bind06 race for minutes); the syscalls beyond c* are left to LKFT's own runs.
SLOW = ("float_bessel", "float_exp_log", "float_power", "float_trigo", "nptl01", "pty06",
        "pty07", "bind06")
DYNAMIC_RUNTESTS = ("math",)
# Tests that failed for the rootfs's sake on a bare busybox initramfs (issue 14).
ROOTFS_NEEDS = {"acct02": "the kernel's config", "access01": "/etc/passwd with nobody",
                "chdir01": "the loop module"}
RESUME = """\
before01 stand_in 0
hang01 sleep 600
mid01 stand_in 0
panic01 sh -c 'echo c > /proc/sysrq-trigger'
after01 stand_in 0
"""
# The suite after the resumed one, on the same Debian kernel and LTP disk: what LTP's tests
# need of the system (`lo` up; the kernel's loop, veth, dummy and af_alg modules, which
# loop devices, network namespaces and the crypto tests use), and the console while the
# tests run: at data/ltp.yaml's loglevel (5), a KERN_WARNING line still reaches the console
# and the crash check while a KERN_INFO one stays in dmesg.
MODULES = ("loop", "veth", "dummy", "af_alg")
LATER_TESTS = {
    "later01": "stand_in 0",
    "lo01": "sh -c 'flags=$(cat /sys/class/net/lo/flags); echo \"lo flags $flags\"; "
            "[ $((flags & 1)) = 1 ]'",
    "modules01": f"sh -c 'for m in {' '.join(MODULES)}; do modprobe $m && [ -d /sys/module/$m ] "
                 "|| { echo \"TFAIL: no module $m\"; exit 1; }; done'",
    "console01": "sh -c 'read -r level _ </proc/sys/kernel/printk; "
                 "echo \"console loglevel $level\"; [ \"$level\" = 5 ]'",
    "warn01": "sh -c 'echo \"<6>lkft: an info message\" >/dev/kmsg; "
              "echo \"<4>WARNING: CPU: 0 PID: 1 at lkft-stand-in\" >/dev/kmsg'",
}
LATER = "".join(f"{tag} {command}\n" for tag, command in LATER_TESTS.items())


@functools.cache
def ci_skips() -> tuple[str, ...]:
    """The skipfile's tags: the syscalls outside a* to c*, and SLOW (read once: 3 s)."""
    syscalls = LtpSource(LTP_SOURCE, str(LTP_SOURCE)).runtest_texts(["syscalls"])["syscalls"]
    outside = [tag for tag, _ in runtest_entries(syscalls) if tag[0] not in "abc"]
    return (*outside, *SLOW)


def built(runtests: tuple[str, ...], skips: tuple[str, ...],
          linking: str = "static") -> LtpBuildResult:
    """LTP for arm64, built once per machine (the build lock held while it builds)."""
    if not LTP_SOURCE.is_file():
        pytest.skip(f"no LTP source at {LTP_SOURCE}: it is the shared folder's "
                    "ltp/ltp-20260529.tar.xz, beside the checkout as ../shared")
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        message = "aarch64-linux-gnu-gcc is not installed: run the README's test set-up command"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    build = LtpBuild(source=LTP_SOURCE, target_arch="arm64", linking=linking, runtests=runtests,
                     skips=skips, cache_dir=SHARED_CACHE / "ltp-builds")
    result = build.cached()
    if result is None:
        with BUILD_LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            result = build.run()
    assert result.passed, result.summary()
    return result


@pytest.fixture(scope="session")
def ltp_build() -> LtpBuildResult:
    """The runtest files above, static (as LKFT builds LTP)."""
    return built(RUNTESTS, ci_skips())


@pytest.fixture(scope="session")
def dynamic_build() -> LtpBuildResult:
    """`math`, linked dynamically, without its float tests: five quick tests, built from
    the source's path."""
    return built(DYNAMIC_RUNTESTS, dynamic_skips(), "dynamic")


def dynamic_skips() -> tuple[str, ...]:
    """The CI build's skips, and float_iperb: `math` without its float tests."""
    return (*ci_skips(), "float_iperb")


def shared_cache(path: Path) -> Path:
    """A private cache sharing the machine's kernels, kernel builds, LTP builds and kernel
    trees."""
    path.mkdir(parents=True, exist_ok=True)
    shared = {name: SHARED_CACHE / "artifacts" / name
              for name in ("entries", "apt", "defaults", "kernel-modules", "builds")}
    for name, target in {**shared, "ltp-builds": SHARED_CACHE / "ltp-builds"}.items():
        target.mkdir(parents=True, exist_ok=True)
        (path / name).symlink_to(target)
    return path


def run_ltp(where: Path, *args: str, **env: str) -> Path:
    """testsuites/test_ltp.py on qemu-arm64 in a pytest of its own, run from `where`
    (`env`: more environment); its JUnit file, which it must have written."""
    command = [sys.executable, "-m", "pytest", str(TESTSUITES / "test_ltp.py"),
               "-p", "no:cacheprovider", "-p", "no:randomly", "--lkft-device=qemu-arm64",
               f"--lkft-cache-dir={shared_cache(where / 'cache')}",
               f"--lkft-results-dir={where / 'results'}", f"--junitxml={where / 'ltp.xml'}",
               *args]
    env = {**os.environ, "HOME": str(where), **env}
    done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True,
                          check=False, timeout=3600)
    junit = where / "ltp.xml"
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return junit


def write_skipfile(path: Path, tags: tuple[str, ...]) -> Path:
    """A skipfile of `tags`, a line each."""
    path.write_text("".join(f"{tag}\n" for tag in tags))
    return path


@pytest.fixture(scope="session")
def real_run(ltp_build: LtpBuildResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the built LTP on qemu-arm64 (Debian's kernel, the default rootfs)."""
    need_qemu("qemu-system-aarch64")
    where = tmp_path_factory.mktemp("real-ltp")
    skipfile = write_skipfile(where / "skipfile", ci_skips())
    run_ltp(where, f"--lkft-ltp-src={LTP_SOURCE}", f"--lkft-ltp-runtest={','.join(RUNTESTS)}",
            f"--lkft-ltp-skipfile={skipfile}")
    return where


@contextlib.contextmanager
def served(path: Path) -> Iterator[str]:
    """`path`'s URL on an HTTP server on 127.0.0.1 that lives as long as the context; the
    copy the artifact cache fetched of it (an entry under its URL, whose port changes from
    one run to the next) is removed from the shared cache afterwards."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        entry = SHARED_CACHE / "artifacts" / "entries" / hashlib.sha256(url.encode()).hexdigest()
        shutil.rmtree(entry, ignore_errors=True)


@pytest.fixture(scope="session")
def dynamic_run(dynamic_build: LtpBuildResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dynamic build's LTP on qemu-arm64, its source given as a URL."""
    need_qemu("qemu-system-aarch64")
    where = tmp_path_factory.mktemp("dynamic-ltp")
    skipfile = write_skipfile(where / "skipfile", dynamic_skips())
    log = dynamic_build.log.stat().st_mtime_ns
    with served(LTP_SOURCE) as url:
        run_ltp(where, f"--lkft-ltp-src={url}", "--lkft-ltp-linking=dynamic",
                f"--lkft-ltp-runtest={','.join(DYNAMIC_RUNTESTS)}",
                f"--lkft-ltp-skipfile={skipfile}")
    assert dynamic_build.log.stat().st_mtime_ns == log  # not built again
    return where


# -- what LTP printed, read without the plugin's parser -----------------------------------------

BLOCK = re.compile(r"<<<test_start>>>\ntag=(\S+) .*?<<<test_output>>>\n(.*?)"
                   r"<<<execution_status>>>\n.*?termination_id=(\d+)", re.DOTALL)
SUMMARY = re.compile(r"^Summary:\npassed\s+(\d+)\nfailed\s+(\d+)\nbroken\s+(\d+)\n"
                     r"skipped\s+(\d+)\nwarnings\s+(\d+)", re.MULTILINE)
RESULT_WORD = re.compile(r"\b(TPASS|TFAIL|TBROK|TCONF|TWARN)\b")


def printed_verdict(output: str, exit_status: int) -> str:
    """pass, failure or skipped, as the test's own lines say: its Summary block when it
    printed one (the new library, shell tests), else its result lines (the old library),
    else (a test that prints no result line, such as locktests) its exit status."""
    summaries = SUMMARY.findall(output)
    if summaries:
        passed, failed, broken, skipped, warnings = (sum(int(s[i]) for s in summaries)
                                                     for i in range(5))
    else:
        words = RESULT_WORD.findall(output)
        passed, failed, broken, skipped, warnings = (words.count(w) for w in (
            "TPASS", "TFAIL", "TBROK", "TCONF", "TWARN"))
        if not words:
            passed, failed = int(exit_status == 0), int(exit_status != 0)
    if failed or broken or warnings:
        return "failure"
    if passed:
        return "pass"
    return "skipped" if skipped else "failure"


def console_verdicts(results: Path) -> dict[str, str]:
    """`ltp-<runtest>/<tag>` -> the verdict its console output gives."""
    found = {}
    for log in sorted(results.glob("qemu-arm64/ltp-*/console.log")):
        text = log.read_text(errors="replace")
        for tag, output, status in BLOCK.findall(text):
            found[f"{log.parent.name}/{tag}"] = printed_verdict(output, int(status))
    return found


def test_lkft_runtest_files_this_ltp_lacks() -> None:
    if not LTP_SOURCE.is_file():
        pytest.skip(f"no LTP source at {LTP_SOURCE}")
    available = list(LtpSource(LTP_SOURCE, str(LTP_SOURCE)).runtest_texts())
    assert missing_defaults(available) == ["cap_bounds", "io", "ipc", "securebits"]


def test_lkft_ltp_build_gives_the_build_the_plugin_made(ltp_build: LtpBuildResult,
                                                       tmp_path: Path) -> None:
    skipfile = write_skipfile(tmp_path / "skipfile", ci_skips())
    done = subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "ltp-build", str(LTP_SOURCE),
                           "--target-arch=arm64", f"--runtest={','.join(RUNTESTS)}",
                           f"--skipfile={skipfile}", f"--cache-dir={SHARED_CACHE / 'ltp-builds'}"],
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ltp build: PASS from the build cache: "), done.stdout
    assert f"tarball: {ltp_build.tarball}\n" in done.stdout  # the same cache key


@pytest.mark.qemu
def test_every_junit_result_is_what_ltp_printed(real_run: Path) -> None:
    junit = {name: result for name, result in junit_results(real_run / "ltp.xml").items()
             if not name.endswith(("/run", "/crash"))}
    printed = console_verdicts(real_run / "results")
    skips = set(ci_skips())
    ran = {name: result for name, result in junit.items() if name.split("/", 1)[1] not in skips}
    assert len(ran) > 150  # math, fcntl-locktests, nptl, fs_perms, fs_bind, pty, syscalls a-c
    differ = {name: f"junit {result}, console {printed.get(name, 'nothing')}"
              for name, result in ran.items() if printed.get(name) != result}
    assert not differ  # (a list, not pytest's diff of two 250-entry dicts: that takes minutes)
    skipped = {name for name in junit if name.split("/", 1)[1] in skips}
    assert skipped and all(junit[name] == "skipped" for name in skipped)


@pytest.mark.qemu
def test_a_dynamic_build_from_a_url_runs_as_its_console_says(
        dynamic_run: Path, dynamic_build: LtpBuildResult) -> None:
    junit = junit_results(dynamic_run / "ltp.xml")
    ran = {name: result for name, result in junit.items() if not name.endswith(
        ("/run", "/crash")) and name.split("/", 1)[1] not in dynamic_skips()}
    printed = console_verdicts(dynamic_run / "results")
    assert ran == {name: printed.get(name, "nothing") for name in ran}
    assert ran == {f"ltp-math/{tag}": "pass" for tag in
                   ("abs01", "atof01", "fptest01", "fptest02", "nextafter01")}
    assert junit["ltp-math/run"] == "pass"
    binary = (dynamic_build.install_dir / "testcases" / "bin" / "abs01").read_bytes()
    assert binary.startswith(b"\x7fELF") and b"/lib/ld-linux-aarch64.so.1" in binary
    used = {prop.get("value") for prop in ET.parse(dynamic_run / "ltp.xml").iter("property")
            if prop.get("name") == "lkft.meta.ltp_build"}
    assert {Path(str(path)).resolve() for path in used} == {dynamic_build.output_dir.resolve()}


@pytest.mark.qemu
def test_the_runs_themselves_pass(real_run: Path) -> None:
    results = junit_results(real_run / "ltp.xml")
    runs = {name: result for name, result in results.items() if name.endswith("/run")}
    assert runs == {f"ltp-{name}/run": "pass" for name in RUNTESTS}
    sizes = {str(path.relative_to(real_run)): path.stat().st_size
             for path in (real_run / "results").rglob("*") if path.is_file()}
    assert sizes and max(sizes.values()) < 4 << 20, sizes  # logs: no copy of a rootfs or disk


@pytest.mark.qemu
def test_tests_that_needed_a_real_rootfs_pass(real_run: Path) -> None:
    results = junit_results(real_run / "ltp.xml")
    assert {tag: results[f"ltp-syscalls/{tag}"] for tag in ROOTFS_NEEDS} == {
        tag: "pass" for tag in ROOTFS_NEEDS}, messages(real_run / "ltp.xml")
    console = (real_run / "results" / "qemu-arm64" / "ltp-syscalls" / "console.log").read_bytes()
    assert b"Cannot parse kernel .config" not in console
    assert b"\r\n" not in console  # plain newlines, not the pty's \r\r\n


@pytest.fixture(scope="module")
def resume_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The stand-in runtest files `resume` and `later`, run once for the tests below."""
    need_qemu("qemu-system-aarch64")
    tmp_path = tmp_path_factory.mktemp("resume")
    tarball = ltp_tarball(tmp_path / "ltp.tar.gz", {"resume": RESUME, "later": LATER})
    run_ltp(tmp_path, f"--lkft-ltp={tarball}", "--lkft-ltp-runtest=resume,later",
            "--lkft-ltp-timeout=3", "--lkft-memory=1536", LTP_TIMEOUT_MUL="2")
    yield tmp_path


@pytest.mark.qemu
def test_a_timeout_and_a_panic_mid_file_resume(resume_run: Path) -> None:
    junit = resume_run / "ltp.xml"
    assert junit_results(junit) == {
        "ltp-resume/run": "pass", "ltp-resume/crash": "failure",
        "ltp-resume/before01": "pass", "ltp-resume/hang01": "failure",
        "ltp-resume/mid01": "pass", "ltp-resume/panic01": "failure",
        "ltp-resume/after01": "pass",
        "ltp-later/run": "pass", "ltp-later/crash": "failure", "ltp-later/later01": "pass",
        "ltp-later/lo01": "pass", "ltp-later/modules01": "pass", "ltp-later/console01": "pass",
        "ltp-later/warn01": "pass"}, messages(junit)
    reasons = messages(junit)
    assert "timed out after 6 s (LKFT_LTP_TIMEOUT=3 LTP_TIMEOUT_MUL=2)" in reasons[
        "ltp-resume/hang01"]  # the per-test timeout, times LTP's multiplier, on the device
    assert "lost: the device died while running" in reasons["ltp-resume/panic01"]
    assert "Kernel panic" in reasons["ltp-resume/panic01"]
    assert "Kernel panic" in reasons["ltp-resume/crash"]
    console = (resume_run / "results" / "qemu-arm64" / "ltp-resume" / "console.log").read_text()
    assert console.count("lkft: init done") == 2  # booted afresh once, same console.log
    reproducer = (resume_run / "results" / "qemu-arm64" / "ltp-resume" / "reproducer.sh")
    assert " -m 1536 " in reproducer.read_text()  # --lkft-memory, not the device's RAM


@pytest.mark.qemu
def test_lo_is_up_and_the_modules_ltp_needs_load(resume_run: Path) -> None:
    results = junit_results(resume_run / "ltp.xml")
    assert {tag: results[f"ltp-later/{tag}"] for tag in ("lo01", "modules01")} == {
        "lo01": "pass", "modules01": "pass"}, messages(resume_run / "ltp.xml")
    console = (resume_run / "results" / "qemu-arm64" / "ltp-later" / "console.log").read_text()
    assert "lo flags 0x9" in console  # IFF_UP | IFF_LOOPBACK


@pytest.mark.qemu
def test_while_tests_run_the_console_shows_warnings_and_worse(resume_run: Path) -> None:
    junit = resume_run / "ltp.xml"
    assert junit_results(junit)["ltp-later/console01"] == "pass", messages(junit)
    console = (resume_run / "results" / "qemu-arm64" / "ltp-later" / "console.log").read_text()
    assert "console loglevel 5" in console  # data/ltp.yaml's, set by the runner
    kernel = "\n".join(re.findall(r"^\[ *\d+\.\d+\] (.*)$", console, re.MULTILINE))
    assert "WARNING: CPU: 0 PID: 1 at lkft-stand-in" in kernel  # KERN_WARNING: shown,
    assert "WARNING: CPU: 0 PID: 1 at lkft-stand-in" in messages(junit)["ltp-later/crash"]
    assert "lkft: an info message" not in kernel  # KERN_INFO: dmesg only
    assert "LTP: starting" not in kernel  # the runner's markers are notices
    resumed = (resume_run / "results" / "qemu-arm64" / "ltp-resume" / "console.log").read_text()
    assert "Kernel panic - not syncing: sysrq triggered crash" in resumed  # EMERG: shown


# -- a kernel the plugin builds: its own modules and config on the LTP disk -------------------

BUILT_KERNEL_CHECKS = {
    "module01": "sh -c 'modprobe torture && grep \"^torture \" /proc/modules'",
    # where LTP's tst_kconfig reads it (no /proc/config.gz on this kernel)
    "config01": "sh -c 'grep -x CONFIG_RCU_TORTURE_TEST=m /boot/config-$(uname -r)'",
}


@pytest.fixture
def built_kernel(linux_source: Path, shared_kernel: BuildResult) -> list[str]:  # noqa: F811
    """The arm64 kernel the real tests share (tests/shared_kernel.py: rcutorture as a
    module among its fragments), built once; the options that ask the plugin for it."""
    return plugin_options(linux_source)


@pytest.mark.qemu
def test_a_built_kernels_modules_and_config_are_on_the_ltp_disk(tmp_path: Path,
                                                                built_kernel: list[str]) -> None:
    need_qemu("qemu-system-aarch64")
    text = "".join(f"{tag} {command}\n" for tag, command in BUILT_KERNEL_CHECKS.items())
    tarball = ltp_tarball(tmp_path / "ltp.tar.gz", {"kernel": text})
    junit = run_ltp(tmp_path, f"--lkft-ltp={tarball}", "--lkft-ltp-runtest=kernel",
                    *built_kernel)
    assert junit_results(junit) == {"ltp-kernel/run": "pass", "ltp-kernel/crash": "pass",
                                    "ltp-kernel/module01": "pass",
                                    "ltp-kernel/config01": "pass"}, messages(junit)
    # (Debian's kernel has no CONFIG_RCU_TORTURE_TEST: config01 passes on the build's only)
