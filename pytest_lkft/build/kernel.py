"""Kernel builds as tuxmake runs them: out of tree, kconfig plus fragments, artifacts, a cache.

Lifecycle: `KernelBuild(...)` holds the inputs; `validate()` checks them all (one-line
`UserError`s, before make starts); `run()` computes the cache key, and under a file lock
either returns the recorded build or has a `BuildRun` (`run`) run the steps and
record them (`metadata.json`, `reproducer.sh`). `build(**kwargs)` does both. The inputs
(toolchains, fragments, source state) live in `inputs`, what a build gives in `result`.

The source tree is never written to: make runs with `O=<output>/build`, and the kconfig
merge runs in the build directory. Every command and its output go to `build.log`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_lkft.artifacts.cache import default_cache_dir, locked
from pytest_lkft.build.inputs import (
    Fragment,
    GitSource,
    Toolchain,
    check_tree,
    compiler_version,
    file_digest,
    git_source,
    kconfig_kind,
    read_json,
    source_state,
    write_json,
)
from pytest_lkft.build.result import (
    DEFAULT_TARGETS,
    PERF_MAKE_VARS,
    TARGETS,
    BuildError,
    BuildProgress,
    BuildResult,
    Fetch,
    ProgressCallback,
)
from pytest_lkft.build.run import BuildRun
from pytest_lkft.errors import UserError
from pytest_lkft.settings.archs import Arch, get_arch, host_arch, load_archs

__all__ = ["Arch", "BuildError", "BuildProgress", "BuildResult", "DEFAULT_TARGETS", "Fragment",
           "KernelBuild", "TARGETS", "Toolchain", "build", "get_arch", "host_arch", "load_archs"]

# Variables the build sets itself (tuxmake's MAKE_VARIABLES_REJECTLIST).
RESERVED_MAKE_VARS = ("ARCH", "CC", "CROSS_COMPILE", "HOSTCC", "O", "LLVM",
                      "INSTALL_MOD_PATH", "INSTALL_DTBS_PATH", "INSTALL_HDR_PATH")
# Tools every kernel build runs, and the Debian package of each.
HOST_TOOLS = {"make": "make", "flex": "flex", "bison": "bison", "bc": "bc", "tar": "tar",
              "xz": "xz-utils"}
CACHE_FORMAT = 1  # part of every cache key: bump when the build's commands change


# -- the build --------------------------------------------------------------------------------


@dataclass
class KernelBuild:
    """A tuxmake-like build: give the inputs, `validate()`, then `run()` for a BuildResult.

    `build_dir` receives the artifacts (default: `<cache_dir>/<key>`) and the object tree
    in its `build/` subdirectory. `cache_dir` holds the index of finished builds and the
    locks that make concurrent processes build a given key once.
    """

    tree: Path
    target_arch: str = field(default_factory=host_arch)
    toolchain: str = "gcc"
    kconfig: str = "defconfig"
    kconfig_add: tuple[str, ...] = ()
    targets: tuple[str, ...] = DEFAULT_TARGETS
    make_vars: dict[str, str] = field(default_factory=dict)
    build_dir: Path | None = None
    cache_dir: Path = field(default_factory=lambda: default_build_cache())
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    ccache: bool = True
    reuse: bool = True  # False: run make even when the key is recorded (then record anew)
    progress: ProgressCallback | None = None
    fetch: Fetch | None = None
    git: GitSource | None = field(default=None, init=False, repr=False)  # read by cache_key

    def __post_init__(self) -> None:
        self.tree = Path(self.tree).expanduser().resolve()
        self.cache_dir = Path(self.cache_dir).expanduser()
        self.targets = tuple(dict.fromkeys(self.targets))

    # -- inputs --

    def validate(self) -> None:
        """Check every input; one-line UserError for the first bad one, before make runs."""
        check_tree(self.tree)
        self.arch = get_arch(self.target_arch)
        self.tool = Toolchain.parse(self.toolchain)
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise UserError(f"unknown build target {', '.join(unknown) or '(none)'}; "
                            f"valid: {', '.join(TARGETS)}")
        for name in self.make_vars:
            if name in RESERVED_MAKE_VARS or not re.match(r"^[A-Za-z_]\w*$", name):
                raise UserError(f"make variable {name} cannot be set: the build sets "
                                f"{', '.join(RESERVED_MAKE_VARS)} itself; use --lkft-toolchain "
                                "and --lkft-target-arch")
        self.base_kind = kconfig_kind(self.kconfig)
        self.fragments = [Fragment.parse(text) for text in self.kconfig_add]
        self.tool.check(self.arch)
        self.check_host_tools()
        self.wrapper = "ccache" if self.ccache and shutil.which("ccache") else ""

    def check_host_tools(self) -> None:
        """One-line UserError naming the package of a missing build tool."""
        tools = dict(HOST_TOOLS)
        if "kselftest" in self.targets:
            tools["rsync"] = "rsync"  # kselftest's install (lib.mk)
        for tool, package in tools.items():
            if shutil.which(tool) is None:
                raise UserError(f"{tool} not found: kernel builds need `apt-get install "
                                f"{package}`")

    def cache_key(self) -> str:
        """sha256 of the source state, config inputs, toolchain, architecture and targets."""
        memo = self.cache_dir / "sources"
        self.git = git_source(self.tree)  # the metadata's git group reuses it
        inputs = {
            "format": CACHE_FORMAT, "source": source_state(self.tree, memo, self.git),
            "arch": self.arch.name, "toolchain": self.tool.name,
            "compiler": compiler_version(self.tool.compiler(self.arch)),
            "kconfig": self._input_digest(self.base_kind, self.kconfig),
            "kconfig_add": [self._input_digest(f.kind, f.value) for f in self.fragments],
            "targets": sorted(self.targets), "make_vars": sorted(self.make_vars.items()),
        }
        if "perf" in self.targets:  # its own make variables, so a change to them rebuilds
            inputs["perf"] = list(PERF_MAKE_VARS)
        self.key_inputs = inputs
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def _input_digest(self, kind: str, value: str) -> str:
        if kind == "file":
            return f"file:{file_digest(Path(value).expanduser())}"
        if kind == "url":
            return f"url:{file_digest(self.fetch_url(value))}"
        return f"{kind}:{value}"

    def fetch_url(self, url: str) -> Path:
        if self.fetch is None:
            from pytest_lkft.artifacts.cache import ArtifactCache

            self.fetch = ArtifactCache(default_cache_dir()).fetch
        return self.fetch(url)

    # -- running --

    def run(self) -> BuildResult:
        """The build for these inputs: recorded if it exists, else made now and recorded.

        A file lock per key makes concurrent processes (xdist workers) build it once: the
        others wait, then find the recorded build.
        """
        self.validate()
        key = self.cache_key()
        lock = self.cache_dir / "locks" / f"{key}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with locked(lock, fcntl.LOCK_EX | fcntl.LOCK_NB) as got:
            if got:
                return self._run_locked(key)
        if self.progress is not None:
            self.progress(BuildProgress("wait", 0.0, "another process builds this kernel"))
        with locked(lock, fcntl.LOCK_EX):
            return self._run_locked(key)

    def _run_locked(self, key: str) -> BuildResult:
        found = self.lookup(key) if self.reuse else None
        wanted = self.build_dir.expanduser().resolve() if self.build_dir else None
        if found is not None and wanted in (None, found.output_dir):
            return found  # an explicit build_dir gets its own artifacts
        result = BuildRun(self, key).execute()
        if result.passed:
            write_json(self.cache_dir / "index" / f"{key}.json",
                       {"output_dir": str(result.output_dir)})
        return result

    def lookup(self, key: str) -> BuildResult | None:
        """The recorded build of `key` if all its artifacts are still there."""
        entry = read_json(self.cache_dir / "index" / f"{key}.json")
        if "output_dir" not in entry:
            return None
        found = BuildResult.load(Path(entry["output_dir"]), cached=True)
        if found is None or found.metadata.get("lkft", {}).get("cache_key") != key:
            return None
        return found


def default_build_cache() -> Path:
    """`<artifact cache>/builds`: $LKFT_CACHE_DIR or ~/.cache/lkft, then builds."""
    return default_cache_dir() / "builds"


def build(**kwargs: Any) -> BuildResult:
    """Validate and run a KernelBuild made from `kwargs` (see KernelBuild's fields)."""
    return KernelBuild(**kwargs).run()
