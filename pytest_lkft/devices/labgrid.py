"""Boards in a labgrid lab: lab files, places leased from the coordinator, a board device.

A lab file (`lab/*.yaml`) maps device names to boards: the tags of the labgrid places
that can run it, the labgrid drivers bound to a place's resources, how it boots
(`firmware`: power-on boots what the tftp directory holds; `uboot`: stop autoboot, load
over tftp) and the kernel's console. A `PlaceLease` reserves, waits for and acquires one
matching place through labgrid's own coordinator session (`Coordinator`; labgrid-client
from a signal handler), and releases it. A `LabgridDevice` powers the
board, reads its serial console through labgrid's drivers and runs commands with the
same `Console` (markers, crash detection, console log) as QEMU devices.

labgrid is imported only when a board boots, so lab files load without it.
"""

from __future__ import annotations

import codecs
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pexpect
import yaml
from pexpect.spawnbase import SpawnBase

from pytest_lkft.console import CommandResult, Console, ConsoleLog, TextSink
from pytest_lkft.devices.base import ConsoleDevice
from pytest_lkft.devices.qemu import DeviceArtifacts, Timeouts
from pytest_lkft.errors import BootError, DeviceBroken, InfraError, LkftError, UserError

BOOT_METHODS = ("firmware", "uboot")
DEFAULT_DRIVERS: dict[str, dict[str, Any]] = {"NetworkPowerDriver": {}, "SerialDriver": {}}
CLIENT_TIMEOUT = 60.0
EARLY_TIMEOUT = 0.05  # a serial read that "times out" sooner than this: the peer closed
POLL_INTERVAL = 0.2  # seconds between polls of a waiting reservation
RESERVATION_WAITING, RESERVATION_ALLOCATED = 0, 1  # labgrid's ReservationState values
UBOOT_ERROR = re.compile(r"(?i)\b(?:error|not found|unknown command|abort|failed)\b")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_RUNNING: list[subprocess.Popen[str]] = []  # labgrid-client calls in flight

if TYPE_CHECKING:
    _SpawnBase = SpawnBase[str]
else:
    _SpawnBase = SpawnBase  # generic only in the type stubs


@dataclass(frozen=True)
class BootSpec:
    """How a board gets from power-on to the kernel."""

    method: str = "firmware"
    interrupt: str = "Hit any key to stop autoboot"
    prompt: str = "=> "
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabDevice:
    """One device of a lab file: which places run it and how it boots."""

    name: str
    arch: str
    provision_as: str
    tags: dict[str, str]
    console: str
    boot: BootSpec = BootSpec()
    drivers: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_DRIVERS))

    def tag_filter(self) -> list[str]:
        """The tags as labgrid-client's KEY=VALUE filters."""
        return [f"{key}={value}" for key, value in sorted(self.tags.items())]


def _device(path: Path, name: str, entry: dict[str, Any], defaults: dict[str, Any]) -> LabDevice:
    merged = {**defaults, **(entry or {})}
    boot_entry = dict(merged.pop("boot", None) or {})
    boot_entry["commands"] = tuple(str(c) for c in boot_entry.get("commands", ()))
    boot = BootSpec(**boot_entry)
    if boot.method not in BOOT_METHODS:
        raise UserError(f"{path}: {name}: unknown boot method {boot.method!r}; "
                        f"use one of {', '.join(BOOT_METHODS)}")
    tags = {str(k): str(v) for k, v in (merged.pop("tags", None) or {}).items()}
    if not tags:
        raise UserError(f"{path}: {name} has no tags; give the tags of its places, "
                        "e.g. tags: {board: rpi4}")
    return LabDevice(name=name, boot=boot, tags=tags, **merged)


def load_lab(path: Path) -> dict[str, LabDevice]:
    """Read a lab file: its devices by name; one-line UserError when it is bad."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserError(f"--lkft-lab {path}: {error.strerror}; check the path") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
        raise UserError(f"{path} has no `devices:` mapping; see lab/labgrid-standin.yaml")
    defaults = data.get("defaults") or {}
    try:
        return {str(name): _device(path, str(name), entry, defaults)
                for name, entry in data["devices"].items()}
    except TypeError as error:
        raise UserError(f"{path}: bad device entry ({error}); see docs/lab.md") from None


def labgrid_tool(name: str) -> str:
    """A labgrid command: beside this Python (a venv not on PATH), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def start_client(address: str, *args: str) -> subprocess.Popen[str]:
    """Start labgrid-client against `address` (see `finish_client`)."""
    command = [labgrid_tool("labgrid-client"), "-x", address, *args]
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise UserError("labgrid-client not found: install labgrid (pip install labgrid)") \
            from None
    _RUNNING.append(process)
    return process


def finish_client(process: subprocess.Popen[str], timeout: float = CLIENT_TIMEOUT) -> str:
    """Its stdout once it exits, or one-line InfraError; TimeoutExpired leaves it running."""
    stdout, stderr = process.communicate(timeout=timeout)
    if process in _RUNNING:
        _RUNNING.remove(process)
    if process.returncode == 0:
        return stdout
    address = str(process.args[2])  # type: ignore[index]
    if "Could not connect to coordinator" in stderr:
        raise InfraError(f"cannot reach the labgrid coordinator at {address}; start "
                         "labgrid-coordinator there or pass --lkft-coordinator ADDRESS")
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    raise InfraError(f"{shlex.join(process.args)} failed: {last}")  # type: ignore[arg-type]


def stop_client(process: subprocess.Popen[str]) -> None:
    """Kill a labgrid-client call and reap it."""
    process.kill()
    process.communicate()
    if process in _RUNNING:
        _RUNNING.remove(process)


def labgrid_client(address: str, *args: str, timeout: float = CLIENT_TIMEOUT) -> str:
    """Run labgrid-client against `address`; its stdout, or one-line InfraError."""
    process = start_client(address, *args)
    try:
        return finish_client(process, timeout)
    except subprocess.TimeoutExpired:
        stop_client(process)
        raise


def finish_running_clients(timeout: float = CLIENT_TIMEOUT) -> None:
    """A signal came: stop waiting for a place, let other calls (an acquire) complete."""
    for process in list(_RUNNING):
        if "reserve" in process.args:  # type: ignore[operator]
            stop_client(process)
            continue
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_client(process)


class Coordinator:
    """This process's session with a labgrid coordinator, over labgrid's own gRPC client.

    The first one is also the session labgrid's `RemotePlace` uses, so places acquired
    here are seen acquired there at once. Calls run the session's event loop; while a
    signal handler interrupts one, `busy` is true and callers use labgrid-client instead.
    """

    _connected: dict[str, Coordinator] = {}

    def __init__(self, address: str, session: Any) -> None:
        self.address = address
        self.session = session

    @classmethod
    def connect(cls, address: str) -> Coordinator:
        """The session with `address`, started on first use; one-line InfraError if down."""
        if address not in cls._connected:
            cls._connected[address] = cls(address, _start_session(address))
        return cls._connected[address]

    @property
    def busy(self) -> bool:
        """True while a call is running (a signal handler interrupted it)."""
        return bool(self.session.loop.is_running())

    def call(self, method: str, **fields: Any) -> Any:
        """Send one coordinator request, `method` with its fields; its response."""
        import grpc  # type: ignore[import-untyped]
        from labgrid.remote.generated import (  # type: ignore[import-untyped]
            labgrid_coordinator_pb2 as pb2,
        )

        request = getattr(pb2, f"{method}Request")(**fields)
        try:
            return self.session.loop.run_until_complete(getattr(self.session.stub, method)(request))
        except grpc.aio.AioRpcError as error:
            raise InfraError(f"labgrid coordinator at {self.address}: {method} failed: "
                             f"{error.details()}") from None

    def sync(self) -> None:
        """Wait until the session has every update the coordinator sent so far."""
        self.session.loop.run_until_complete(self.session.sync_with_coordinator())

    def sleep(self, seconds: float) -> None:
        """Wait, letting the session take the coordinator's updates meanwhile."""
        import asyncio

        self.session.loop.run_until_complete(asyncio.sleep(seconds))

    def tagged_places(self, tags: dict[str, str]) -> list[str]:
        """The places that have all `tags`."""
        return sorted(name for name, place in self.session.places.items()
                      if tags.items() <= dict(place.tags).items())


def _start_session(address: str) -> Any:
    """Start labgrid's client session, shared with labgrid's RemotePlace when it has none."""
    from labgrid.resource.remote import RemotePlaceManager  # type: ignore[import-untyped]

    manager = RemotePlaceManager.get()
    if manager.session is not None:
        if manager.url == address:
            return manager.session
        from labgrid.remote.client import start_session  # type: ignore[import-untyped]

        return _or_down(address, lambda: start_session(address, extra={}))
    manager.url, manager.env = address, None
    _or_down(address, manager._start)
    return manager.session


def _or_down(address: str, start: Any) -> Any:
    try:
        return start()
    except Exception:  # grpc and labgrid errors alike: nothing answers there
        raise InfraError(f"cannot reach the labgrid coordinator at {address}; start "
                         "labgrid-coordinator there or pass --lkft-coordinator ADDRESS") from None


@dataclass
class PlaceLease:
    """One place of the lab held by this process: reserved, then acquired, then released.

    Lifecycle: `acquire(timeout)` reserves a place matching `tags`, waits until the
    coordinator allocates one and acquires it; `release()` releases it and cancels the
    reservation, whatever state it got to (safe to call twice, and from a signal handler).
    """

    address: str
    tags: list[str]
    token: str = ""
    place: str = ""
    allocated: str = ""  # allocated to the reservation, maybe acquired (interrupted)

    def acquire(self, timeout: float) -> str:
        """Reserve, wait at most `timeout` seconds, acquire; the place's name."""
        coordinator = Coordinator.connect(self.address)
        wanted = dict(tag.split("=", 1) for tag in self.tags)
        if not coordinator.tagged_places(wanted):
            raise InfraError(f"no place of the lab at {self.address} has the tags "
                             f"{' '.join(self.tags)}; tag one (labgrid-client -p PLACE "
                             "set-tags) or fix the lab file's tags")
        filters = {"main": _pb2().Reservation.Filter(filter=wanted)}
        response = coordinator.call("CreateReservation", filters=filters, prio=0.0)
        self.token = str(response.reservation.token)
        try:
            self.allocated = self._wait(coordinator, timeout)  # ours to release from here on
            coordinator.call("AcquirePlace", placename=self.allocated)
            coordinator.sync()
        except BaseException:
            self.release()
            raise
        self.place, self.allocated = self.allocated, ""
        return self.place

    def _wait(self, coordinator: Coordinator, timeout: float) -> str:
        """Poll the reservation until a place is allocated; the place."""
        deadline = time.monotonic() + timeout
        while True:
            reservation = coordinator.call("PollReservation", token=self.token).reservation
            if reservation.state == RESERVATION_ALLOCATED:
                return str(reservation.allocations["main"])
            if reservation.state != RESERVATION_WAITING:
                raise InfraError(f"the reservation for {' '.join(self.tags)} ended "
                                 f"unallocated; see labgrid-client -x {self.address} "
                                 "reservations")
            if time.monotonic() > deadline:
                raise InfraError(f"no place tagged {' '.join(self.tags)} became free within "
                                 f"{timeout:g} s; free one (labgrid-client -x {self.address} "
                                 "who) or raise --lkft-place-timeout")
            coordinator.sleep(POLL_INTERVAL)

    def release(self) -> None:
        """Release the place and cancel the reservation; errors are not raised."""
        place, token = self.place or self.allocated, self.token
        self.place = self.allocated = self.token = ""
        coordinator = Coordinator._connected.get(self.address)
        if coordinator is not None and not coordinator.busy:
            try:
                self._release_by_session(coordinator, place, token)
                return
            except Exception:  # noqa: BLE001  (an interrupted call broke the session)
                pass
        self._release_by_client(place, token)

    @staticmethod
    def _release_by_session(coordinator: Coordinator, place: str, token: str) -> None:
        for method, fields in (("ReleasePlace", {"placename": place}),
                               ("CancelReservation", {"token": token})):
            if next(iter(fields.values())):
                try:
                    coordinator.call(method, **fields)
                except LkftError:
                    pass  # not acquired (any more), or the coordinator is gone

    def _release_by_client(self, place: str, token: str) -> None:
        """Release through labgrid-client: a signal interrupted this process's session."""
        if token and not place:  # interrupted while acquiring: the token names the place
            place = f"+{token}"
        for args in ([("-p", place, "release")] if place else []) + \
                ([("cancel-reservation", token)] if token else []):
            try:
                labgrid_client(self.address, *args)
            except (LkftError, subprocess.TimeoutExpired):
                pass  # the coordinator is gone: it forgets everything anyway


def _pb2() -> Any:
    from labgrid.remote.generated import labgrid_coordinator_pb2

    return labgrid_coordinator_pb2


class SerialSpawn(_SpawnBase):
    """pexpect over a labgrid ConsoleProtocol driver: a closed connection reads as EOF."""

    def __init__(self, driver: Any) -> None:
        super().__init__(timeout=None, encoding="utf-8", codec_errors="replace")
        self.driver = driver
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> str:
        """Read what the serial has, up to `size` bytes; pexpect's TIMEOUT and EOF."""
        if timeout == -1:
            timeout = self.timeout
        start = time.monotonic()
        try:
            data = self.driver.read(size=1, timeout=timeout, max_size=size)
        except pexpect.TIMEOUT:
            if timeout is not None and time.monotonic() - start < timeout - EARLY_TIMEOUT:
                self.flag_eof = True  # labgrid says TIMEOUT at once when the peer closed
                raise pexpect.EOF("serial console lost: the connection was closed") from None
            raise
        except Exception as error:  # pyserial and socket errors: the connection is gone
            self.flag_eof = True
            raise pexpect.EOF(f"serial console lost: {error}") from None
        text = self.decoder.decode(data)
        if self.logfile_read is not None:
            self.logfile_read.write(text)
        return text

    def send(self, s: str | bytes) -> int:
        """Write to the serial; EOF when the connection is gone."""
        data = s if isinstance(s, bytes) else s.encode()
        try:
            return int(self.driver.write(data))
        except Exception as error:
            self.flag_eof = True
            raise pexpect.EOF(f"serial console lost: {error}") from None

    def sendline(self, s: str = "") -> int:
        """Write a line, as pexpect.spawn does."""
        return self.send(s + "\n")

    def isalive(self) -> bool:
        """True until the connection was seen closed."""
        return not self.flag_eof


class SerialConsole(Console):
    """`Console` on a board's serial line: same framing, log and crash detection."""

    def __init__(self, log: ConsoleLog) -> None:
        super().__init__([], log)
        self.driver: Any = None

    def attach(self, driver: Any) -> None:
        """Read and write through the labgrid console driver."""
        self.driver = driver
        self.start()

    def start(self) -> None:
        """Wrap the driver for pexpect; what it reads goes to the console log."""
        spawn = SerialSpawn(self.driver)
        spawn.logfile_read = self.log
        # Console uses only SpawnBase's API (expect, sendline, before, match).
        self.child = spawn  # type: ignore[assignment]

    def uboot(self, spec: BootSpec, values: dict[str, str], timeout: float) -> None:
        """Stop autoboot, run the lab file's commands, leave with the last (the boot)."""
        deadline = time.monotonic() + timeout
        self._expect_boot(re.escape(spec.interrupt), "no U-Boot autoboot prompt", deadline)
        self.spawned.send("\n")
        self._expect_boot(re.escape(spec.prompt), "no U-Boot prompt", deadline)
        commands = [_fill(command, values) for command in spec.commands]
        for index, command in enumerate(commands):
            self.spawned.sendline(command)
            if index == len(commands) - 1:
                return  # the boot command: the kernel's output follows
            self._expect_boot(re.escape(spec.prompt), f"U-Boot did not finish {command!r}",
                              deadline)
            if UBOOT_ERROR.search(str(self.spawned.before)):
                raise BootError(self._why(f"U-Boot failed at {command!r}"))

    def run(self, command: str, timeout: float) -> CommandResult:
        """As Console.run; a write to a lost serial is DeviceBroken too."""
        lost = f"the serial console was lost while running {command!r}"
        try:
            return super().run(command, timeout)
        except pexpect.ExceptionPexpect as error:
            raise DeviceBroken(self._why(f"{lost} ({error})")) from None
        except DeviceBroken:
            if self.child is None or not self.child.flag_eof:
                raise
            raise DeviceBroken(self._why(lost)) from None

    def stop(self) -> None:
        """Nothing to kill: the board is powered off by its device; keep the log."""
        self.log.flush()


def wait_for_session_view(place: str, timeout: float) -> None:
    """Let this process's labgrid session see `place` acquired (labgrid-client acquired it).

    labgrid keeps one coordinator session per process and updates its copy of the places
    only while its event loop runs; a second place acquired later (two lab devices in one
    process) would otherwise look "not acquired" to it.
    """
    import asyncio

    from labgrid.resource.remote import RemotePlaceManager

    manager = RemotePlaceManager.get()
    deadline = time.monotonic() + timeout
    while manager.session is not None and time.monotonic() < deadline:
        known = manager.session.places.get(place)
        if known is not None and known.acquired:
            return
        manager.loop.run_until_complete(asyncio.sleep(0.1))


def _fill(command: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        command = command.replace(f"{{{key}}}", value)
    return command


def _write_atomically(path: Path, data: bytes | Path) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    if isinstance(data, Path):
        shutil.copyfile(data, partial)
    else:
        partial.write_bytes(data)
    os.replace(partial, path)


class LabgridDevice(ConsoleDevice):
    """One board on a leased place for one suite run; see `pytest_lkft.devices.base.Device`.

    Lifecycle: `boot()` stages kernel, initramfs (rootfs plus overlays), dtb and command
    line into the place's tftp directory, powers the board off, opens the serial console,
    powers it on and waits for a shell; `close()` powers it off and closes the console.
    The place stays acquired: its lease belongs to the process, not to a suite run.
    """

    def __init__(self, spec: LabDevice, lease: PlaceLease, artifacts: DeviceArtifacts,
                 run_dir: Path, timeouts: Timeouts, stream: TextSink | None = None) -> None:
        super().__init__(spec.name, spec.arch, artifacts, run_dir, timeouts, stream)
        self.spec = spec
        self.lease = lease
        self.console: SerialConsole | None = None
        self.target: Any = None
        self.metadata = {"device": spec.name, "arch": spec.arch, "place": lease.place,
                         "labgrid_coordinator": lease.address, **artifacts.metadata}

    def environment_config(self) -> dict[str, Any]:
        """The labgrid environment of the leased place: RemotePlace plus the drivers."""
        return {"targets": {"main": {"resources": {"RemotePlace": {"name": self.lease.place}},
                                     "drivers": self.spec.drivers}},
                "options": {"coordinator_address": self.lease.address}}

    def _target(self) -> Any:
        from labgrid import Environment  # type: ignore[import-untyped]

        wait_for_session_view(self.lease.place, self.timeouts.boot)
        path = self.run_dir / "labgrid-env.yaml"
        path.write_text(yaml.safe_dump(self.environment_config(), sort_keys=False))
        return Environment(str(path)).get_target("main")

    def command_line(self) -> str:
        """The kernel command line the board boots with."""
        return " ".join(filter(None, [f"console={self.spec.console}", "panic=-1",
                                      self.artifacts.boot_args]))

    def _tftp_files(self) -> dict[str, Path]:
        """The files to stage, under the names the board's boot looks for."""
        local = self.run_dir / "tftp"
        local.mkdir(parents=True, exist_ok=True)
        rootfs = self.artifacts.rootfs
        if rootfs is None or rootfs.name.endswith((".ext4", ".ext4.gz", ".ext4.xz", ".img")):
            raise UserError(f"{self.name} boots an initramfs over tftp; pass --lkft-rootfs as "
                            "a cpio archive (or nothing, for the default busybox one)")
        initrd = local / "initrd"
        with initrd.open("wb") as out:
            for part in [rootfs, *self.artifacts.overlays]:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        (local / "cmdline").write_text(self.command_line() + "\n")
        files = {"Image": self.artifacts.kernel, "initrd": initrd, "cmdline": local / "cmdline"}
        if self.artifacts.dtb is not None:
            files["dtb"] = self.artifacts.dtb
        return files

    def stage(self) -> dict[str, str]:
        """Put the files into the place's tftp directory; their paths as the board sees them."""
        provider = self.target.get_resource("RemoteTFTPProvider")
        files = self._tftp_files()
        staged = {"tftp_host": str(provider.host)}
        local = provider.host in LOCAL_HOSTS or provider.host in (socket.gethostname(),
                                                                   socket.getfqdn())
        for name, path in files.items():
            if local:  # the exporter runs here: copy, no ssh
                _write_atomically(Path(provider.internal) / name, path)
                staged[name] = provider.external + name
            else:
                named = self.run_dir / "tftp" / name
                if named != path:
                    _write_atomically(named, path)
                driver = self.target.get_driver("TFTPProviderDriver")
                staged[name] = str(driver.stage(str(named)))
        return {"kernel": staged["Image"], "initrd": staged["initrd"],
                "dtb": staged.get("dtb", ""), "cmdline": self.command_line(),
                "tftp_host": staged["tftp_host"]}

    def _write_reproducer(self) -> None:
        client = f"labgrid-client -x {shlex.quote(self.lease.address)} -p " \
                 f"{shlex.quote(self.lease.place)}"
        script = self.run_dir / "reproducer.sh"
        _write_atomically(script, (
            f"#!/bin/sh\n# {self.name} on place {self.lease.place}: boot as pytest-lkft did\n"
            f"# (files staged into the place's tftp directory: {self.run_dir / 'tftp'})\n"
            f"set -e\n{client} acquire\ntrap '{client} release' EXIT\n"
            f"{client} power off\n{client} power on\n{client} console\n").encode())
        script.chmod(0o755)

    def boot(self) -> None:
        """Power the board on and reach a shell, once; a failure is kept, not raised."""
        if self.console is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.detector.context = "boot"
        self.console = SerialConsole(ConsoleLog(self.console_log, self.detector, self.stream))
        try:
            self._power_on_to_shell(self.console)
        except LkftError as error:
            self.boot_error = self.broken = str(error)
        except Exception as error:  # labgrid raises many kinds: each is the lab failing
            self.boot_error = self.broken = (f"{self.name} on place {self.lease.place}: labgrid "
                                             f"failed: {type(error).__name__}: {error}")
        self.metadata["kernel_version"] = self.console.kernel_version

    def _power_on_to_shell(self, console: SerialConsole) -> None:
        self._write_reproducer()
        self.target = self._target()
        staged = self.stage()
        power = self.target.get_driver("PowerProtocol")
        power.off()
        console.attach(self.target.get_driver("ConsoleProtocol"))
        power.on()
        start = time.monotonic()
        if self.spec.boot.method == "uboot":
            console.uboot(self.spec.boot, staged, self.timeouts.boot)
        self.boot_time = console.boot(self.timeouts.boot - (time.monotonic() - start))

    @property
    def booted(self) -> bool:
        """True once a boot was attempted (whatever its outcome)."""
        return self.console is not None

    def close(self) -> None:
        """Power the board off and close its console; the place stays with the process."""
        if self.target is not None:
            try:
                self.target.get_driver("PowerProtocol").off()
                self.target.deactivate_all_drivers()
            except Exception:  # noqa: BLE001  (the lab may be gone; the lease still ends)
                pass
            self.target = None
        if self.console is not None:
            self.console.stop()
            self.console.log.close()
