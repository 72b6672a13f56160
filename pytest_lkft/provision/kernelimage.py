"""Tell a kernel image's architecture from its header, to refuse a wrong one before boot.

Only formats that are recognised with certainty are judged; anything else (raw or
compressed images of other kinds) is left to the boot, whose timeout catches it.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

# ELF e_machine -> kernel arch (as in qemu-devices.yaml)
ELF_MACHINES = {3: "i386", 8: "mips", 20: "powerpc", 21: "powerpc", 22: "s390", 40: "arm",
                42: "sh", 43: "sparc", 62: "x86_64", 183: "arm64", 243: "riscv", 4: "m68k"}
# Architectures that can run each other's images (x86_64 QEMU boots an i386 bzImage).
BANNER = re.compile(rb"Linux version (\S+ [^\x00\n]*)")
MAX_IMAGE = 256 * 1024 * 1024  # a gzip'd Image larger than this is not searched
COMPATIBLE = {"x86_64": {"x86_64", "i386", "x86"}, "i386": {"i386", "x86"}}


def image_arch(path: Path) -> str | None:
    """The architecture of the kernel image at `path`, or None when not recognised."""
    with path.open("rb") as f:
        head = f.read(0x240)
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        endian = "<" if head[5] == 1 else ">"
        (machine,) = struct.unpack_from(endian + "H", head, 18)
        return ELF_MACHINES.get(machine)
    if head[0x38:0x3C] == b"ARM\x64":
        return "arm64"
    if head[0x202:0x206] == b"HdrS":
        return "x86"
    if head[0x24:0x28] in (b"\x18\x28\x6f\x01", b"\x01\x6f\x28\x18"):
        return "arm"
    if head[0x30:0x34] == b"RSC\x05":
        return "riscv"
    return None


def arch_matches(device_arch: str, found: str | None) -> bool:
    """True when an image of arch `found` can boot on a device of `device_arch`."""
    if found is None:
        return True
    return found in COMPATIBLE.get(device_arch, {device_arch}) or (
        found == "x86" and device_arch in ("x86_64", "i386"))


def describe(found: str) -> str:
    """Human name of an image kind, for messages."""
    return {"x86": "an x86 bzImage"}.get(found, f"an {found} image")


def image_banner(path: Path) -> str:
    """The kernel's banner after "Linux version " (release, builder, distro version),
    read from the image without booting it: an x86 bzImage's header points at it, a raw or
    gzip'd Image or vmlinux holds it; '' when the image keeps it compressed otherwise."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if data[0x202:0x206] == b"HdrS" and len(data) > 0x210:
        (offset,) = struct.unpack_from("<H", data, 0x20E)
        text = data[0x200 + offset:0x200 + offset + 512].split(b"\x00")[0]
        return text.decode("utf-8", errors="replace").strip()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)[:MAX_IMAGE]
        except (OSError, EOFError, zlib.error):
            return ""
    found = BANNER.search(data)
    return found.group(1).decode("utf-8", errors="replace").strip() if found else ""


def kernel_facts(banner: str) -> dict[str, str]:
    """Run metadata from a banner: `kernel_version` (the release, as `uname -r`) and
    `kernel_banner`; nothing for an empty banner."""
    if not banner.strip():
        return {}
    return {"kernel_version": banner.split()[0], "kernel_banner": banner}
