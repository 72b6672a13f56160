"""The pytest side of labgrid boards: options, lab devices, one place per device per process.

`LabgridKind` is the device kind of the lab file's boards (see `devicekinds`): it reads
the lab file when the run is configured, checks the coordinator is reachable when a lab
device is selected, and makes a `LabgridDevice` for each suite run.

Each pytest process (each xdist worker) leases its own place per lab device the first
time one of its suites needs it, keeps it for the session, and releases it when the
session finishes; `config.add_cleanup`, `atexit` and a SIGTERM/SIGHUP handler release it
too, so a crash, Ctrl-C or a terminated worker leaves nothing acquired or reserved. A
process killed outright (SIGKILL) runs none of these: every lease is on record in the
artifact cache's `labgrid-leases/` (`devices.labgrid.registry`), and the xdist controller
releases what a worker that went down with an error held; each run also releases, at
its start, what dead processes of this host left held on its coordinator.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import pytest

from pytest_lkft.devices.base import Device
from pytest_lkft.devices.console import TextSink
from pytest_lkft.devices.labgrid import (
    LabDevice,
    LabgridDevice,
    PlaceLease,
    finish_running_clients,
    load_lab,
)
from pytest_lkft.devices.labgrid.lease import release_stale
from pytest_lkft.devices.labgrid.registry import LeaseRecord, LeaseRegistry
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.pytestplugin.cache import CACHE_KEY
from pytest_lkft.pytestplugin.options import SETTINGS_KEY, resolver
from pytest_lkft.pytestplugin.provisioning import device_artifacts
from pytest_lkft.settings.options import Resolved

DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default
DEFAULT_PLACE_TIMEOUT = 600.0
CRASH_GRACE = 5.0  # seconds a crashed worker's process may take to be gone
LEASES_DIR = "labgrid-leases"  # under the artifact cache: which process holds which place
RELEASED_STALE = "lkft: released place {place} held by {why} (pid {pid}, reservation {token})"
COORDINATOR_DOWN = ("cannot reach the labgrid coordinator at {address} ({reason}); start "
                    "labgrid-coordinator there or pass --lkft-coordinator ADDRESS")


@dataclass
class LabSession:
    """A process's lab: the lab file's devices, its leases, and what failed, by device."""

    lab: Path | None = None
    devices: dict[str, LabDevice] = field(default_factory=dict)
    coordinator: str = DEFAULT_COORDINATOR
    place_timeout: float = DEFAULT_PLACE_TIMEOUT
    leases: dict[str, PlaceLease] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    registry: LeaseRegistry | None = None
    released_stale: list[str] = field(default_factory=list)  # what release_stale said

    def lease(self, spec: LabDevice) -> PlaceLease:
        """The place of `spec` for this process, leased on first use."""
        if spec.name not in self.leases:
            lease = PlaceLease(self.coordinator, spec.tag_filter(), registry=self.registry)
            self.leases[spec.name] = lease  # registered before it reserves: cleanup sees it
            lease.acquire(self.place_timeout)
        return self.leases[spec.name]

    def release_all(self) -> None:
        """Release every place this process holds (safe to call more than once)."""
        for lease in self.leases.values():
            lease.release()

    def release_stale(self, why: str) -> list[str]:
        """Release what dead processes of this host held on the coordinator; one line each.

        Never raises: a lab that cannot be cleaned up now shows when a place is leased.
        """
        if self.registry is None:
            return []
        try:
            records = release_stale(self.registry, self.coordinator)
        except Exception as error:  # noqa: BLE001  (labgrid's errors are many)
            return [f"lkft: could not release places of dead processes on {self.coordinator}: "
                    f"{error}"]
        return [_released_line(record, why) for record in records]


def _released_line(record: LeaseRecord, why: str) -> str:
    return RELEASED_STALE.format(place=record.place or "(none yet)", why=why, pid=record.pid,
                                 token=record.token)


LAB_KEY = pytest.StashKey[LabSession]()
_SESSIONS: list[LabSession] = []  # for atexit and signals, which have no config


def _place_timeout(value: Resolved) -> float:
    if not value:
        return DEFAULT_PLACE_TIMEOUT
    try:
        seconds = float(value.value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UserError(f"invalid place timeout {value.value!r} from {value.origin}; give "
                        "seconds, e.g. 600")
    return seconds


def lab_session(config: pytest.Config) -> LabSession:
    """The process's LabSession, made once from the options; UserError when one is bad."""
    if LAB_KEY not in config.stash:
        options = resolver(config)
        lab = options.value("lkft_lab").value
        path = Path(config.invocation_params.dir, lab) if lab else None
        config.stash[LAB_KEY] = LabSession(
            lab=path, devices=load_lab(path) if path else {},
            coordinator=options.value("lkft_coordinator").value or DEFAULT_COORDINATOR,
            place_timeout=_place_timeout(options.value("lkft_place_timeout")))
    return config.stash[LAB_KEY]


def check_coordinator(address: str, timeout: float = 5.0) -> None:
    """One-line InfraError unless a TCP connection to the coordinator opens."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout).close()
    except ValueError:
        raise UserError(f"invalid coordinator address {address!r}; use HOST:PORT") from None
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise UserError(COORDINATOR_DOWN.format(address=address, reason=reason)) from None


class LabgridKind:
    """The boards of the lab file (`--lkft-lab`), leased through a labgrid coordinator."""

    name = "labgrid"

    def __init__(self) -> None:
        self.session = LabSession()

    def configure(self, config: pytest.Config) -> None:
        """Read the lab file, arm the release of this process's places."""
        self.session = session = lab_session(config)
        session.registry = LeaseRegistry(config.stash[CACHE_KEY].root / LEASES_DIR)
        config.pluginmanager.register(SessionEnd(session), "lkft-lab-release")
        config.add_cleanup(session.release_all)
        _SESSIONS.append(session)
        _arm_signals()

    def names(self) -> list[str]:
        return sorted(self.session.devices)

    def claims(self, device: str) -> bool:
        return device in self.session.devices

    def arch(self, device: str) -> str:
        return self.session.devices[device].arch

    def check(self, config: pytest.Config, devices: Sequence[str]) -> None:
        """The coordinator answers; what dead processes of this host held is released."""
        check_coordinator(self.session.coordinator)
        if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
            self.session.released_stale = self.session.release_stale(
                "a process of an earlier run")
            config.pluginmanager.register(WorkerCrashes(self.session, config),
                                          "lkft-lab-crashes")

    def make(self, request: pytest.FixtureRequest, device: str, suite: str, run_dir: Path,
             stream: TextSink | None) -> Device:
        """The board for one suite run, on this process's place."""
        config = request.config
        spec = self.session.devices[device]
        artifacts = device_artifacts(config, spec.provision_as)
        lease = _lease(self.session, spec)
        timeouts = config.stash[SETTINGS_KEY].timeouts
        board = LabgridDevice(spec, lease, artifacts, run_dir, timeouts, stream)
        board.metadata["suite"] = suite
        return board


class SessionEnd:
    """Releases the places when the session finishes.

    Before an xdist worker reports that it finished: after that the controller may exit
    and a new run lease the same place while this worker's late cleanup would release it.
    """

    def __init__(self, session: LabSession) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.session.release_all()


class WorkerCrashes:
    """Controller only: release the places of an xdist worker that went down with an error.

    A SIGKILLed worker runs no cleanup; its place would stay acquired and reserved, and
    the worker that replaces it would wait for a place for nothing.
    """

    def __init__(self, session: LabSession, config: pytest.Config) -> None:
        self.session, self.config = session, config

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: object, error: object | None) -> None:
        if error is None:
            return
        worker = getattr(getattr(node, "gateway", None), "id", "?")
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in self._release_when_gone(f"crashed worker {worker}"):
            if terminal is not None:
                terminal.write_line(line)


    def _release_when_gone(self, why: str) -> list[str]:
        """Release the crashed worker's places once its process is gone: xdist may report
        the node down (its channel closed) while the killed process is still exiting."""
        deadline = time.monotonic() + CRASH_GRACE
        while True:
            lines = self.session.release_stale(why)
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)


def _release_everything() -> None:
    for session in _SESSIONS:
        session.release_all()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Release the places, then die of the signal as we would have."""
    finish_running_clients()
    _release_everything()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _arm_signals() -> None:
    """Release on exit and on SIGTERM/SIGHUP (Ctrl-C unwinds through pytest's cleanup)."""
    if len(_SESSIONS) > 1:
        return
    atexit.register(_release_everything)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _on_signal)


def _lease(session: LabSession, spec: LabDevice) -> PlaceLease:
    """The device's place, or a one-line failure (remembered: no second wait)."""
    if spec.name not in session.failures:
        try:
            return session.lease(spec)
        except LkftError as error:
            session.failures[spec.name] = f"{spec.name}: {error}"
    pytest.fail(session.failures[spec.name], pytrace=False)


def header_line(config: pytest.Config) -> str | None:
    """`lkft: lab=... coordinator=... place-timeout=...` when a lab file is given."""
    session = config.stash.get(LAB_KEY, None)
    if session is None or session.lab is None:
        return None
    return "\n".join([
        f"lkft: lab={session.lab} devices={','.join(sorted(session.devices))} "
        f"coordinator={session.coordinator} place-timeout={session.place_timeout:g}",
        *session.released_stale])
