"""Target architectures (`archs.yaml`): make's ARCH, the cross toolchain, the kernel image.

tuxmake's mapping, as data: builds read it for make, provisioning for the cross C library.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pytest_lkft.errors import UserError
from pytest_lkft.settings.tables import (
    data_path,
    depends_on_lab_dir,
    expect,
    make_entry,
    read_table,
)

ARCHS_FILE = "archs.yaml"


@dataclass(frozen=True)
class Arch:
    """One target architecture of `archs.yaml`."""

    name: str
    arch: str
    srcarch: str
    cross_compile: str
    machine: str
    kernel_image: str
    kernel_path: str
    dtbs: bool
    apt: str

    @property
    def libc_dir(self) -> Path | None:
        """The cross C library (libc6-<arch>-cross) that kselftest binaries are linked against."""
        found = Path("/usr") / self.cross_compile.rstrip("-") / "lib"
        return found if self.cross_compile and found.is_dir() else None

    @property
    def native(self) -> bool:
        """True when this machine builds the architecture without a cross compiler."""
        return platform.machine() == self.machine


@depends_on_lab_dir
@cache
def load_archs(path: Path | None = None) -> dict[str, Arch]:
    """The architectures of `archs.yaml` (packaged or --lkft-lab-dir), by name."""
    path = path or data_path(ARCHS_FILE)
    data = expect(path, read_table(path), dict, "the file")
    return {name: make_entry(Arch, path, name, entry) for name, entry in data.items()}


def get_arch(name: str) -> Arch:
    """The architecture called `name`, or a one-line error listing the valid ones."""
    archs = load_archs()
    if name not in archs:
        raise UserError(f"unknown architecture {name!r}; valid: {', '.join(sorted(archs))}")
    return archs[name]


def host_arch() -> str:
    """The architecture name of this machine (x86_64 when nothing matches)."""
    return next((a.name for a in load_archs().values() if a.native and a.name != "um"),
                "x86_64")
