"""LTP builds, as kernel builds are: inputs checked first, a cache key, a log, metadata.

Lifecycle: `LtpBuild(...)` holds the inputs (an LTP source tarball or directory, the
architecture, the toolchain, static or dynamic linking, the runtest files to build);
`validate()` checks them, each bad one a one-line `UserError` before anything runs;
`run()` computes the cache key and, under a file lock, returns the recorded build or has
`pytest_lkft.build.ltprun.LtpBuildRun` make it: the source unpacked (never written in
place), `configure --host`, the library, then only the testcases directories the chosen
runtest files name, each installed under `install/opt/ltp`, stripped, with those runtest
files; `build.log`, `metadata.json`, `reproducer.sh` and `ltp.tar.xz` (the install tree,
what `--lkft-ltp` takes) beside them.

The data (architectures LTP builds for, LKFT's runtest set, the console's loglevel while the
tests run) is `data/ltp.yaml`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_lkft.artifacts.cache import default_cache_dir, locked
from pytest_lkft.build.inputs import Toolchain, compiler_version, file_digest, read_json
from pytest_lkft.build.ltprun import LtpBuildRun, directories_for, runtest_entries
from pytest_lkft.build.result import ProgressCallback
from pytest_lkft.errors import UserError
from pytest_lkft.settings.archs import Arch, get_arch
from pytest_lkft.settings.tables import (
    data_path,
    depends_on_lab_dir,
    expect,
    make_entry,
    read_table,
)

LTP_TABLE = "ltp.yaml"
CACHE_FORMAT = 1  # part of every cache key: bump when the build's commands change
LINKINGS = ("static", "dynamic")
# What makes a tree LTP's: its runtest files, the test library's header, and configure
# (a git checkout has none until `make autotools`).
LTP_MARKERS = ("runtest", "include/tst_test.h", "configure")
HOST_TOOLS = {"make": "make", "tar": "tar", "xz": "xz-utils"}


@dataclass(frozen=True)
class LtpArch:
    """An architecture LTP builds for: configure's --host triplet, the cross C library."""

    name: str
    triplet: str
    libc: str


@dataclass(frozen=True)
class LtpTable:
    """data/ltp.yaml: the architectures, LKFT's default runtest files, and the console's
    loglevel while the tests run."""

    archs: dict[str, LtpArch]
    runtests: tuple[str, ...]
    console_loglevel: int


@depends_on_lab_dir
@cache
def load_ltp_table(path: Path | None = None) -> LtpTable:
    """The LTP table (packaged or --lkft-lab-dir)."""
    path = path or data_path(LTP_TABLE)
    data = expect(path, read_table(path), dict, "the file")
    archs = expect(path, data.get("archs"), dict, "archs")
    runtests = expect(path, data.get("runtests"), list, "runtests")
    level = data.get("console_loglevel")
    if type(level) is not int or not 1 <= level <= 8:
        raise UserError(f"{path}: console_loglevel must be a kernel loglevel from 1 to 8, not "
                        f"{level!r}; see the packaged {path.name}")
    return LtpTable({name: make_entry(LtpArch, path, name, entry) for name, entry in archs.items()},
                    tuple(str(name) for name in runtests), level)


def lkft_runtests() -> tuple[str, ...]:
    """LKFT's LTP suites, run by default."""
    return load_ltp_table().runtests


def console_loglevel() -> int:
    """The kernel console's loglevel while LTP's tests run (messages below it are shown)."""
    return load_ltp_table().console_loglevel


# -- the source --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LtpSource:
    """An LTP source: a tarball (one top directory, as releases are) or a directory."""

    path: Path
    shown: str  # as the user gave it (a URL stays a URL in messages)

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir()

    def check(self) -> None:
        """One-line UserError unless this is an LTP source with configure."""
        if not self.path.exists():
            raise UserError(f"LTP source {self.shown}: no such file or directory; pass an LTP "
                            "release tarball or source directory")
        found = self._present()
        missing = [marker for marker in LTP_MARKERS if marker not in found]
        if missing == ["configure"]:
            raise UserError(f"LTP source {self.shown} has no configure; run `make autotools` "
                            "in it, or pass a release tarball")
        if missing:
            raise UserError(f"{self.shown} is not an LTP source (no {', '.join(missing)}); pass "
                            "an LTP release tarball (ltp-YYYYMMDD.tar.xz) or source directory")

    def _present(self) -> set[str]:
        if self.is_dir:
            return {m for m in LTP_MARKERS if (self.path / m).exists()}
        try:
            with tarfile.open(self.path) as tar:
                names = {_below_top(n) for n in tar.getnames()}
        except (tarfile.TarError, OSError, EOFError):
            return set()
        return {m for m in LTP_MARKERS if m in names}

    def runtest_texts(self, names: list[str] | None = None) -> dict[str, str]:
        """Runtest file name -> text (all, or `names`), read in place."""
        texts: dict[str, str] = {}
        if self.is_dir:
            for path in sorted((self.path / "runtest").iterdir()):
                if path.is_file() and path.name != "Makefile" and (names is None
                                                                    or path.name in names):
                    texts[path.name] = path.read_text(errors="replace")
            return texts
        with tarfile.open(self.path) as tar:
            for member in tar.getmembers():
                inner = PurePosixPath(_below_top(member.name))
                if (member.isfile() and str(inner.parent) == "runtest" and inner.name != "Makefile"
                        and (names is None or inner.name in names)):
                    data = tar.extractfile(member)
                    texts[inner.name] = data.read().decode(errors="replace") if data else ""
        return dict(sorted(texts.items()))

    def files(self) -> dict[str, bool]:
        """Relative path -> executable, of every file under testcases/ (the build plan's
        view of the source, read once)."""
        return self._listing[0]

    def script(self, relative: str) -> str:
        """A shell script's text ("" when it cannot be read)."""
        if not self.is_dir:
            return self._listing[1].get(relative, "")
        try:
            return (self.path / relative).read_text(errors="replace")
        except OSError:
            return ""

    @cached_property
    def _listing(self) -> tuple[dict[str, bool], dict[str, str]]:
        """(`files()`, a tarball's shell scripts' texts)."""
        found: dict[str, bool] = {}
        scripts: dict[str, str] = {}
        if self.is_dir:
            for root, _, names in os.walk(self.path / "testcases"):
                for name in names:
                    path = Path(root, name)
                    found[str(path.relative_to(self.path))] = os.access(path, os.X_OK)
            return found, scripts
        with tarfile.open(self.path) as tar:
            for member in tar:
                inner = _below_top(member.name)
                if not (member.isfile() and inner.startswith("testcases/")):
                    continue
                found[inner] = bool(member.mode & 0o111)
                data = tar.extractfile(member) if inner.endswith(".sh") else None
                if data is not None:
                    scripts[inner] = data.read().decode(errors="replace")
        return found, scripts

    def digest(self, memo_dir: Path) -> dict[str, str]:
        """What the cache key knows of the source: a tarball's sha256, a tree's content."""
        if self.is_dir:
            from pytest_lkft.build.inputs import source_state

            return source_state(self.path, memo_dir)
        return {"kind": "tarball", "sha256": file_digest(self.path)}


def _below_top(name: str) -> str:
    """`ltp-20260529/runtest/mm` -> `runtest/mm` (a release tarball's one top directory)."""
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    return str(PurePosixPath(*parts[1:])) if len(parts) > 1 else ""


# -- the build ---------------------------------------------------------------------------------


@dataclass
class LtpBuild:
    """An LTP build: give the inputs, `validate()`, then `run()` for an LtpBuildResult.

    `runtests` are the runtest files whose tests are built (default: LKFT's set, those
    the source has), less the `skips` (a skipfile's tags, which never run). `cache_dir`
    holds the finished builds (`<key>/`) and the locks that make concurrent processes
    build a given key once.
    """

    source: Path
    target_arch: str = "arm64"
    toolchain: str = "gcc"
    linking: str = "static"
    runtests: tuple[str, ...] = ()
    skips: tuple[str, ...] = ()  # skipfile tags: they never run, so they are not built
    cache_dir: Path = field(default_factory=lambda: default_cache_dir() / "ltp-builds")
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    reuse: bool = True
    progress: ProgressCallback | None = None
    shown: str = ""

    def __post_init__(self) -> None:
        self.source = Path(self.source).expanduser().resolve()
        self.cache_dir = Path(self.cache_dir).expanduser()
        self.shown = self.shown or str(self.source)

    def validate(self) -> None:
        """Check every input; one-line UserError for the first bad one."""
        self.src = LtpSource(self.source, self.shown)
        self.src.check()
        self.check_toolchain()
        texts = self.src.runtest_texts()
        self.chosen = choose_runtests(list(texts), self.runtests, self.shown)
        skipped = set(self.skips)
        commands = [command for name in self.chosen for tag, command in
                    runtest_entries(texts[name]) if tag not in skipped]
        self.directories, self.unknown = directories_for(self.src, commands)

    def check_toolchain(self) -> None:
        """The architecture, toolchain, linking, cross compiler, C library and host tools."""
        self.arch, self.ltp_arch = ltp_arch(self.target_arch)
        self.tool = Toolchain.parse(self.toolchain)
        if self.tool.family != "gcc":
            raise UserError(f"LTP builds use gcc, not {self.toolchain}; pass gcc or gcc-N")
        if self.linking not in LINKINGS:
            raise UserError(f"unknown LTP linking {self.linking!r}; use static or dynamic")
        self.tool.check(self.arch)
        self._check_libc()
        for tool, package in HOST_TOOLS.items():
            if shutil.which(tool) is None:
                raise UserError(f"{tool} not found: LTP builds need `apt-get install {package}`")

    def _check_libc(self) -> None:
        if self.arch.native:
            return
        headers = Path("/usr") / self.ltp_arch.triplet / "include" / "stdio.h"
        if not headers.is_file():
            raise UserError(f"{headers} not found: an LTP build for {self.arch.name} needs "
                            f"`apt-get install {self.ltp_arch.libc}`")

    @property
    def triplet(self) -> str:
        """configure's --host."""
        return self.ltp_arch.triplet

    @property
    def compiler(self) -> str:
        """The C compiler: the cross gcc, or the host's when it builds natively."""
        if self.arch.native:
            return "gcc" if not self.tool.version else f"gcc-{self.tool.version}"
        return self.tool.compiler(self.arch)

    def cache_key(self) -> str:
        """sha256 of the source, architecture, toolchain, linking, runtest files and the
    directories they need (a skipfile changes the key only when it changes those)."""
        inputs = {"format": CACHE_FORMAT, "source": self.src.digest(self.cache_dir / "sources"),
                  "arch": self.arch.name, "toolchain": self.tool.name,
                  "compiler": compiler_version(self.compiler), "linking": self.linking,
                  "runtests": sorted(self.chosen), "directories": self.directories}
        self.key_inputs = inputs
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def run(self) -> LtpBuildResult:
        """The build for these inputs: recorded if it exists, else made now and recorded."""
        self.validate()
        key = self.cache_key()
        lock = self.cache_dir / "locks" / f"{key}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with locked(lock, fcntl.LOCK_EX):
            found = self.lookup(key) if self.reuse else None
            if found is not None:
                return found
            return LtpBuildResult(*LtpBuildRun(self, key).execute())

    def cached(self) -> LtpBuildResult | None:
        """The recorded build for these inputs, None when it must be built."""
        self.validate()
        return self.lookup(self.cache_key())

    def lookup(self, key: str) -> LtpBuildResult | None:
        """The recorded build of `key` if its artifacts are still there."""
        found = LtpBuildResult.load(self.cache_dir / key[:32], cached=True)
        if found is None or found.metadata.get("lkft", {}).get("cache_key") != key:
            return None
        return found


def ltp_arch(name: str) -> tuple[Arch, LtpArch]:
    """The architecture and its LTP entry; one line when LTP cannot be built for it."""
    arch = get_arch(name)
    table = load_ltp_table().archs
    if name not in table:
        raise UserError(f"LTP cannot be built for {name} here; it builds for "
                        f"{', '.join(sorted(table))}")
    return arch, table[name]


def choose_runtests(available: list[str], wanted: tuple[str, ...], shown: str) -> list[str]:
    """The runtest files to use: `wanted` (all must exist), else LKFT's set, else all."""
    missing = [name for name in wanted if name not in available]
    if missing:
        have = ", ".join(available) or "none"
        raise UserError(f"--lkft-ltp-runtest {missing[0]}: no runtest/{missing[0]} in "
                        f"{shown}; it has: {have}")
    if wanted:
        return list(wanted)
    return [name for name in available if name in lkft_runtests()] or available


def missing_defaults(available: list[str]) -> list[str]:
    """LKFT's runtest files that this LTP does not have (said once, never dropped silently)."""
    return [name for name in lkft_runtests() if name not in available]


# -- what a build gives ------------------------------------------------------------------------


@dataclass
class LtpBuildResult:
    """A finished or recorded LTP build: the install tree, the tarball, the log, metadata."""

    output_dir: Path
    metadata: dict[str, Any]
    cached: bool = False

    @property
    def passed(self) -> bool:
        """True when configure and the library built (some test directories may have failed)."""
        return bool(self.metadata["results"]["status"] == "PASS")

    @property
    def install_dir(self) -> Path:
        """The /opt/ltp tree (runtest/, testcases/bin/)."""
        return self.output_dir / "install" / "opt" / "ltp"

    @property
    def tarball(self) -> Path:
        """ltp.tar.xz: the install tree with `opt/ltp/` member names."""
        return self.output_dir / "ltp.tar.xz"

    @property
    def log(self) -> Path:
        return self.output_dir / "build.log"

    @property
    def failed_dirs(self) -> list[str]:
        """testcases directories that did not build."""
        dirs = self.metadata["results"]["directories"]
        return [name for name, status in dirs.items() if status != "PASS"]

    @property
    def first_errors(self) -> str:
        return str(self.metadata["lkft"]["first_errors"])

    @property
    def linking(self) -> str:
        return str(self.metadata["build"]["linking"])

    @classmethod
    def load(cls, output_dir: Path, cached: bool = False) -> LtpBuildResult | None:
        """The build recorded in `output_dir`, None when its metadata or artifacts are gone."""
        metadata = read_json(output_dir / "metadata.json")
        try:
            names = metadata["results"]["artifacts"]
        except (KeyError, TypeError):
            return None
        if not all((output_dir / name).exists() for name in names):
            return None
        return cls(output_dir, metadata, cached)

    def summary(self) -> str:
        """Status, what was built and where, the first errors."""
        results = self.metadata["results"]
        origin = "from the build cache" if self.cached else (
            f"in {results['duration']['build']:.1f}s")
        dirs = results["directories"]
        lines = [f"ltp build: {results['status']} {origin}: {len(dirs) - len(self.failed_dirs)}"
                 f" of {len(dirs)} directories, {self.linking}, "
                 f"runtest {','.join(self.metadata['ltp']['runtests'])}",
                 f"install tree: {self.install_dir}", f"tarball: {self.tarball}",
                 f"log: {self.log}"]
        if self.failed_dirs:
            lines.append(f"failed directories: {', '.join(self.failed_dirs)}")
        if self.first_errors:
            lines.append("first errors:\n" + self.first_errors)
        return "\n".join(lines)
