"""A board on a leased place, for one suite run: staged, powered, booted to a shell.

labgrid is imported only when a board boots.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from pytest_lkft.devices.base import ConsoleDevice
from pytest_lkft.devices.console import ConsoleLog, TextSink
from pytest_lkft.devices.labgrid.labfile import LabDevice
from pytest_lkft.devices.labgrid.lease import PlaceLease, wait_for_session_view
from pytest_lkft.devices.labgrid.serial import SerialConsole
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.files import write_atomically
from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.provision.kernelimage import image_banner, kernel_facts
from pytest_lkft.settings.device import BootMessages, Timeouts

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class LabgridDevice(ConsoleDevice):
    """One board on a leased place for one suite run; see `pytest_lkft.devices.base.Device`.

    Lifecycle: `boot()` stages kernel, initramfs (rootfs plus overlays), dtb and command
    line into the place's tftp directory, powers the board off, opens the serial console,
    powers it on and waits for a shell; `close()` powers it off and closes the console.
    The place stays acquired, and its labgrid target bound: both belong to the process,
    not to a suite run.
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
        """The place's labgrid target: made on its first boot in this process, then kept
        with the lease, drivers active, for the next suite runs (activating labgrid drivers
        waits on its resource polling, about 2 s a board)."""
        path = self.run_dir / "labgrid-env.yaml"
        path.write_text(yaml.safe_dump(self.environment_config(), sort_keys=False))
        if self.lease.target is None:
            from labgrid import Environment  # type: ignore[import-untyped]

            wait_for_session_view(self.lease.place, self.timeouts.boot)
            self.lease.target = Environment(str(path)).get_target("main")
        return self.lease.target

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
        provider = self.target.get_resource("RemoteTFTPProvider", wait_avail=False)
        if not provider.avail:  # not yet exported: wait as labgrid does
            provider = self.target.get_resource("RemoteTFTPProvider")
        files = self._tftp_files()
        staged = {"tftp_host": str(provider.host)}
        local = provider.host in LOCAL_HOSTS or provider.host in (socket.gethostname(),
                                                                   socket.getfqdn())
        for name, path in files.items():
            if local:  # the exporter runs here: copy, no ssh
                write_atomically(Path(provider.internal) / name, path)
                staged[name] = provider.external + name
            else:
                named = self.run_dir / "tftp" / name
                if named != path:
                    write_atomically(named, path)
                driver = self.target.get_driver("TFTPProviderDriver")
                staged[name] = str(driver.stage(str(named)))
        return {"kernel": staged["Image"], "initrd": staged["initrd"],
                "dtb": staged.get("dtb", ""), "cmdline": self.command_line(),
                "tftp_host": staged["tftp_host"]}

    def _write_reproducer(self) -> None:
        client = (f"labgrid-client -x {shlex.quote(self.lease.address)} -p "
                  f"{shlex.quote(self.lease.place)}")
        script = self.run_dir / "reproducer.sh"
        write_atomically(script, (
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
        messages = BootMessages().given(self.artifacts.kernel_start_message,
                                        self.artifacts.prompts)
        self.console = SerialConsole(ConsoleLog(self.console_log, self.detector, self.stream),
                                     messages)
        try:
            self._power_on_to_shell(self.console)
        except LkftError as error:
            self.boot_error = self.broken = str(error)
        except Exception as error:  # labgrid raises many kinds: each is the lab failing
            self.boot_error = self.broken = (f"{self.name} on place {self.lease.place}: labgrid "
                                             f"failed: {type(error).__name__}: {error}")
        self.metadata.update(kernel_facts(self.console.kernel_banner
                                          or image_banner(self.artifacts.kernel)))

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
        self.boot_time = console.boot(self.timeouts.boot - (time.monotonic() - start),
                                      self.timeouts.silence)

    def _drop_target(self) -> None:
        try:
            self.target.deactivate_all_drivers()
        except Exception:  # noqa: BLE001  (the serial or the exporter is gone already)
            pass
        self.lease.target = None

    @property
    def booted(self) -> bool:
        """True once a boot was attempted (whatever its outcome)."""
        return self.console is not None

    def close(self) -> None:
        """Power the board off; the place and its labgrid target stay with the process.

        After a failure (a lost console, a failed boot) the target's drivers are
        deactivated and the target dropped, so the next suite run connects anew.
        """
        if self.target is not None:
            try:
                self.target.get_driver("PowerProtocol").off()
            except Exception:  # noqa: BLE001  (the lab may be gone; the lease still ends)
                self.broken = self.broken or "labgrid could not power the board off"
            if self.broken is not None:
                self._drop_target()
            self.target = None
        if self.console is not None:
            self.console.stop()
            self.console.log.close()
