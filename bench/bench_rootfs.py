"""The Debian rootfs: building it against mmdebstrap run bare, and booting it against busybox.

    python bench/bench_rootfs.py [--arch arm64] [--rounds 3] [--boot-rounds 5]

(a) Building, cold: `lkft rootfs build --arch ARCH --suites <all> --format dir` into an
    empty cache, against `mmdebstrap --variant=extract` of the same packages, the same
    apt and dpkg options, the same sources, into an empty directory (as root: mmdebstrap's
    own choice of mode), alternating rounds, medians; target <= 1.05. Ours adds the
    archive's snapshot (three InRelease downloads), chrootless mode under fakeroot and
    its extract hook. Also against mmdebstrap as a user without root must run it
    (chrootless under `fakeroot -s`): the tool's own cost of building without root.
(b) The same, cached: `lkft rootfs build` again on the same cache (what every later run
    costs), against the bare mmdebstrap (which has no cache).
(c) The ext4 image: `lkft rootfs build --format ext4` cold against the bare mmdebstrap
    then `mke2fs -d` of its directory (the same image, as root), and against the same
    without root (chrootless under `fakeroot -s`, then `mke2fs -d` in that fakeroot
    session, as ours does).
(d) Boot to the shell on qemu-arm64 with Debian's cloud-arm64 kernel: the Debian rootfs
    (ext4 behind the loader) against the busybox initramfs, the QEMU commands the plugin
    makes, run bare, alternating, medians (there is no target: the cost of the tools).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pexpect

from pytest_lkft.artifacts.cache import ArtifactCache
from pytest_lkft.devices.qemu import QemuDevice
from pytest_lkft.provision.debian import apt_sources, mmdebstrap_command, rootfs_packages
from pytest_lkft.provision.device import provision
from pytest_lkft.settings.device import SHELL_PROMPTS, Settings, Timeouts
from pytest_lkft.settings.devices import load_devices
from pytest_lkft.settings.rootfs import load_needs, load_recipe

SUITES = ",".join(sorted(load_needs()))
SHARED = Path.home() / ".cache" / "lkft-test" / "artifacts"


def timed(run: Callable[..., object], *args: object) -> float:
    start = time.monotonic()
    run(*args)
    return time.monotonic() - start


def ours(cache: Path, arch: str, fmt: str) -> None:
    subprocess.run([sys.executable, "-m", "pytest_lkft.cli", "rootfs", "build", "--arch", arch,
                    "--suites", SUITES, "--format", fmt, f"--cache-dir={cache}"],
                   check=True, capture_output=True)


def bare(target: Path, arch: str, ext4: bool, rootless: bool = False) -> None:
    """mmdebstrap of the same packages: in the mode it picks (as root), or `rootless` as a
    user without root runs it (chrootless, under fakeroot: what ours runs, bare)."""
    packages = rootfs_packages(p for n in load_needs().values() for p in n.packages)
    command = mmdebstrap_command(arch, packages, target, apt_sources(load_recipe().release))
    if rootless:
        command = ["fakeroot", "-s", f"{target}.state", "--", *command]
    else:
        command.remove("--mode=chrootless")  # a user's run: mmdebstrap picks its mode
    subprocess.run(command, check=True, capture_output=True)
    if ext4:
        size = int(subprocess.run(["du", "-sm", str(target)], capture_output=True, text=True,
                                  check=True).stdout.split()[0]) * 6 // 5 + 256
        mke2fs = ["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(target), f"{target}.ext4",
                  f"{size}M"]
        if rootless:  # root's files only in the fakeroot session that made them
            mke2fs = ["fakeroot", "-i", f"{target}.state", "--", *mke2fs]
        subprocess.run(mke2fs, check=True, capture_output=True)


def building(arch: str, rounds: int, fmt: str) -> dict[str, list[float]]:
    """Seconds of ours (cold, cached) and of mmdebstrap bare (its mode; rootless),
    alternating rounds."""
    times: dict[str, list[float]] = {"cold": [], "cached": [], "bare": [], "rootless": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            work = Path(tmp)
            times["bare"].append(timed(bare, work / "bare", arch, fmt == "ext4"))
            times["cold"].append(timed(ours, work / "cache", arch, fmt))
            times["cached"].append(timed(ours, work / "cache", arch, fmt))
            times["rootless"].append(timed(bare, work / "rootless", arch, fmt == "ext4", True))
    return times


def boot_commands(device: str, work: Path) -> dict[str, list[str]]:
    """The plugin's QEMU command for the busybox initramfs and for the Debian rootfs."""
    spec = load_devices().get(device)
    commands = {}
    with ArtifactCache(SHARED) as cache:
        for name, rootfs in (("busybox", None), ("debian", "debian")):
            settings = Settings(devices=(device,), rootfs=rootfs, tests=("perf",))
            artifacts = provision(settings, spec, cache.fetch, SHARED)
            commands[name] = QemuDevice(spec, artifacts, work / name, Timeouts()).command()
    return commands


def time_to_shell(command: list[str], timeout: float = 300) -> float:
    start = time.monotonic()
    child = pexpect.spawn(command[0], command[1:], encoding="utf-8", codec_errors="replace",
                          timeout=timeout, dimensions=(50, 1000), searchwindowsize=4096)
    try:
        child.expect("lkft: init done")
        child.expect(list(SHELL_PROMPTS))
        return time.monotonic() - start
    finally:
        child.terminate(force=True)
        child.close(force=True)


def show(name: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"{name:34s}: {median:7.2f} s  ({' '.join(f'{x:.2f}' for x in values)})")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="arm64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--boot-rounds", type=int, default=5)
    parser.add_argument("--device", default="qemu-arm64")
    args = parser.parse_args()
    if shutil.which("mmdebstrap") is None:
        raise SystemExit("mmdebstrap not found: apt-get install mmdebstrap fakeroot")
    print(f"Debian rootfs for {args.arch}, suites {SUITES}, {args.rounds} rounds")
    for fmt in ("dir", "ext4"):
        times = building(args.arch, args.rounds, fmt)
        base = show(f"mmdebstrap bare{' + mke2fs -d' if fmt == 'ext4' else ''}", times["bare"])
        ours_cold = show(f"lkft rootfs build --format {fmt} cold", times["cold"])
        ours_cached = show(f"lkft rootfs build --format {fmt} cached", times["cached"])
        print(f"ratio cold / bare: {ours_cold / base:.3f} (target <= 1.05); cached / bare: "
              f"{ours_cached / base:.3f}")
        if times["rootless"]:
            rootless = show(f"mmdebstrap bare, chrootless + fakeroot"
                            f"{' + mke2fs -d' if fmt == 'ext4' else ''}", times["rootless"])
            print(f"ratio cold / bare without root: {ours_cold / rootless:.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        commands = boot_commands(args.device, Path(tmp))
        times: dict[str, list[float]] = {"busybox": [], "debian": []}
        for _ in range(args.boot_rounds):
            for name, command in commands.items():
                times[name].append(time_to_shell(command))
    print(f"boot to the shell on {args.device}, Debian's cloud kernel, {args.boot_rounds} rounds")
    busybox = show("busybox initramfs", times["busybox"])
    debian = show("Debian rootfs (ext4, loader)", times["debian"])
    print(f"ratio Debian / busybox: {debian / busybox:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
