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
from pytest_lkft.errors import UserError
from pytest_lkft.files import write_atomically
from pytest_lkft.provision.rootfs import ROOTFS_VERSION, busybox_initramfs
from pytest_lkft.settings.devices import DebianSource, QemuSpec

Fetch = Callable[[str, "str | None"], Path]


@dataclass(frozen=True)
class DefaultArtifacts:
    """What a device boots when the user gives no kernel and no rootfs."""

    kernel: Path
    rootfs: Path
    kernel_package: str
    busybox_package: str
    kernel_deb: str = ""  # the kernel's Debian package: its modules and config
    busybox: str = ""  # the static busybox binary


def default_artifacts(spec: QemuSpec, cache_root: Path, fetch: Fetch) -> DefaultArtifacts:
    """Kernel and busybox initramfs for `spec` from its Debian architecture's packages.

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
    record = out / f"{spec.debian.flavour}-{ROOTFS_VERSION}.json"
    found = _read_record(record, apt.root / "updated")
    if found is None:
        found = _resolve(apt, spec.debian, out, fetch)
        write_atomically(record, json.dumps(
            {k: str(v) for k, v in dataclasses.asdict(found).items()}).encode())
    return found


def _resolve(apt: Apt, debian: DebianSource, out: Path, fetch: Fetch) -> DefaultArtifacts:
    package = apt.kernel_package(debian.flavour)
    url, sha = apt.locate(package)
    deb = fetch(url, sha)
    kernel = extract_member(deb, debian.image, out / f"{package}.kernel")
    bb_url, bb_sha = apt.locate("busybox-static")
    busybox = extract_member(fetch(bb_url, bb_sha), "bin/busybox", out / f"busybox-{bb_sha[:16]}")
    rootfs = out / f"rootfs-{bb_sha[:16]}-{ROOTFS_VERSION}.cpio.gz"
    if not rootfs.exists():
        write_atomically(rootfs, busybox_initramfs(busybox))
    return DefaultArtifacts(kernel, rootfs, package, "busybox-static", str(deb), str(busybox))


def _read_record(record: Path, lists_stamp: Path) -> DefaultArtifacts | None:
    """The recorded resolution, if newer than the package lists and its files still exist."""
    try:
        if record.stat().st_mtime < lists_stamp.stat().st_mtime:
            return None
        data = json.loads(record.read_text())
        found = DefaultArtifacts(Path(data["kernel"]), Path(data["rootfs"]),
                                 data["kernel_package"], data["busybox_package"],
                                 data["kernel_deb"], data["busybox"])
    except (OSError, ValueError, KeyError):
        return None
    present = [found.kernel, found.rootfs, Path(found.kernel_deb), Path(found.busybox)]
    return found if all(path.exists() for path in present) else None
