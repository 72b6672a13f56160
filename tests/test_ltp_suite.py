"""The ltp-<runtest> suites on a real device: tarball or rootfs LTP, runner, parser, items.

LTP is not packaged in Debian and there is no network here, so the LTP tree is built
by the test: the /opt/ltp layout (`runtest/<name>`, `testcases/bin/`) with *stand-in*
test programs, small shell scripts that print LTP-style TPASS/TFAIL/TBROK/TCONF/TWARN
lines and exit with LTP's codes. Everything else is real: the tree laid over the busybox
initramfs as a tarball (`--lkft-ltp`) or already in the rootfs (a cpio appended to the
busybox initramfs, as LKFT's rootfs carries /opt/ltp), our runner
(`pytest_lkft/data/ltp-runner.sh`) in the QEMU guest, ltp-pan's console format, the LTP
parser and one pytest item per tag.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import TESTSUITES, junit_name, junit_results, need_qemu
from pytest_lkft.build.ltp import LtpBuild, LtpSource
from pytest_lkft.build.ltprun import directories_for
from pytest_lkft.errors import UserError
from pytest_lkft.provision import kernelmodules, ltp
from pytest_lkft.provision.rootfs import tarball_overlay
from pytest_lkft.settings.device import Settings, parse_shard

# A stand-in for an LTP test program: `stand_in CODE` prints what a new-library test
# with that exit status prints (the result line, the Summary block) and exits with it.
STAND_IN = """#!/bin/sh
case "$1" in
0) echo "stand_in.c:10: TPASS: it works" ;;
1) echo "stand_in.c:11: TFAIL: it does not work" ;;
2) echo "stand_in.c:12: TBROK: could not set up the test" ;;
4) echo "stand_in.c:10: TPASS: it works"; echo "stand_in.c:13: TWARN: cleanup left a file" ;;
32) echo "stand_in.c:14: TCONF: CONFIG_FOO not set" ;;
esac
printf '\\nSummary:\\npassed   %d\\n' "$([ "$1" = 0 ] || [ "$1" = 4 ] && echo 1 || echo 0)"
exit "$1"
"""
SMOKETEST = """\
# stand-in smoketest: the tag, then the command (busybox shell commands and stand_in)
pass01 stand_in 0
fail01 stand_in 1

brok01 stand_in 2
conf01 stand_in 32
warn01 stand_in 4
shell01 echo hello from busybox; test -d /opt/ltp/testcases/bin
skipme01 stand_in 1
"""
HANG = """\
before01 stand_in 0
hang01 sleep 600
after01 stand_in 0
"""
SMOKE_RESULTS = {"ltp-smoketest/run": "pass", "ltp-smoketest/crash": "pass",
                 "ltp-smoketest/pass01": "pass", "ltp-smoketest/fail01": "failure",
                 "ltp-smoketest/brok01": "failure", "ltp-smoketest/conf01": "skipped",
                 "ltp-smoketest/warn01": "failure", "ltp-smoketest/shell01": "pass",
                 "ltp-smoketest/skipme01": "skipped"}


def add_file(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def ltp_tarball(path: Path, runtests: dict[str, str], root: str = "",
                programs: tuple[Path, ...] = ()) -> Path:
    """An LTP install tree with the stand-in test program, `programs` and these runtest
    files."""
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, f"{root}testcases/bin/stand_in", STAND_IN, 0o755)
        for program in programs:
            tar.add(program, f"{root}testcases/bin/{program.name}")
        for name, text in runtests.items():
            add_file(tar, f"{root}runtest/{name}", text)
    return path


def rootfs_with_ltp(path: Path, artifact_cache: Path, runtests: dict[str, str]) -> Path:
    """The default busybox initramfs with the stand-in LTP tree at /opt/ltp appended (the
    kernel unpacks concatenated cpio archives): a rootfs that carries its own LTP."""
    from pytest_lkft.artifacts.cache import ArtifactCache
    from pytest_lkft.provision.defaults import default_artifacts
    from pytest_lkft.settings.devices import load_devices

    with ArtifactCache(artifact_cache) as shared:
        busybox = default_artifacts(load_devices().get("qemu-arm64"), artifact_cache,
                                    shared.fetch).rootfs
    tree = ltp_tarball(path.with_suffix(".tar.gz"), runtests)
    path.write_bytes(busybox.read_bytes() + tarball_overlay(tree, "opt/ltp"))
    return path


def messages(path: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                found[f"{case.get('classname')}/{junit_name(case)}"] = str(child.get("message"))
    return found


def run(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(TESTSUITES / "test_ltp.py"),
                                         f"--lkft-cache-dir={cache}", "-p", "no:cacheprovider",
                                         "--lkft-device=qemu-arm64", "-v", *args)


@pytest.fixture
def cache(private_cache: Path) -> Path:
    """A private cache (case lists) sharing the downloaded kernels (see conftest)."""
    return private_cache


@pytest.mark.qemu
def test_each_tag_is_an_item_with_ltp_results(pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"smoketest": SMOKETEST,
                                                         "other": "other01 true\n"})
    skipfile = pytester.path / "skipfile"
    skipfile.write_text("# known to fail on this board\nskipme01  # bug 123\n\n")
    junit = pytester.path / "ltp.xml"
    result = run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-runtest=smoketest",
                 f"--lkft-ltp-skipfile={skipfile}", f"--junitxml={junit}")
    result.assert_outcomes(passed=4, failed=3, skipped=2)  # run, crash, pass01, shell01
    result.stdout.fnmatch_lines([f"lkft: ltp={tarball} runtest=smoketest skipfile={skipfile} "
                                 "shard=all timeout=600",
                                 "*test_case?qemu-arm64-fail01-smoketest?*FAILED*",
                                 "ltp-smoketest/warn01: fail (stand_in.c:13: TWARN: *"])
    assert junit_results(junit) == SMOKE_RESULTS
    reasons = messages(junit)
    assert "TWARN: cleanup left a file" in reasons["ltp-smoketest/warn01"]
    assert "TBROK: could not set up the test" in reasons["ltp-smoketest/brok01"]
    assert "TCONF: CONFIG_FOO not set" in reasons["ltp-smoketest/conf01"]
    assert "skipme01 is in the skipfile skipfile" in reasons["ltp-smoketest/skipme01"]
    # the host reported the skip: the device's plan, and so its console, never had the tag
    consoles = "".join(log.read_text() for log in pytester.path.rglob("ltp-smoketest/console.log"))
    assert "tag=pass01 " in consoles
    assert "skipme01" not in consoles


@pytest.mark.qemu
def test_a_shard_runs_every_nth_tag(pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"smoketest": SMOKETEST}, "opt/ltp/")
    junit = pytester.path / "ltp.xml"
    result = run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-shard=3/3",
                 f"--junitxml={junit}")
    result.assert_outcomes(passed=3, failed=1)  # run, crash, shell01; brok01
    result.stdout.fnmatch_lines([  # LKFT's default set, said once, not dropped silently
        f"lkft: LKFT's LTP runtest files cap_bounds, commands, *, tracing are not in {tarball}: "
        "not run"])
    assert junit_results(junit) == {"ltp-smoketest/run": "pass", "ltp-smoketest/crash": "pass",
                                    "ltp-smoketest/brok01": "failure",
                                    "ltp-smoketest/shell01": "pass"}  # the 3rd and 6th tags


@pytest.mark.qemu
def test_a_runtest_file_resumes_after_the_test_that_hung_the_device(
        pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz",
                          {"hang": HANG, "later": "later01 stand_in 0\n"})
    junit = pytester.path / "ltp.xml"
    result = run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-runtest=hang,later",
                 "--lkft-timeouts=test=15", f"--junitxml={junit}")
    result.assert_outcomes(passed=7, failed=1)
    assert junit_results(junit) == {  # ltp-later has a device of its own
        "ltp-hang/run": "pass", "ltp-hang/crash": "pass", "ltp-hang/before01": "pass",
        "ltp-hang/hang01": "failure", "ltp-hang/after01": "pass",
        "ltp-later/run": "pass", "ltp-later/crash": "pass", "ltp-later/later01": "pass"}
    reason = messages(junit)["ltp-hang/hang01"]
    assert "lost: 'sh /lkft/ltp-runner.sh hang' timed out after 15 s" in reason


@pytest.mark.qemu
def test_the_rootfs_ltp_runs_and_its_tags_become_items_from_the_next_run(
        pytester: pytest.Pytester, cache: Path, artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    rootfs = rootfs_with_ltp(pytester.path / "rootfs.cpio.gz", artifact_cache,
                             {"smoketest": SMOKETEST})
    skipfile = pytester.path / "skipfile"
    skipfile.write_text("# known to fail on this board\nskipme01  # bug 123\n\n")
    args = (f"--lkft-rootfs={rootfs}", "--lkft-ltp-runtest=smoketest",
            f"--lkft-ltp-skipfile={skipfile}")
    first, second = pytester.path / "first.xml", pytester.path / "second.xml"
    result = run(pytester, cache, *args, f"--junitxml={first}")
    result.stdout.fnmatch_lines([f"lkft: ltp=rootfs runtest=smoketest skipfile={skipfile} "
                                 "shard=all timeout=600",
                                 "*collected 3 items / 1 deselected / 2 selected",
                                 "*::ltp-smoketest/fail01?qemu-arm64? *FAILED*"])  # no tag known
    assert junit_results(first) == SMOKE_RESULTS  # the tags come from the controller
    assert "skipme01 is in the skipfile skipfile" in messages(first)["ltp-smoketest/skipme01"]

    result = run(pytester, cache, *args, f"--junitxml={second}")
    result.assert_outcomes(passed=4, failed=3, skipped=2)  # run, crash, pass01, shell01
    result.stdout.fnmatch_lines(["*collected 9 items",
                                 "*test_case?qemu-arm64-fail01-smoketest?*FAILED*",
                                 "*test_case?qemu-arm64-skipme01-smoketest?*SKIPPED*"])
    assert junit_results(second) == SMOKE_RESULTS
    assert "TWARN: cleanup left a file" in messages(second)["ltp-smoketest/warn01"]


@pytest.mark.qemu
def test_the_rootfs_ltp_shard_and_a_runtest_file_the_rootfs_lacks(
        pytester: pytest.Pytester, cache: Path, artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    rootfs = rootfs_with_ltp(pytester.path / "rootfs.cpio.gz", artifact_cache,
                             {"smoketest": SMOKETEST, "mm": "mmap01 stand_in 0\n"})
    junit = pytester.path / "ltp.xml"
    result = run(pytester, cache, f"--lkft-rootfs={rootfs}", "--lkft-ltp-shard=3/3",
                 "--lkft-ltp-runtest=smoketest,syscalls", f"--junitxml={junit}")
    assert junit_results(junit) == {"ltp-smoketest/run": "pass", "ltp-smoketest/crash": "pass",
                                    "ltp-smoketest/brok01": "failure",
                                    "ltp-smoketest/shell01": "pass",  # the 3rd and 6th tags
                                    "ltp-syscalls/run": "failure", "ltp-syscalls/crash": "pass"}
    result.stdout.fnmatch_lines([
        "ltp-syscalls: ltp-runner: no runtest file /opt/ltp/runtest/syscalls on the device; "
        "/opt/ltp/runtest has: mm, smoketest (exit status 2, no ltp output; see *console.log)"])


def test_the_rootfs_setup_writes_runner_skips_and_settings_verbatim() -> None:
    settings = Settings(ltp_shard=ltp.Shard(2, 4), ltp_skipfile="dir/my skips",
                        ltp_timeout=90, ltp_timeout_mul="2.5")
    setup = ltp.rootfs_setup(settings, ["a01", "b01"])
    script = ltp.runner_script().decode()
    assert setup.startswith("mkdir -p /lkft/ltp/runtest && cat >/lkft/ltp-runner.sh <<'")
    assert f"<<'{ltp.HEREDOC_END}'\n{script}{ltp.HEREDOC_END}\n" in setup
    assert setup.endswith("cat >/lkft/ltp/skipfile <<'LKFT_LTP_EOF'\na01\nb01\nLKFT_LTP_EOF\n"
                          "cat >/lkft/ltp/settings <<'LKFT_LTP_EOF'\nLKFT_LTP_TIMEOUT=90\n"
                          "LKFT_LTP_CONSOLE_LOGLEVEL=5\nLTP_TIMEOUT_MUL=2.5\nLKFT_LTP_MAKE_PLAN=1\nLKFT_LTP_SHARD=2/4\n"
                          "LKFT_LTP_SKIPFILE_NAME=my_skips\nLKFT_LTP_EOF")  # a plain label
    assert ltp.HEREDOC_END not in script and "\t" not in script  # a tab would complete


def test_without_a_tarball_the_suite_says_which_option_to_pass(
        pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    result = run(pytester, cache, "-rs")
    result.assert_outcomes(skipped=2)  # run, crash; no case is known
    result.stdout.fnmatch_lines(["SKIPPED*no LTP: pass --lkft-ltp PATH|URL*, or "
                                 "--lkft-ltp-runtest NAME[[],NAME[]] to run the runtest files "
                                 "of the rootfs's /opt/ltp"])


def test_a_runtest_file_the_tarball_lacks_is_one_line(pytester: pytest.Pytester,
                                                      cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"smoketest": SMOKETEST, "mm": ""})
    result = run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-runtest=syscalls")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*--lkft-ltp-runtest syscalls: no runtest/syscalls in "
                                 f"{tarball}; it has: mm, smoketest"])
    assert "Traceback" not in result.stdout.str()


def test_plan_applies_the_shard_then_the_skipfile() -> None:
    text = "# comment\n\na01 cmd a\nb01\tcmd b\nc01  cmd  c\nd01 \t cmd d\n"
    assert ltp.runtest_entries(text) == [("a01", "cmd a"), ("b01", "cmd b"),
                                         ("c01", "cmd  c"), ("d01", "cmd d")]
    assert ltp.plan(text, ltp.Shard(1, 2)) == [("a01", "cmd a"), ("c01", "cmd  c")]
    assert [tag for tag, _ in ltp.plan(text, ltp.Shard(2, 2))] == ["b01", "d01"]
    # the device runs the shard less the skipfile's tags; the host reports those
    assert ltp.to_run(text, ltp.Shard(1, 2), ["c01", "d01"]) == [("a01", "cmd a")]
    assert ltp.skipped(text, ltp.Shard(1, 2), ["c01", "d01"]) == ["c01"]


def test_bad_shards_say_what_to_pass() -> None:
    assert parse_shard("3/4") == ltp.Shard(3, 4)
    for bad in ("0/4", "5/4", "x", "1/0", "1-4"):
        with pytest.raises(UserError, match=f"invalid shard '{bad}' from LKFT_LTP_SHARD"):
            parse_shard(bad, "LKFT_LTP_SHARD")


def test_tarballs_with_and_without_the_opt_ltp_prefix(tmp_path: Path) -> None:
    relative = ltp_tarball(tmp_path / "a.tar.gz", {"mm": "mmap01 mmap01\n"})
    rooted = ltp_tarball(tmp_path / "b.tar.gz", {"mm": "mmap01 mmap01\n"}, "./opt/ltp/")
    assert ltp.runtest_files(relative) == ltp.runtest_files(rooted) == {"mm": "mmap01 mmap01\n"}
    assert (ltp.overlay_prefix(relative), ltp.overlay_prefix(rooted)) == ("opt/ltp", "")
    assert ltp.choose_runtests(["mm", "syscalls", "zzz"], (), "x") == ["mm", "syscalls"]
    assert ltp.choose_runtests(["zzz"], (), "x") == ["zzz"]


def test_bad_ltp_options_are_usage_errors(pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"smoketest": SMOKETEST})
    result = run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-shard=5/4")
    result.stderr.fnmatch_lines(["*invalid shard '5/4' from --lkft-ltp-shard; pass INDEX/TOTAL*"])
    result = run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-skipfile=nope")
    result.stderr.fnmatch_lines(["*--lkft-ltp-skipfile nope: no such file*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# -- bad input: one line each, before anything builds or boots ----------------------------------


def test_a_runtest_name_that_is_no_file_name_is_refused_before_boot(
        pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"smoketest": SMOKETEST})
    result = run(pytester, cache, f"--lkft-ltp={tarball}",
                 "--lkft-ltp-runtest=smoketest,x;echo INJECTED-$((6*7))")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--lkft-ltp-runtest 'x;echo INJECTED-$((6*7))' is not a "
                                 "runtest file's name: use letters, digits and _.+- only*"])
    assert not (pytester.path / "lkft-results").exists()  # nothing booted


def test_a_source_that_is_not_ltp_is_one_line(pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    (pytester.path / "notltp" / "runtest").mkdir(parents=True)
    result = run(pytester, cache, f"--lkft-ltp-src={pytester.path / 'notltp'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{pytester.path / 'notltp'} is not an LTP source (no "
                                 "include/tst_test.h, configure); pass an LTP release tarball*"])
    assert not (pytester.path / "lkft-results").exists()


def test_lkft_ltp_build_says_a_bad_source_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notltp" / "runtest").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "ltp-build",
                           str(tmp_path / "notltp"), f"--cache-dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"lkft ltp-build: error: {tmp_path / 'notltp'} is not an LTP source "
                           "(no include/tst_test.h, configure); pass an LTP release tarball "
                           "(ltp-YYYYMMDD.tar.xz) or source directory\n")
    assert not (tmp_path / "cache").exists()


def test_an_architecture_ltp_is_not_built_for_is_one_line(pytester: pytest.Pytester,
                                                           cache: Path) -> None:
    need_qemu("qemu-system-sh4")
    tree = ltp_source_tree(pytester.path / "ltp")
    result = pytester.runpytest_subprocess(str(TESTSUITES / "test_ltp.py"),
                                           f"--lkft-cache-dir={cache}", "--lkft-device=qemu-sh4",
                                           f"--lkft-ltp-src={tree}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*LTP cannot be built for sh here; it builds for arm, arm64, "
                                 "i386, mips, powerpc, riscv, s390, x86_64"])


def test_a_missing_cross_compiler_names_its_package(pytester: pytest.Pytester,
                                                     cache: Path) -> None:
    need_qemu("qemu-system-riscv64")
    if shutil.which("riscv64-linux-gnu-gcc"):
        pytest.skip("riscv64-linux-gnu-gcc is installed here: nothing is missing")
    tree = ltp_source_tree(pytester.path / "ltp")
    result = pytester.runpytest_subprocess(str(TESTSUITES / "test_ltp.py"),
                                           f"--lkft-cache-dir={cache}",
                                           "--lkft-device=qemu-riscv64", f"--lkft-ltp-src={tree}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*riscv64-linux-gnu-gcc not found: gcc for riscv needs "
                                 "`apt-get install gcc-riscv64-linux-gnu`"])


def ltp_source_tree(path: Path) -> Path:
    """The three things that make a directory an LTP source, and one runtest file."""
    (path / "include").mkdir(parents=True)
    (path / "runtest").mkdir()
    (path / "include" / "tst_test.h").write_text("")
    (path / "configure").write_text("#!/bin/sh\n")
    (path / "runtest" / "smoketest").write_text(SMOKETEST)
    return path


def test_the_build_plan_names_only_the_directories_the_runtest_files_need(
        tmp_path: Path) -> None:
    tree = ltp_source_tree(tmp_path / "ltp")
    for name, files in {"testcases/kernel/syscalls/abort": ["abort01.c"],
                        "testcases/kernel/syscalls/fcntl": ["fcntl34.c", "fcntl01.c"],
                        "testcases/kernel/fs/fs_bind": ["fs_bind_lib.sh"],
                        "testcases/kernel/fs/fs_bind/bind": ["fs_bind01.sh"],
                        "testcases/kernel/syscalls/unused": ["unused01.c"]}.items():
        (tree / name).mkdir(parents=True)
        (tree / name / "Makefile").write_text("")
        for file in files:
            (tree / name / file).write_text(". fs_bind_lib.sh\n" if file == "fs_bind01.sh"
                                            else "")
    commands = ["abort01", "fcntl34_64 -v", "fs_bind01.sh", "echo hello"]
    assert directories_for(LtpSource(tree, "ltp"), commands) == (
        ["testcases/kernel/fs/fs_bind", "testcases/kernel/syscalls/abort",
         "testcases/kernel/syscalls/fcntl"], ["echo"])


def test_a_kernel_builds_modules_and_config_make_the_rootfs_kernel_tree(tmp_path: Path) -> None:
    """Not Debian's kernel: the build's modules tarball and .config, laid out as Debian's
    package lays them, depmod'ed, the config where LTP's tst_kconfig looks; the tree holds
    nothing else (it is laid at / on the disk as it is)."""
    if shutil.which("depmod") is None:
        pytest.skip("depmod is not installed: run the README's test set-up (kmod)")
    modules, config = tmp_path / "modules.tar.xz", tmp_path / ".config"
    with tarfile.open(modules, "w:xz") as tar:
        add_file(tar, "lib/modules/6.1.0-lkft/kernel/drivers/block/loop.ko", "not ELF")
        add_file(tar, "lib/modules/6.1.0-lkft/modules.order", "kernel/drivers/block/loop.ko\n")
    config.write_text("CONFIG_BLK_DEV_LOOP=m\n")
    tree = kernelmodules.tree_from_build(modules, config, tmp_path / "cache")
    assert tree.release == "6.1.0-lkft" and tree.key.startswith("build-")
    assert sorted(path.name for path in tree.path.iterdir()) == ["boot", "lib"]
    assert (tree.path / "boot" / "config-6.1.0-lkft").read_text() == "CONFIG_BLK_DEV_LOOP=m\n"
    assert "kernel/drivers/block/loop.ko:" in (tree.modules / "modules.dep").read_text()
    assert kernelmodules.tree_from_build(modules, config, tmp_path / "cache") == tree  # once
    config.write_text("CONFIG_BLK_DEV_LOOP=y\n")  # rebuilt in place: another tree
    again = kernelmodules.tree_from_build(modules, config, tmp_path / "cache")
    assert again.key != tree.key
    assert (again.path / "boot" / "config-6.1.0-lkft").read_text() == "CONFIG_BLK_DEV_LOOP=y\n"


def test_the_build_cache_key_is_the_source_arch_toolchain_linking_and_runtests(
        tmp_path: Path) -> None:
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("aarch64-linux-gnu-gcc is not installed: run the README's test set-up")
    tree = ltp_source_tree(tmp_path / "ltp")
    (tree / "runtest" / "other").write_text("other01 other01\n")
    for name in ("abort01", "other01"):
        (tree / "testcases" / name).mkdir(parents=True)
        (tree / "testcases" / name / f"{name}.c").write_text("")
        (tree / "testcases" / name / "Makefile").write_text("")
    (tree / "runtest" / "smoketest").write_text("abort01 abort01\nother01 other01\n")

    def key(**changes: object) -> str:
        inputs: dict[str, object] = {"source": tree, "runtests": ("smoketest",),
                                     "cache_dir": tmp_path / "cache", **changes}
        build = LtpBuild(**inputs)  # type: ignore[arg-type]
        build.validate()
        return build.cache_key()

    base = key()
    assert key(skips=("nothing01",)) == base  # a skip that keeps every directory: no rebuild
    (tree / "README").write_text("changed\n")
    changed = key()
    keys = [base, changed, key(skips=("other01",)), key(runtests=("smoketest", "other")),
            key(linking="dynamic"), key(target_arch="x86_64")]
    assert len(set(keys)) == len(keys), keys


HELLO = '#include <stdio.h>\nint main(void) { puts("hello01 1 TPASS : dynamic"); return 0; }\n'


@pytest.mark.qemu
def test_a_dynamically_linked_ltp_runs(pytester: pytest.Pytester, cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("aarch64-linux-gnu-gcc is not installed: run the README's test set-up")
    (pytester.path / "hello.c").write_text(HELLO)
    binary = pytester.path / "hello01"
    subprocess.run(["aarch64-linux-gnu-gcc", "-o", str(binary), str(pytester.path / "hello.c")],
                   check=True)
    tarball = ltp_tarball(pytester.path / "ltp.tar.gz", {"dyn": "hello01 hello01\n"},
                          programs=(binary,))
    junit = pytester.path / "ltp.xml"
    run(pytester, cache, f"--lkft-ltp={tarball}", "--lkft-ltp-runtest=dyn", f"--junitxml={junit}")
    assert junit_results(junit) == {"ltp-dyn/run": "pass", "ltp-dyn/crash": "pass",
                                    "ltp-dyn/hello01": "pass"}
