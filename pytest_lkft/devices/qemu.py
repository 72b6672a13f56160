"""QEMU devices: the command line from the lab's device table, a console, a reproducer."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import shlex
import shutil
import subprocess
import threading
from pathlib import Path

from pytest_lkft.devices.base import ConsoleDevice
from pytest_lkft.devices.console import Console, ConsoleLog, TextSink
from pytest_lkft.errors import LkftError, UserError
from pytest_lkft.files import atomically, write_atomically
from pytest_lkft.provision.device import DeviceArtifacts
from pytest_lkft.provision.kernelimage import image_banner, kernel_facts
from pytest_lkft.provision.rootfs import decompress_to, rootfs_kind
from pytest_lkft.settings.device import Timeouts
from pytest_lkft.settings.devices import QemuSpec


def qemu_package_hint(spec: QemuSpec, binary: str) -> str:
    """One line: the QEMU binary is missing, which package has it."""
    return (f"{binary} not found: install it with `apt-get install {spec.apt}`, "
            "or pass --lkft-qemu-binary")


def kernel_cmdline(spec: QemuSpec, root: list[str], boot_args: str) -> str:
    """The kernel command line: the device's console, the rootfs's, then the user's."""
    return " ".join([f"console={spec.console}", *root, "panic=-1", boot_args]).strip()


def check_cmdline(spec: QemuSpec, cmdline: str, source: str = "--lkft-boot-args") -> None:
    """Refuse a command line longer than the device's kernel takes (it would cut it short,
    or not start at all)."""
    size = len(cmdline.encode())
    if spec.cmdline_size is not None and size >= spec.cmdline_size:
        raise UserError(f"the kernel command line is {size} bytes but {spec.name}'s kernel "
                        f"takes at most {spec.cmdline_size - 1} (COMMAND_LINE_SIZE "
                        f"{spec.cmdline_size}); shorten {source}")


@functools.cache
def qemu_version(binary: str) -> str:
    """`QEMU emulator version 7.2.x` -> `7.2.x`."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (out.stdout.splitlines() or ["unknown"])[0]
    return first.removeprefix("QEMU emulator version ").strip()


class QemuDevice(ConsoleDevice):
    """One QEMU guest for one suite run; see `pytest_lkft.devices.base.Device`."""

    def __init__(self, spec: QemuSpec, artifacts: DeviceArtifacts, run_dir: Path,
                 timeouts: Timeouts, stream: TextSink | None = None) -> None:
        super().__init__(spec.name, spec.arch, artifacts, run_dir, timeouts, stream)
        self.spec = spec
        self.console: Console | None = None
        self.attempted = False
        self.restarts = 0
        self.binary = artifacts.qemu_binary or spec.qemu
        self.metadata = {"device": spec.name, "arch": spec.arch, **artifacts.metadata}

    def _root_args(self) -> tuple[list[str], list[str]]:
        """QEMU arguments and kernel arguments that attach the rootfs."""
        rootfs, disk = self.artifacts.rootfs, self.artifacts.disk
        disk_args: list[str] = []
        disk_cmdline: list[str] = []
        if disk is not None:  # an ext4 root the loader initramfs mounts
            disk_args, disk_cmdline = self._drive(disk), [f"lkft.root={self._root_device()}"]
        if rootfs is None:
            return disk_args, disk_cmdline
        if rootfs_kind(rootfs) == "ext4":
            if self.artifacts.overlays:
                raise UserError(f"{rootfs}: modules or overlays need a cpio rootfs; "
                                "pass --lkft-rootfs as a cpio archive")
            raw = decompress_to(rootfs, self.run_dir / "rootfs.ext4")
            args = self._drive(raw)
            if self.artifacts.initrd is not None:  # it mounts the disk (the Debian rootfs)
                args += ["-initrd", str(self.artifacts.initrd)]
            return args, [f"root={self._root_device()}", "rw", "rootwait"]
        return ["-initrd", str(self._initrd(rootfs)), *disk_args], disk_cmdline

    def _drive_spec(self) -> QemuSpec:
        """The device's spec with the drive its kernel can reach (Debian's kernels: the
        artifacts' drive)."""
        if self.artifacts.drive is None:
            return self.spec
        return dataclasses.replace(self.spec, drive=self.artifacts.drive)

    def _root_device(self) -> str:
        return "/dev/vda" if "virtio" in self._drive_spec().drive else "/dev/sda"

    def _drive(self, image: Path) -> list[str]:
        """The device's drive holding `image`, in snapshot mode (the image is never written)."""
        args = self._drive_spec().drive_args(image)
        args[args.index(next(a for a in args if "file=" in a))] += ",snapshot=on"
        return args

    def _initrd(self, rootfs: Path) -> Path:
        """The rootfs with overlays appended (the kernel unpacks concatenated archives),
        made once beside the overlays (in the cache), not copied into every suite's run."""
        if not self.artifacts.overlays:
            return rootfs
        parts = [rootfs, *self.artifacts.overlays]
        key = hashlib.sha256("\0".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                                       for p in parts).encode()).hexdigest()[:32]
        combined = self.artifacts.overlays[0].parent / f"initrd-{key}.img"
        if combined.exists():
            return combined
        with atomically(combined) as partial, partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        return combined

    def command(self) -> list[str]:
        """The exact QEMU command line for this run."""
        spec = self.spec
        root_args, root_cmdline = self._root_args()
        cmdline = kernel_cmdline(spec, root_cmdline, self.artifacts.boot_args)
        check_cmdline(spec, cmdline)
        memory = self.artifacts.memory or spec.memory
        command = [self.binary, "-M", spec.machine, "-cpu", spec.cpu, "-m", str(memory),
                   "-smp", str(spec.smp), "-nographic", "-no-reboot",
                   "-kernel", str(self.artifacts.kernel), *root_args, "-append", cmdline]
        if self.artifacts.dtb is not None:
            command += ["-dtb", str(self.artifacts.dtb)]
        return command + list(spec.extra_args)

    def _write_reproducer(self, command: list[str]) -> None:
        write_atomically(self.run_dir / "reproducer.sh",
                         f"#!/bin/sh\n# {self.name}: boot as pytest-lkft did\n"
                         f"exec {shlex.join(command)}\n", mode=0o755)

    def boot(self) -> None:
        """Start QEMU and reach a shell, once; a failure is kept in `boot_error`, not raised."""
        if self.attempted:
            return
        self.attempted = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.detector.context = "boot"
        self.metadata.update(kernel_facts(image_banner(self.artifacts.kernel)))  # boot or not
        try:
            command = self.command()
            self._write_reproducer(command)
            messages = self.spec.boot_messages.given(self.artifacts.kernel_start_message,
                                                     self.artifacts.prompts)
            self.console = Console(command, ConsoleLog(self.console_log, self.detector,
                                                       self.stream, append=self.restarts > 0),
                                   messages)
            self.console.start()
            # asked while the guest boots, not after it (25 ms on the boot's path)
            threading.Thread(target=qemu_version, args=(self.binary,), daemon=True).start()
            self.boot_time = self.console.boot(self.timeouts.boot, self.timeouts.silence)
            self.metadata.update(kernel_facts(self.console.kernel_banner))
        except (LkftError, OSError) as error:
            self.boot_error = self.broken = str(error)
        self.metadata["qemu_version"] = qemu_version(self.binary)

    def restart(self) -> None:
        """Boot afresh after the device broke (a panic, a hang): a new QEMU whose console
        continues the same console.log; the crashes seen so far stay on record."""
        self.close()
        self.restarts += 1
        self.attempted = False
        self.broken = self.boot_error = None
        self.detector.new_boot()
        self.boot()

    @property
    def booted(self) -> bool:
        """True once a boot was attempted (whatever its outcome)."""
        return self.attempted

    def relocate(self, run_dir: Path) -> None:
        """Say the run directory moved (the pre-booted device joined a suite run)."""
        old = str(self.run_dir)
        self.run_dir = run_dir
        self.console_log = run_dir / "console.log"
        script = run_dir / "reproducer.sh"
        if script.exists():  # files it names (initrd, ext4 copy) moved with the directory
            write_atomically(script, script.read_text().replace(old, str(run_dir)), 0o755)

    def close(self) -> None:
        """Stop QEMU; the console log stays."""
        if self.console is not None:
            self.console.stop()
            self.console.log.close()
