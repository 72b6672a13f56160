"""What a kernel build gives: per-target status, artifacts, counts and metadata.

Shared by `kernel` (the inputs, the cache) and `run` (the steps), which both import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_lkft.build.inputs import Fragment, GitSource, Toolchain, read_json
from pytest_lkft.errors import InfraError
from pytest_lkft.settings.archs import Arch

TARGETS = ("config", "kernel", "modules", "dtbs", "headers", "kselftest", "perf")
DEFAULT_TARGETS = ("config", "kernel", "modules")
# A target runs only when the one it depends on passed (tuxmake's dependencies).
DEPENDS = {"kernel": "config", "modules": "kernel", "dtbs": "config", "headers": "config",
           "kselftest": "config"}
# What a passed target leaves in the output directory (those that exist).
ARTIFACTS = {"config": ("config",), "modules": ("modules.tar.xz",), "dtbs": ("dtbs.tar.xz",),
             "headers": ("headers.tar.xz",), "kselftest": ("kselftest.tar.xz",),
             "perf": ("perf.tar.xz",)}  # kernel: the arch's image and System.map
# tools/perf cross-built static, its optional libraries off: the build machine has none of
# them for the target (issue 18); what is left is what `perf test` needs on a device.
# -static goes to perf's own link only (EXTRA_PERFLIBS): LDFLAGS=-static also reaches the
# dlfilter shared objects of 6.1, whose link then fails (undefined __fini_array_start).
PERF_MAKE_VARS = ("NO_LIBELF=1", "NO_LIBTRACEEVENT=1", "NO_LIBPERL=1", "NO_LIBPYTHON=1",
                  "NO_SLANG=1", "NO_GTK2=1", "NO_LIBUNWIND=1", "NO_LIBDW_DWARF_UNWIND=1",
                  "NO_LIBNUMA=1", "NO_LIBAUDIT=1", "NO_LIBCRYPTO=1", "NO_LIBBPF=1",
                  "NO_JVMTI=1", "NO_LIBZSTD=1", "NO_LIBCAP=1", "NO_LIBBABELTRACE=1",
                  "NO_DEMANGLE=1", "NO_SDT=1", "EXTRA_PERFLIBS=-static", "WERROR=0")
WARNING = re.compile(r"\bwarning:")
ERROR = re.compile(r"\b(?:fatal )?error:|undefined reference to")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # gcc colours diagnostics (-fdiagnostics-color)
MAKE_ERROR = re.compile(r"^make(?:\[\d+\])?: \*\*\* ")  # in first_errors, not counted
FIRST_ERRORS = 10
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


class BuildError(InfraError):
    """A build could not run at all (make or a tool missing, disk full)."""


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildProgress:
    """What a progress callback receives: the target, seconds since the start, a make line."""

    target: str
    elapsed: float
    line: str


ProgressCallback = Callable[[BuildProgress], None]
Fetch = Callable[[str], Path]


@dataclass
class BuildResult:
    """A finished (or recorded) build: per-target status, artifacts, counts, metadata."""

    output_dir: Path
    metadata: dict[str, Any]
    first_errors: str = ""
    cached: bool = False

    @property
    def status(self) -> dict[str, str]:
        """PASS, FAIL or SKIP per target."""
        targets = self.metadata["results"]["targets"]
        return {name: str(info["status"]) for name, info in targets.items()}

    @property
    def passed(self) -> bool:
        """True when no target failed."""
        return bool(self.metadata["results"]["status"] == PASS)

    @property
    def warnings(self) -> int:
        """Compiler warnings in the build log."""
        return int(self.metadata["results"]["warnings"])

    @property
    def errors(self) -> int:
        """Error lines in the build log."""
        return int(self.metadata["results"]["errors"])

    def _artifact(self, target: str, suffix: str = "") -> Path | None:
        names = self.metadata["results"]["artifacts"].get(target, [])
        found = [n for n in names if n.endswith(suffix)]
        return self.output_dir / found[0] if found else None

    @property
    def kernel(self) -> Path | None:
        """The kernel image, if the kernel target passed."""
        return self._artifact("kernel", self.metadata["build"]["kernel_image"])

    @property
    def modules(self) -> Path | None:
        """modules.tar.xz, if modules were built."""
        return self._artifact("modules", ".tar.xz")

    @property
    def kselftest(self) -> Path | None:
        """kselftest.tar.xz, if kselftest was built."""
        return self._artifact("kselftest", ".tar.xz")

    @property
    def perf(self) -> Path | None:
        """perf.tar.xz (usr/bin/perf and perf's exec dir), if perf was built."""
        return self._artifact("perf", ".tar.xz")

    @property
    def dtbs(self) -> Path | None:
        """dtbs.tar.xz, if device trees were built."""
        return self._artifact("dtbs", ".tar.xz")

    @property
    def headers(self) -> Path | None:
        """headers.tar.xz, if headers were installed."""
        return self._artifact("headers", ".tar.xz")

    @property
    def config(self) -> Path | None:
        """The final .config."""
        return self._artifact("config", "config")

    @property
    def log(self) -> Path:
        """build.log."""
        return self.output_dir / "build.log"

    @classmethod
    def load(cls, output_dir: Path, cached: bool = False) -> BuildResult | None:
        """The build recorded in `output_dir`, or None when its metadata or artifacts are gone."""
        metadata = read_json(output_dir / "metadata.json")
        try:
            names = [n for files in metadata["results"]["artifacts"].values() for n in files]
        except (KeyError, AttributeError):
            return None
        if not all((output_dir / n).exists() for n in names):
            return None
        return cls(output_dir, metadata, metadata.get("lkft", {}).get("first_errors", ""), cached)


class BuildInputs(Protocol):
    """What one run of the build steps reads of a validated `kernel.KernelBuild`."""

    tree: Path
    arch: Arch
    tool: Toolchain
    kconfig: str
    kconfig_add: tuple[str, ...]
    base_kind: str
    fragments: list[Fragment]
    make_vars: dict[str, str]
    targets: tuple[str, ...]
    jobs: int
    wrapper: str
    key_inputs: dict[str, Any]
    git: GitSource | None  # the checkout's state the cache key was made of
    build_dir: Path | None
    cache_dir: Path
    progress: ProgressCallback | None

    def fetch_url(self, url: str) -> Path: ...
