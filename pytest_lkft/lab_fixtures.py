"""The pytest side of labgrid boards: options, lab devices, one place per device per process.

plugin.py and fixtures.py wire these: `add_options(group)` in pytest_addoption,
`configure(config)` in pytest_configure (reads the lab file, checks the coordinator is
reachable when a lab device is selected), `lab_device_names(config)` to accept those
names for `--lkft-device`, and `make_lab_device(...)` in the `device` fixture.

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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pytest

from pytest_lkft.cache_fixtures import CACHE_KEY
from pytest_lkft.devices.base import Device
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

if TYPE_CHECKING:
    from pytest_lkft.console import TextSink
    from pytest_lkft.devices.qemu import DeviceArtifacts, Timeouts

LAB_HELP = "Lab file mapping device names to labgrid places, e.g. lab/rpi4.yaml"
COORDINATOR_HELP = "labgrid coordinator HOST:PORT (default $LG_COORDINATOR, else 127.0.0.1:20408)"
PLACE_TIMEOUT_HELP = "Seconds to wait for a free place before giving up (default 600)"
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


def add_options(group: pytest.OptionGroup) -> None:
    """Add --lkft-lab, --lkft-coordinator and --lkft-place-timeout to the lkft group."""
    group.addoption("--lkft-lab", dest="lkft_lab", metavar="FILE", default=None,
                    help=f"{LAB_HELP} [env LKFT_LAB]")
    group.addoption("--lkft-coordinator", dest="lkft_coordinator", metavar="ADDRESS",
                    default=None, help=COORDINATOR_HELP)
    group.addoption("--lkft-place-timeout", dest="lkft_place_timeout", metavar="SECONDS",
                    default=None, help=f"{PLACE_TIMEOUT_HELP} [env LKFT_PLACE_TIMEOUT]")


def _place_timeout(config: pytest.Config) -> float:
    value = config.getoption("lkft_place_timeout", default=None)
    source = "--lkft-place-timeout"
    if value is None:
        value, source = os.environ.get("LKFT_PLACE_TIMEOUT"), "LKFT_PLACE_TIMEOUT"
    if value is None:
        return DEFAULT_PLACE_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise UserError(f"invalid place timeout {value!r} from {source}; give seconds, "
                        "e.g. 600")
    return seconds


def lab_session(config: pytest.Config) -> LabSession:
    """The process's LabSession, made once from the options; UserError when one is bad."""
    if LAB_KEY not in config.stash:
        lab = config.getoption("lkft_lab", default=None) or os.environ.get("LKFT_LAB")
        path = Path(config.invocation_params.dir, lab) if lab else None
        config.stash[LAB_KEY] = LabSession(
            lab=path, devices=load_lab(path) if path else {},
            coordinator=config.getoption("lkft_coordinator", default=None)
            or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR,
            place_timeout=_place_timeout(config))
    return config.stash[LAB_KEY]


def lab_device_names(config: pytest.Config) -> list[str]:
    """The device names the lab file defines (none without --lkft-lab)."""
    return sorted(lab_session(config).devices)


def lab_device(config: pytest.Config, name: str) -> LabDevice | None:
    """The lab file's device `name` (its `arch`, `provision_as`, tags), or None."""
    return lab_session(config).devices.get(name)


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


def configure(config: pytest.Config, devices: tuple[str, ...] | list[str]) -> None:
    """Read the lab, check the coordinator if `devices` name a lab device, arm the cleanup."""
    session = lab_session(config)
    session.registry = LeaseRegistry(config.stash[CACHE_KEY].root / LEASES_DIR)
    if any(name in session.devices for name in devices):
        check_coordinator(session.coordinator)
        if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
            session.released_stale = session.release_stale("a process of an earlier run")
            config.pluginmanager.register(WorkerCrashes(session, config), "lkft-lab-crashes")
    config.pluginmanager.register(SessionEnd(session), "lkft-lab-release")
    config.add_cleanup(session.release_all)
    _SESSIONS.append(session)
    _arm_signals()


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


def _artifacts(config: pytest.Config, session: LabSession, spec: LabDevice) -> DeviceArtifacts:
    """Kernel and rootfs for `spec`: what its QEMU twin boots (a build too), once per process."""
    from pytest_lkft.fixtures import device_artifacts

    return device_artifacts(config, spec.provision_as)


def _lease(session: LabSession, spec: LabDevice) -> PlaceLease:
    """The device's place, or a one-line failure (remembered: no second wait)."""
    if spec.name not in session.failures:
        try:
            return session.lease(spec)
        except LkftError as error:
            session.failures[spec.name] = f"{spec.name}: {error}"
    pytest.fail(session.failures[spec.name], pytrace=False)


def make_lab_device(config: pytest.Config, name: str, suite: str, run_dir: Path,
                    timeouts: Timeouts, stream: TextSink | None) -> Device:
    """The board for one suite run of lab device `name`, on this process's place."""
    session = lab_session(config)
    spec = session.devices.get(name)
    if spec is None:
        pytest.fail(f"{name} is not a device of the lab file {session.lab}; valid: "
                    f"{', '.join(sorted(session.devices))}", pytrace=False)
    artifacts = _artifacts(config, session, spec)
    lease = _lease(session, spec)
    device = LabgridDevice(spec, lease, artifacts, run_dir, timeouts, stream)
    device.metadata["suite"] = suite
    return device


def header_line(config: pytest.Config) -> str | None:
    """`lkft: lab=... coordinator=... place-timeout=...` when a lab file is given."""
    session = config.stash.get(LAB_KEY, None)
    if session is None or session.lab is None:
        return None
    return "\n".join([
        f"lkft: lab={session.lab} devices={','.join(sorted(session.devices))} "
        f"coordinator={session.coordinator} place-timeout={session.place_timeout:g}",
        *session.released_stale])
