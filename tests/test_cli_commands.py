"""What every `lkft` command does alike, run as a user runs it (a subprocess): one-line errors
naming the command's own options, nothing created or downloaded for bad input, a quiet end
when the reader of its output goes away."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from origin_server import Origin

from pytest_lkft.parsers.model import Case, Result
from pytest_lkft.reporting.store import RunRecord, Store


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep HOME and the caches inside the test's tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LKFT_CACHE_DIR", raising=False)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    (tmp_path / "origin").mkdir()
    server = Origin(tmp_path / "origin")
    yield server
    server.stop()


def lkft(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest_lkft.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_build_names_its_own_options(tmp_path: Path) -> None:
    done = lkft("build", "--tree", str(tmp_path / "nonexistent"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"lkft build: error: kernel tree {tmp_path / 'nonexistent'} does not "
                           "exist; pass --tree DIR\n")
    tree = tmp_path / "linux"
    tree.mkdir()
    for name in ("Makefile", "Kconfig", "Kbuild"):
        (tree / name).write_text("")
    done = lkft("build", "--tree", str(tree), "--make-var", "ARCH=arm")
    assert done.returncode == 2
    assert done.stderr.endswith("itself; use --toolchain and --target-arch\n"), done.stderr


@pytest.mark.parametrize("action", ["prune", "stats"])
def test_cache_prune_and_stats_create_no_cache(tmp_path: Path, action: str) -> None:
    missing = tmp_path / "nonexistent"
    done = lkft("cache", action, "--cache-dir", str(missing))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"lkft cache: error: no cache at {missing}; check --cache-dir "
                           "(nothing was created)\n")
    assert not missing.exists()
    (tmp_path / "other").mkdir()  # a directory that is no cache is left as it is
    assert lkft("cache", action, "--cache-dir", str(tmp_path / "other")).returncode == 2
    assert list((tmp_path / "other").iterdir()) == []


def test_cache_fetch_checks_the_sha256_before_downloading(tmp_path: Path, origin: Origin) -> None:
    data = origin.add("kernel", b"k" * 100_000)
    cache = tmp_path / "cache"
    done = lkft("cache", "fetch", origin.url("kernel"), "--sha256", "00", "--cache-dir", str(cache))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("lkft cache: error: --sha256 '00' is not a sha256; give its 64 "
                           "hexadecimal digits\n")
    assert origin.stats()["requests"] == {}
    assert not cache.exists()
    good = hashlib.sha256(data).hexdigest().upper()  # either case is a sha256
    done = lkft("cache", "fetch", origin.url("kernel"), "--sha256", good, "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).read_bytes() == data


def test_a_closed_pipe_ends_every_command_quietly(tmp_path: Path) -> None:
    """`lkft show BUILD | head -1` (as `lkft parse ... | head` in test_cli_parse.py): the
    output (10,000 failures) is more than a pipe holds, so the command is still writing when
    the reader goes; it ends without a traceback, with the shell's status for SIGPIPE."""
    store = tmp_path / "store.sqlite3"
    cases = [Case("ltp-syscalls", f"test{n:05}", Result.FAIL) for n in range(10_000)]
    with Store(store) as opened:
        opened.record(RunRecord("lkft", "linux", "v1", "qemu-arm64", cases))
    command = [sys.executable, "-m", "pytest_lkft.cli", "show", "v1", "--store", str(store)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.readline().startswith(b"lkft/linux v1: tests 10000")
        child.stdout.close()
        err = child.stderr.read()
        child.wait(timeout=60)
    assert (child.returncode, err) == (128 + signal.SIGPIPE, b"")
