"""The console's command framing on a plain local shell (no QEMU): output longer than
pexpect's search window comes back whole, with its exit status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_lkft.devices.console import SEARCH_WINDOW, Console, ConsoleLog
from pytest_lkft.devices.crash import CrashDetector, load_crash_patterns
from pytest_lkft.settings.device import BootMessages


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Console]:
    log = ConsoleLog(tmp_path / "console.log", CrashDetector(load_crash_patterns()), None)
    console = Console(["env", "PS1=", "PS2=", "sh"], log)  # no prompt in the output
    console.start()
    yield console
    console.stop()
    log.close()


def test_output_longer_than_the_search_window_comes_back_whole(shell: Console) -> None:
    lines = 20 * SEARCH_WINDOW // 6  # about 20 windows of "12345\n"
    result = shell.run(f"seq 1 {lines}; false", 60)
    assert result.output.splitlines() == [str(n) for n in range(1, lines + 1)]
    assert result.exit_status == 1


BANNER = ("Linux version 6.1.0-57-cloud-arm64 (debian-kernel@lists.debian.org) (gcc-12 (Debian"
          " 12.2.0-14+deb12u1) 12.2.0) #1 SMP Debian 6.1.192-3 (2026-11-26)")


def test_kernel_version_is_read_whole_while_the_banner_trickles_in(tmp_path: Path) -> None:
    # The banner arrives a few characters at a time, as from a slow serial line: the
    # version must not be taken before its line ended (issue 16: builds named `6`).
    script = tmp_path / "boot.sh"
    chunks = [BANNER[i:i + 3] for i in range(0, len(BANNER), 3)]
    script.write_text("".join(f"printf '%s' '{c}'; sleep 0.01\n" for c in chunks)
                      + "printf '\\r\\n'; printf '/ # '; exec env PS1='/ # ' sh\n")
    log = ConsoleLog(tmp_path / "console.log", CrashDetector(load_crash_patterns()), None)
    console = Console(["sh", str(script)], log)
    console.start()
    try:
        console.boot(60)
        assert console.kernel_version == "6.1.0-57-cloud-arm64"
        assert console.kernel_banner == BANNER.removeprefix("Linux version ")
    finally:
        console.stop()
        log.close()


def test_a_given_start_message_takes_its_group_from_the_whole_line(tmp_path: Path) -> None:
    # A kernel-start message that does not end with its line (a device table's or
    # --lkft-kernel-start-message's) matched the half a loaded console had read:
    # `linux,dummy-v` for `linux,dummy-virt` (issue 17, a full run under load).
    line = "[    0.000000] Machine model: linux,dummy-virt"
    script = tmp_path / "boot.sh"
    chunks = [line[i:i + 3] for i in range(0, len(line), 3)]
    script.write_text("".join(f"printf '%s' '{c}'; sleep 0.02\n" for c in chunks)
                      + "printf '\\r\\n'; printf '/ # '; exec env PS1='/ # ' sh\n")
    log = ConsoleLog(tmp_path / "console.log", CrashDetector(load_crash_patterns()), None)
    console = Console(["sh", str(script)], log, BootMessages(r"Machine model: (\S+)"))
    console.start()
    try:
        console.boot(60)
        assert console.kernel_version == "linux,dummy-virt"
    finally:
        console.stop()
        log.close()


# A "device" whose shell loses the first line it is sent, as busybox's can while it waits
# for the answer to its ESC[6n cursor query: the boot must still reach the shell.
LOSES_FIRST_LINE = """
echo 'Linux version 6.1.0-test (lkft@test) #1 SMP'
printf '/ # \\033[6n'
read lost
exec env PS1='/ # ' sh -i
"""


def test_the_boot_asks_again_when_the_shell_lost_its_first_line(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "console.log", CrashDetector(load_crash_patterns()), None)
    console = Console(["sh", "-c", LOSES_FIRST_LINE], log)
    console.start()
    try:
        elapsed = console.boot(timeout=30)
        assert console.kernel_version == "6.1.0-test"
        assert elapsed < 30
        assert "hello" in console.run("echo hello", 10).output.splitlines()
    finally:
        console.stop()
        log.close()


def test_the_console_log_has_plain_newlines_and_a_restart_appends(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    log = ConsoleLog(path, CrashDetector(load_crash_patterns()), None)
    for chunk in ("one\r\r\ntwo\r", "\r", "\nthree\r\n", "progress\r50%\r\n"):
        log.write(chunk)  # a pty's line ends, split anywhere between two reads
    log.close()
    again = ConsoleLog(path, CrashDetector(load_crash_patterns()), None, append=True)
    again.write("after the restart\r\n")
    again.close()
    assert path.read_bytes() == b"one\ntwo\nthree\nprogress\r50%\nafter the restart\n"


def test_the_tail_keeps_lines_whole_when_they_come_a_character_a_read(tmp_path: Path) -> None:
    """A shell under load echoes a command one character per read (issue 17's timeout
    test saw `sleep 60` without its prompt)."""
    log = ConsoleLog(tmp_path / "console.log", CrashDetector(load_crash_patterns()), None)
    for n in range(40):
        log.write(f"[    1.{n:06d}] boot line {n}\r\r\n")
    log.write("/ # \x1b[6n")
    for char in 'echo "LKFT""-START"; sleep 60\r\r\n':
        log.write(char)
    log.write("LKFT-START\r\r\n")
    log.write("x" * 10_000)  # a line that never ends keeps its end
    log.close()
    lines = log.tail_text().split("\n")
    assert lines[-3:] == ["[    1.000039] boot line 39", "/ # sleep 60", "x" * 4096]
    assert len([line for line in lines if line]) <= 30
