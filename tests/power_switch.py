"""A network power switch for stand-in boards: the tests' stand-in for a physical one.

The only mock-like part of the labgrid tests. Each outlet powers one stand-in board: a
QEMU whose "firmware" boots `Image` and `initrd` with the kernel command line in
`cmdline`, all read from the board's tftp directory at power-on, as a Raspberry Pi's
network boot reads its files; or, for a U-Boot board, Debian's U-Boot for QEMU, which
loads them over tftp as the lab file's commands say. The board's serial line is a pty
that lives as long as the switch does (as a USB serial adapter outlives power cycles);
labgrid-exporter exports its slave side through ser2net. labgrid's NetworkPowerDriver
(model `rest`) talks to it:

    GET /outlet/<index>          -> "1" or "0"
    PUT /outlet/<index>  body 1|0   power the board on or off

    python tests/power_switch.py CONFIG.json STATE.json

CONFIG: {"outlets": {"1": {"qemu": [...machine argv...], "tftp": DIR}}}; an outlet with
"bios" (U-Boot) and "tftp_root" boots U-Boot with QEMU's tftp server on that root; one
with "firmware_delay" (seconds) starts QEMU that long after power-on, as a real board's
firmware takes a while before the kernel runs (on the board's own CPU, not the host's). Once
listening on 127.0.0.1, STATE gets {"pid", "port", "serial": {"1": "/dev/pts/N"}}.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import tty
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any


@dataclass
class Outlet:
    """One board: its QEMU argv prefix, tftp directory and persistent serial pty."""

    qemu: list[str]
    tftp: Path
    bios: str = ""  # a U-Boot board: firmware that loads over tftp from `tftp_root`
    tftp_root: str = ""
    firmware_delay: float = 0.0  # seconds from power-on to QEMU starting
    master: int = -1
    slave: int = -1
    process: subprocess.Popen[bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_serial(self) -> str:
        """Create the pty; the slave's path is what the exporter serves."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo of the board's output back into the board
        return os.ttyname(self.slave)

    def command(self) -> list[str]:
        """The board's QEMU command: U-Boot with a tftp server, or what its directory holds."""
        board = [*self.qemu, "-display", "none", "-monitor", "none", "-serial", "stdio"]
        if self.bios:
            return [*board, "-bios", self.bios, "-netdev", f"user,id=n0,tftp={self.tftp_root}",
                    "-device", "virtio-net-device,netdev=n0"]
        cmdline = (self.tftp / "cmdline").read_text().strip()
        command = [*board, "-kernel", str(self.tftp / "Image"), "-initrd",
                   str(self.tftp / "initrd"), "-append", cmdline]
        if self.firmware_delay:  # sh sleeps, then becomes QEMU: power-off kills either
            return ["sh", "-c", f'sleep {self.firmware_delay:g}; exec "$@"', "sh", *command]
        return command

    def power(self, on: bool) -> None:
        """Start or stop the board's QEMU; powering an on board on again is a no-op."""
        with self.lock:
            if on and not self.is_on():
                self.process = subprocess.Popen(self.command(), stdin=self.master,
                                                stdout=self.master, stderr=subprocess.DEVNULL)
            elif not on and self.process is not None:
                self.process.kill()
                self.process.wait()
                self.process = None

    def is_on(self) -> bool:
        """True while the board's QEMU runs."""
        return self.process is not None and self.process.poll() is None


class Handler(BaseHTTPRequestHandler):
    """GET and PUT /outlet/<index>."""

    outlets: dict[str, Outlet] = {}

    def _outlet(self) -> Outlet | None:
        prefix, _, index = self.path.rpartition("/")
        outlet = self.outlets.get(index) if prefix == "/outlet" else None
        if outlet is None:
            self._answer(404, f"no outlet {self.path}; use /outlet/<index>\n")
        return outlet

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        outlet = self._outlet()
        if outlet is not None:
            self._answer(200, "1" if outlet.is_on() else "0")

    def do_PUT(self) -> None:  # noqa: N802
        outlet = self._outlet()
        if outlet is None:
            return
        value = self.rfile.read(int(self.headers.get("Content-Length", "0"))).strip()
        if value not in (b"0", b"1"):
            self._answer(400, "send 0 or 1\n")
            return
        try:
            outlet.power(value == b"1")
        except OSError as error:
            self._answer(500, f"cannot power on: {error}\n")
            return
        self._answer(200, value.decode())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"power switch: {format % args}\n")


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so a reader never sees half of it."""
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def main(config_path: str, state_path: str) -> None:
    """Serve the outlets of CONFIG until SIGTERM, then power every board off."""
    config = json.loads(Path(config_path).read_text())
    outlets = {index: Outlet(list(entry["qemu"]), Path(entry["tftp"]), entry.get("bios", ""),
                             entry.get("tftp_root", ""), float(entry.get("firmware_delay", 0)))
               for index, entry in config["outlets"].items()}
    serial = {index: outlet.open_serial() for index, outlet in outlets.items()}
    Handler.outlets = outlets
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_atomically(Path(state_path), {"pid": os.getpid(), "port": server.server_address[1],
                                        "serial": serial})
    try:
        server.serve_forever()
    finally:
        for outlet in outlets.values():
            outlet.power(False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
