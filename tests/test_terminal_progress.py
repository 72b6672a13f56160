"""Download progress beside pytest's own output, on a real pseudo-terminal and on a pipe.

A test run whose third test fetches a file the origin server serves slowly (16 KiB every
10 ms: 2 MB take at least 1.2 s, past the cache's half second before a progress line), so
there is always progress to show, on an 80-column pty, as a user's terminal has it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from origin_server import Origin

SIZE = 2_000_000
TESTS = f"""
import os

def test_a(): pass
def test_b(): pass
def test_fetch(lkft_artifact):
    assert lkft_artifact(os.environ["BLOB_URL"]).stat().st_size == {SIZE}
def test_c(): pass
def test_d(): pass
"""
CONTROL = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])|[\r\n]|[^\x1b\r\n]+")


def screen(output: str, columns: int = 80) -> list[str]:
    """What a terminal shows of `output`: text, CR, LF, erase to the end of the line (K),
    cursor up (A) and right (C); colours dropped. Lines longer than `columns` wrap."""
    lines, row, column = [""], 0, 0
    for match in CONTROL.finditer(output):
        text, (number, command) = match.group(0), match.groups()
        if text == "\r":
            column = 0
        elif text == "\n":
            row, column = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif command == "K":
            lines[row] = lines[row][:column]
        elif command == "A":
            row = max(row - int(number or 1), 0)
        elif command == "C":
            column += int(number or 1)
        elif command is None:
            for char in text:
                if column >= columns:
                    row, column = row + 1, 0
                    lines += [""] * (row + 1 - len(lines))
                line = lines[row].ljust(column)
                lines[row] = line[:column] + char + line[column + 1 :]
                column += 1
    return [line.rstrip() for line in lines]


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    (tmp_path / "origin").mkdir()
    server = Origin(tmp_path / "origin")
    server.add("blob", os.urandom(SIZE))
    yield server
    server.stop()


def pytest_on_a_pty(pytester: pytest.Pytester, origin: Origin, *args: str) -> str:
    """Run pytest on the test module with its output on an 80x24 pty; all it wrote."""
    pytester.makepyfile(test_fetch=TESTS)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
               f"--lkft-cache-dir={pytester.path / 'cache'}", *args, "test_fetch.py"]
    env = {**os.environ, "BLOB_URL": origin.url("blob", "slow16"), "COLUMNS": "80",
           "LINES": "24", "TERM": "xterm"}
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with subprocess.Popen(command, stdout=follower, stderr=follower, env=env,
                          cwd=pytester.path) as child:
        os.close(follower)
        output = b""
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not data:
                break
            output += data
    os.close(leader)
    assert child.returncode == 0, output.decode(errors="replace")
    return output.decode(errors="replace").replace("\r\n", "\n")


def test_progress_on_a_terminal_leaves_the_dots_of_q_alone(pytester: pytest.Pytester,
                                                            origin: Origin) -> None:
    output = pytest_on_a_pty(pytester, origin, "-q")
    assert f"\nfetching {origin.url('blob', 'slow16')}: " in output  # on a line of its own
    shown = screen(output)
    assert re.fullmatch(r"\.{5} {60,}\[100%\]", shown[0]) and len(shown[0]) < 80, shown
    assert shown[1].startswith("5 passed in")
    assert not any("fetch" in line for line in shown)


def test_progress_on_a_terminal_leaves_the_lines_of_v_alone(pytester: pytest.Pytester,
                                                            origin: Origin) -> None:
    output = pytest_on_a_pty(pytester, origin, "-v")
    shown = screen(output)
    assert any(re.fullmatch(r"test_fetch.py::test_fetch PASSED {20,}\[ 60%\]", line)
               for line in shown), shown
    assert not any("fetch http" in line or "fetching" in line for line in shown)


def test_progress_on_a_pipe_is_lines_of_their_own(pytester: pytest.Pytester,
                                                  origin: Origin) -> None:
    pytester.makepyfile(test_fetch=TESTS)
    os.environ["BLOB_URL"] = origin.url("blob", "slow16")
    try:
        result = pytester.runpytest_subprocess(
            "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            f"--lkft-cache-dir={pytester.path / 'cache'}")
    finally:
        del os.environ["BLOB_URL"]
    result.assert_outcomes(passed=5)
    lines = result.stdout.lines
    fetches = [line for line in lines if "fetch" in line]
    assert fetches and all(line.startswith(("fetching http", "fetched http")) for line in fetches)
    assert fetches[-1].startswith(f"fetched {origin.url('blob', 'slow16')}: 2.0 MB of 2.0 MB")
    dots = [line.split()[0] for line in lines if re.fullmatch(r"\.+( +\[100%\])?", line)]
    assert "".join(dots) == "....."
