"""Default artifacts from the distribution: Debian's kernel and a busybox initramfs.

The packages come through `pytest_lkft.artifacts.apt` (a private apt state per
architecture); what was resolved is recorded beside the files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_lkft.artifacts.apt import Apt, extract_member
from pytest_lkft.errors import DownloadError, UserError
from pytest_lkft.files import write_atomically
from pytest_lkft.provision.rootfs import ROOTFS_VERSION, busybox_initramfs
from pytest_lkft.settings.devices import DebianSource, QemuSpec

Fetch = Callable[[str, "str | None"], Path]


@dataclass(frozen=True)
class DefaultArtifacts:
    """What a device boots when the user gives no kernel and no rootfs; also the kernel's
    package (its modules) and config, and the static busybox (the Debian rootfs's loader)."""

    kernel: Path
    rootfs: Path
    kernel_package: str
    busybox_package: str
    kernel_deb: Path
    kernel_config: Path
    busybox: Path


def default_artifacts(spec: QemuSpec, cache_root: Path, fetch: Fetch,
                      flavour: str | None = None) -> DefaultArtifacts:
    """Kernel and busybox initramfs for `spec` from its Debian architecture's packages
    (the kernel of `flavour`, default the device's).

    What apt resolved is recorded beside the files, so later runs ask apt nothing until
    the package lists are refreshed (daily).
    """
    if spec.debian is None:
        raise UserError(
            f"{spec.name} has no default kernel and rootfs (Debian ships none for it); "
            f"pass --lkft-kernel (a {spec.kernel_image}) and --lkft-rootfs"
        )
    apt = Apt(spec.debian.arch, cache_root / "apt" / spec.debian.arch)
    apt.update()
    out = cache_root / "defaults" / spec.debian.arch
    out.mkdir(parents=True, exist_ok=True)
    flavour = flavour or spec.debian.flavour
    record = out / f"{flavour}-{ROOTFS_VERSION}.json"
    found = _read_record(record, apt.root / "updated")
    if found is None:
        found = _resolve(apt, spec.debian, flavour, out, fetch)
        write_atomically(record, json.dumps(
            {k: str(v) for k, v in dataclasses.asdict(found).items()}).encode())
    return found


def _resolve(apt: Apt, debian: DebianSource, flavour: str, out: Path,
             fetch: Fetch) -> DefaultArtifacts:
    package = apt.kernel_package(flavour)
    url, sha = apt.locate(package)
    deb = fetch(url, sha)
    kernel = extract_member(deb, debian.image, out / f"{package}.kernel")
    config = extract_member(deb, "boot/config-*", out / f"{package}.config")
    busybox = static_busybox(apt, out, fetch)
    rootfs = out / f"rootfs-{busybox.name.removeprefix('busybox-')}-{ROOTFS_VERSION}.cpio.gz"
    if not rootfs.exists():
        write_atomically(rootfs, busybox_initramfs(busybox))
    return DefaultArtifacts(kernel, rootfs, package, "busybox-static", deb, config, busybox)


def default_dtb(spec: QemuSpec, defaults: DefaultArtifacts, cache_root: Path) -> Path | None:
    """The device tree the default kernel boots with on `spec` (its `debian.dtb`, from the
    kernel's package), None when the device names none."""
    if spec.debian is None or spec.debian.dtb is None:
        return None
    name = Path(spec.debian.dtb).name
    out = cache_root / "defaults" / spec.debian.arch / f"{defaults.kernel_package}.dtbs"
    out.mkdir(parents=True, exist_ok=True)
    try:
        return extract_member(Path(defaults.kernel_deb), spec.debian.dtb, out / name)
    except DownloadError:
        raise UserError(f"{defaults.kernel_package} has no device tree {spec.debian.dtb} "
                        f"for {spec.name}; pass --lkft-dtb") from None


def default_busybox(spec: QemuSpec, cache_root: Path, fetch: Fetch) -> Path:
    """busybox-static's binary for the device's Debian architecture (the Debian rootfs's
    loader, when the user gives the kernel)."""
    if spec.debian is None:
        raise UserError(f"{spec.name} has no Debian architecture in the device table; "
                        "--lkft-rootfs=debian needs a device with a `debian` entry")
    apt = Apt(spec.debian.arch, cache_root / "apt" / spec.debian.arch)
    apt.update()
    out = cache_root / "defaults" / spec.debian.arch
    out.mkdir(parents=True, exist_ok=True)
    return static_busybox(apt, out, fetch)


def static_busybox(apt: Apt, out: Path, fetch: Fetch) -> Path:
    """busybox-static's binary for apt's architecture, under `out`."""
    url, sha = apt.locate("busybox-static")
    return extract_member(fetch(url, sha), "bin/busybox", out / f"busybox-{sha[:16]}")


def _read_record(record: Path, lists_stamp: Path) -> DefaultArtifacts | None:
    """The recorded resolution, if newer than the package lists and its files still exist."""
    try:
        if record.stat().st_mtime < lists_stamp.stat().st_mtime:
            return None
        data = json.loads(record.read_text())
        found = DefaultArtifacts(
            Path(data["kernel"]), Path(data["rootfs"]), data["kernel_package"],
            data["busybox_package"], Path(data["kernel_deb"]), Path(data["kernel_config"]),
            Path(data["busybox"]))
    except (OSError, ValueError, KeyError):
        return None
    files = (found.kernel, found.rootfs, found.kernel_deb, found.kernel_config, found.busybox)
    return found if all(path.exists() for path in files) else None
