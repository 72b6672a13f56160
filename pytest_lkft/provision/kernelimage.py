"""Tell a kernel image's architecture from its header, to refuse a wrong one before boot,
and refuse a file that cannot be a kernel image at all (too small, text, an archive).

Only formats that are recognised with certainty are judged; anything else (raw or
compressed images of other kinds) is left to the boot, whose silence and boot timeouts
catch it.
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


# The smallest kernel images (tinyconfig) are hundreds of KB; nothing under this boots.
MIN_SIZE = 64 * 1024
HEAD = 0x10010  # bytes read: s390's "S390EP" mark is at 0x10008
# (offset, magic, what the file is): files that are something else than a kernel image
NOT_KERNELS = ((0, b"070701", "a cpio archive"), (0, b"070702", "a cpio archive"),
               (0, b"070707", "a cpio archive"), (257, b"ustar", "a tar archive"),
               (1080, b"\x53\xef", "an ext2/3/4 filesystem image"),
               (0, b"\xd0\x0d\xfe\xed", "a device tree blob"), (0, b"PK\x03\x04", "a zip archive"))
ELF_NOT_RUNNABLE = {1: "an ELF relocatable object (a kernel module?)", 4: "an ELF core dump"}
TEXT = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(HEAD)


def not_a_kernel(path: Path) -> str:
    """What the file at `path` is when it cannot be a kernel image, "" when it may be one."""
    size = path.stat().st_size
    if size < MIN_SIZE:
        return f"{size} bytes, too small for one"
    head = _head(path)
    if head[:4] == b"\x7fELF" and len(head) >= 18:
        (kind,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 16)
        return ELF_NOT_RUNNABLE.get(kind, "")
    if _arch(head) is not None:
        return ""
    for offset, magic, what in NOT_KERNELS:
        if head[offset:offset + len(magic)] == magic:
            return what
    if set(head[:4096]) <= TEXT:
        lines = head[:4096].decode("ascii").strip().splitlines() or [""]
        return f"text: {lines[0][:40]!r}"
    return ""


def image_arch(path: Path) -> str | None:
    """The architecture of the kernel image at `path`, or None when not recognised."""
    return _arch(_head(path))


def _arch(head: bytes) -> str | None:
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
    if head[0x10008:0x1000E] == b"S390EP":
        return "s390"
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
