"""A real labgrid lab on 127.0.0.1 for the tests: coordinator, exporter, stand-in boards.

Every part is a real process started here and stopped by its PID: labgrid-coordinator,
labgrid-exporter (which runs ser2net for each board's serial line) and the stand-in
power switch of `tests/power_switch.py` (the only mock-like part: it stands in for a
physical network power switch, and powers QEMU boards). Places are created with
labgrid-client, tagged `board=qemu-standin` (`board=qemu-standin-uboot` for boards that
boot Debian's U-Boot for QEMU and load the kernel over tftp), as a lab admin would.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pytest_lkft.devices.labgrid import labgrid_tool

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STANDIN_LAB = REPO / "lab" / "labgrid-standin.yaml"
STANDIN_TAGS = {"board": "qemu-standin"}
# A small stand-in board: the Debian arm64 kernel with a busybox initramfs boots in ~2.5 s.
QEMU_MACHINE = ["qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "cortex-a57",
                "-smp", "1", "-no-reboot"]
STANDIN_QEMU = [*QEMU_MACHINE, "-m", "256"]
# A U-Boot board needs room for the tftp'd kernel and initramfs too (Debian's u-boot-qemu).
UBOOT_QEMU = [*QEMU_MACHINE, "-m", "512"]
UBOOT_BIOS = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
UBOOT_TAGS = {"board": "qemu-standin-uboot"}
EXPORTER_NAME = "standin"
# ser2net as labgrid-exporter starts it, but listening on 127.0.0.1 only (tests/bin/ser2net)
SER2NET_SHIM = HERE / "bin"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    """Poll `check()` until true; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {timeout:g} s")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process by PID, SIGKILL it after 10 s, reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def listening_addresses(pid: int) -> list[str]:
    """`address:port` of every TCP socket `pid` listens on (IPv4 and IPv6), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append(f"{decode_address(address)}:{int(port, 16)}")
    return found


def decode_address(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} prints it (host-order 32-bit words) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def child_pids(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (the ser2net processes of an exporter)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@dataclass
class StandinLab:
    """The running lab: its coordinator address and the place of each board."""

    root: Path
    boards: list[str]
    uboot_boards: list[str] = field(default_factory=list)
    coordinator: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    serial: dict[str, str] = field(default_factory=dict)
    firmware_delay: float = 0.0  # seconds a board's firmware takes before QEMU starts

    def client(self, *args: str, check: bool = True) -> str:
        """Run labgrid-client against this lab's coordinator; its stdout."""
        command = [labgrid_tool("labgrid-client"), "-x", self.coordinator, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "LG_COORDINATOR": self.coordinator})
        if check and done.returncode:
            raise AssertionError(f"{shlex.join(command)} failed: {done.stderr.strip()}")
        return done.stdout

    def _start(self, name: str, command: list[str],
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True,  # Ctrl-C in a test reaches us only
                                   env=env)
        self.processes[name] = process
        return process

    def start_power_switch(self) -> int:
        """Start the stand-in power switch; its port."""
        outlets = {str(i): self.outlet(b) for i, b in enumerate(self.all_boards(), 1)}
        for board in self.all_boards():
            self.tftp(board).mkdir(parents=True, exist_ok=True)
        config, state = self.root / "power-switch.json", self.root / "power-switch.state"
        config.write_text(json.dumps({"outlets": outlets}))
        self._start("power-switch", [sys.executable, str(HERE / "power_switch.py"),
                                     str(config), str(state)])
        wait_for("the power switch", state.exists)
        found = json.loads(state.read_text())
        self.serial = {b: found["serial"][str(i)] for i, b in enumerate(self.all_boards(), 1)}
        return int(found["port"])

    def all_boards(self) -> list[str]:
        """Every board, in outlet order (outlet 1 is the first)."""
        return self.boards + self.uboot_boards

    def outlet(self, board: str) -> dict[str, object]:
        """The power switch's configuration of the board's outlet."""
        if board in self.uboot_boards:
            return {"qemu": UBOOT_QEMU, "tftp": str(self.tftp(board)), "bios": UBOOT_BIOS,
                    "tftp_root": str(self.root / "tftp")}
        return {"qemu": STANDIN_QEMU, "tftp": str(self.tftp(board)),
                "firmware_delay": self.firmware_delay}

    def tftp(self, board: str) -> Path:
        """The board's tftp directory (what its firmware boots from)."""
        return self.root / "tftp" / board

    def exporter_config(self, power_port: int) -> str:
        """The exporter's resources: power outlet, serial pty and tftp directory per board."""
        lines = []
        for index, board in enumerate(self.all_boards(), 1):
            lines += [f"{board}:",
                      "  NetworkPowerPort:", "    model: rest",
                      f"    host: 'http://127.0.0.1:{power_port}/outlet/{{index}}'",
                      f"    index: {index}",
                      "  RawSerialPort:", f"    port: {self.serial[board]}", "    speed: 115200",
                      "  TFTPProvider:", f"    internal: {self.tftp(board)}/",
                      f"    external: {board}/"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start power switch, coordinator and exporter; create and tag one place per board."""
        power_port = self.start_power_switch()
        self.coordinator = f"127.0.0.1:{free_port()}"
        self._start("coordinator", [labgrid_tool("labgrid-coordinator"), "--listen",
                                    self.coordinator])
        wait_for("labgrid-coordinator", lambda: self._listening(self.coordinator))
        exporter = self.root / "exporter.yaml"
        exporter.write_text(self.exporter_config(power_port))
        self._start("exporter", [labgrid_tool("labgrid-exporter"), "-c", self.coordinator,
                                 "-n", EXPORTER_NAME, "--hostname", "127.0.0.1", str(exporter)],
                    env={**os.environ, "PATH": f"{SER2NET_SHIM}:{os.environ.get('PATH', '')}"})
        wait_for("labgrid-exporter", lambda: EXPORTER_NAME in self.client("resources",
                                                                          check=False))
        for board in self.all_boards():
            tags = UBOOT_TAGS if board in self.uboot_boards else STANDIN_TAGS
            self.client("-p", board, "create")
            self.client("-p", board, "add-match", f"{EXPORTER_NAME}/{board}/*")
            self.client("-p", board, "set-tags", *(f"{k}={v}" for k, v in tags.items()))

    @staticmethod
    def _listening(address: str) -> bool:
        host, port = address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return False
        return True

    def acquired(self) -> list[str]:
        """Places acquired by anyone now."""
        out = self.client("places", "--acquired")
        return [line.strip() for line in out.splitlines() if line.strip()]

    def reservations(self) -> str:
        """labgrid-client reservations, as printed (empty when none is left)."""
        return self.client("reservations").strip()

    def stop(self) -> None:
        """Stop every process by PID, the exporter first (it stops ser2net)."""
        for name in ("exporter", "coordinator", "power-switch"):
            if name in self.processes:
                stop_process(self.processes[name])

    def ser2net_pids(self, board: str = "") -> list[int]:
        """The exporter's ser2net processes (one per acquired serial port), or `board`'s."""
        pids = child_pids(self.processes["exporter"].pid)
        if not board:
            return pids
        wanted = self.serial[board].encode()
        return [pid for pid in pids if wanted in Path(f"/proc/{pid}/cmdline").read_bytes()]


@contextmanager
def standin_lab(root: Path, boards: list[str], uboot_boards: list[str] | None = None,
                firmware_delay: float = 0.0) -> Iterator[StandinLab]:
    """A running lab with `boards` (and U-Boot ones); everything stopped by PID afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    lab = StandinLab(root, boards, uboot_boards or [], firmware_delay=firmware_delay)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
