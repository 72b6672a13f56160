"""Values that reach a shell are data, never commands (issue 17).

Module names come from the modules tarball, kselftest collections from the kselftest
tarball's list, LTP runtest names from --lkft-ltp-runtest, LTP skip tags from the skipfile,
the kernel command line from the user: each reaches a shell (the device's, or U-Boot's) as
one word. Each value here tries to run `echo INJECTED-$((6*7))`; `INJECTED-42` anywhere
means it ran.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import TESTSUITES, need_qemu
from pytest_lkft.devices.labgrid.serial import hush_quoted
from pytest_lkft.errors import UserError
from pytest_lkft.provision.ltp import HEREDOC_END, heredoc, skipfile_label

EVIL = "evil;echo INJECTED-$((6*7))"


def test_a_skipfile_line_cannot_end_the_here_document(tmp_path: Path) -> None:
    target = tmp_path / "skip-tags"
    text = f"{HEREDOC_END}\necho INJECTED-$((6*7))\n"
    done = subprocess.run(["sh", "-c", heredoc(str(target), text)], capture_output=True,
                          text=True, check=True)
    assert target.read_text() == text  # written verbatim, nothing ran
    assert "INJECTED-42" not in done.stdout + done.stderr


def test_the_skipfile_name_reaches_the_rootfs_runner_as_plain_characters() -> None:
    # the rootfs's LTP runner puts it between single quotes in its plan's skip lines
    assert skipfile_label("/x/it's $(reboot).txt") == "it_s___reboot_.txt"


def test_u_boot_gets_each_value_as_one_word() -> None:
    assert hush_quoted("uboot-a/Image") == "uboot-a/Image"
    assert hush_quoted(f"console=ttyAMA0 {EVIL}") == f"'console=ttyAMA0 {EVIL}'"
    with pytest.raises(UserError, match="^U-Boot cannot take .* leave them out of "):
        hush_quoted("x' ; reset; '")


def tarball(path: Path, members: dict[str, tuple[bytes, int]]) -> Path:
    """A .tar.gz of files: name -> (content, mode)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, (content, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    return path


def unwrapped(console: str) -> str:
    """The console without line breaks (the shell wraps the long command lines it echoes)."""
    return console.replace("\r", "").replace("\n", "")


RUNNER = b"""#!/bin/sh
# run_kselftest.sh -c COLLECTION: one passing test of that collection
echo "TAP version 13"
echo "1..1"
echo "# selftests: $2: t1"
echo "ok 1 selftests: $2: t1"
"""


@pytest.mark.qemu
def test_names_from_tarballs_stay_names_on_the_device(pytester: pytest.Pytester,
                                                      artifact_cache: Path) -> None:
    need_qemu("qemu-system-aarch64")
    modules = tarball(pytester.path / "modules.tar.gz",
                      {f"lib/modules/6.1.0/kernel/{EVIL}.ko": (b"not a module", 0o644)})
    kselftest = tarball(pytester.path / "kselftest.tar.gz", {
        "run_kselftest.sh": (RUNNER, 0o755),
        "kselftest-list.txt": (f"{EVIL}:t1\n".encode(), 0o644)})
    result = pytester.runpytest_subprocess(
        str(TESTSUITES), f"--lkft-cache-dir={artifact_cache}", "-p", "no:cacheprovider",
        "--lkft-device=qemu-arm64", f"--lkft-modules={modules}",
        f"--lkft-kselftest={kselftest}", "--lkft-tests=modules,kselftest-*", "-v")
    # modprobe finds no such module: the case fails, as a module that will not load does
    result.stdout.fnmatch_lines([f"*test_module?qemu-arm64-{EVIL}? FAILED*"])
    runs = pytester.path / "lkft-results" / "qemu-arm64"
    modprobe = (runs / "modules" / "console.log").read_text()
    assert f"modprobe '{EVIL}' && modprobe -r '{EVIL}'" in unwrapped(modprobe)
    collection = (runs / "kselftest" / "console.log").read_text()
    assert f"./run_kselftest.sh -c '{EVIL}'" in unwrapped(collection)
    assert f"ok 1 selftests: {EVIL}: t1" in collection  # the runner got the name whole
    assert "INJECTED-42" not in modprobe + collection


def test_a_runtest_name_that_is_no_name_is_refused_before_booting(
        pytester: pytest.Pytester, artifact_cache: Path) -> None:
    """A runtest name reaches the device's shell and a path: one that is not a file's name
    never gets there (the runner quotes the names it does get)."""
    result = pytester.runpytest_subprocess(
        str(TESTSUITES), f"--lkft-cache-dir={artifact_cache}", "-p", "no:cacheprovider",
        "--lkft-device=qemu-arm64", f"--lkft-ltp-runtest={EVIL}", "--lkft-tests=ltp-*")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --lkft-ltp-runtest '{EVIL}' is not a runtest file's "
                                 "name: use letters, digits and _.+- only, e.g. syscalls,mm"])
    assert not (pytester.path / "lkft-results").exists()  # nothing booted
