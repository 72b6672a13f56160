"""Shared test set-up: pytester, and one artifact cache for every real boot.

Tests that boot QEMU share a persistent artifact cache (`$LKFT_TEST_CACHE`, default
`~/.cache/lkft-test`), resolved here at import, before pytester points HOME elsewhere:
the Debian kernels and busybox are fetched once per machine, not once per test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from squad_server import SquadServer

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
TESTSUITES = REPO / "testsuites"
SHARED_CACHE = Path(os.environ.get("LKFT_TEST_CACHE") or Path.home() / ".cache" / "lkft-test")


def pytest_configure(config: pytest.Config) -> None:
    restore_ctrl_c()
    stop_on_sigterm()
    config.addinivalue_line("markers", "qemu: boots a real kernel in QEMU")
    config.addinivalue_line("markers", "kernel_build: builds a real kernel from linux-source-6.1")


def restore_ctrl_c() -> None:
    """Let the runs the tests start take SIGINT as a terminal's Ctrl-C. A shell without
    job control starts a background command (`./bootstrap.sh test &`, a CI runner's) with
    SIGINT ignored, every child inherits that, and Python keeps an ignored SIGINT ignored:
    the tests that press Ctrl-C then see nothing happen. A handler set here is reset to
    the default in the children, where Python makes it KeyboardInterrupt again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_on_sigterm() -> None:
    """A SIGTERM to the test session (a CI runner's timeout, `kill`) is taken as Ctrl-C:
    pytest then tears its fixtures down, so the servers they started (SQUAD, the LAVA
    lab's daemons and PostgreSQL, labgrid's) are stopped by PID, not left running. It
    replaces the plugin's own handler (labgrid's: release the places, then die of the
    signal), whose release pytest's cleanup does as well."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def squad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SquadServer]:
    """One real SQUAD 1.98 on 127.0.0.1 for every test of the session (installed once
    into the persistent test cache)."""
    from squad_server import SquadServer, install_squad

    server = SquadServer(install_squad(), tmp_path_factory.mktemp("squad"))
    try:
        server.start()  # inside: a server that starts but never answers is stopped too
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def artifact_cache() -> Path:
    """The artifact cache shared by every test that boots (kernels, busybox, overlays)."""
    path = SHARED_CACHE / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def private_cache(tmp_path: Path, artifact_cache: Path) -> Path:
    """A cache of the test's own (case lists, builds, fetched tarballs) that shares the
    machine's kernels, busybox and apt state with every other test."""
    private = tmp_path / "cache"
    private.mkdir()
    for shared in ("entries", "apt", "defaults"):
        (private / shared).symlink_to(artifact_cache / shared)
    return private


def junit_name(case: ET.Element) -> str:
    """A JUnit testcase's name without the ` [device]` every LKFT case's name ends with."""
    return re.sub(r" \[[^]]*\]$", "", case.get("name", ""))


def junit_results(path: Path) -> dict[str, str]:
    """A JUnit file's results: `suite/case` (classname and name, without the name's
    ` [device]`) -> pass/failure/error/skipped."""
    found = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        found[f"{case.get('classname')}/{junit_name(case)}"] = tags[0] if tags else "pass"
    return found


def need_commands(names: tuple[str, ...], install: str) -> None:
    """Skip, saying how to `install` them, when a command is absent (fail under CI)."""
    for name in names:
        if shutil.which(name) is None:
            message = f"{name} is not installed: {install}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)


def need_qemu(*binaries: str) -> None:
    """Skip with the package to install when a QEMU binary is absent (fail under CI)."""
    need_commands(binaries, "run the README's test set-up command")
