"""One execution of an LtpBuild: its steps, build.log, metadata.json, reproducer.sh.

The source is unpacked (or copied) into `<output>/src` and configured there, so the
user's tree is never written. Only the testcases directories that the chosen runtest
files name are built (`directories_for`); a directory that fails to build fails its own
tests, not the build: the build fails only when configure or the library does.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pytest_lkft.build.inputs import (
    Toolchain,
    compiler_version,
    os_release,
    uname,
    write_json,
    write_text,
)
from pytest_lkft.build.result import (
    ANSI,
    ERROR,
    FIRST_ERRORS,
    MAKE_ERROR,
    BuildError,
    ProgressCallback,
)
from pytest_lkft.build.result import BuildProgress as Progress
from pytest_lkft.build.run import Step
from pytest_lkft.settings.archs import Arch

PREFIX = "/opt/ltp"
# Directories with a build system of their own, not built per directory.
SEPARATE_BUILDS = ("testcases/open_posix_testsuite", "testcases/realtime")
SOURCED = re.compile(r"^\s*(?:\.|source)\s+([\w.+-]+\.sh)\b", re.MULTILINE)
ELF_MAGIC = b"\x7fELF"


class SourceListing(Protocol):
    """An LTP source as the build plan reads it, unpacked or not."""

    def files(self) -> dict[str, bool]:
        """Relative path -> executable, of every file under testcases/."""
        ...

    def script(self, relative: str) -> str:
        """The text of a shell script of `files()` ("" when it cannot be read)."""
        ...


def source_index(files: dict[str, bool]) -> dict[str, list[str]]:
    """Program name -> the testcases directories that build or install it (relative).

    A C file `x.c` makes program `x`; scripts keep their name (`x.sh`, `x.py`). The
    directory is the file's nearest one with a Makefile.
    """
    makefiles = {str(PurePosixPath(path).parent) for path in files
                 if PurePosixPath(path).name == "Makefile"}
    index: dict[str, list[str]] = {}
    for path, executable in sorted(files.items()):
        if any(path.startswith(s + "/") for s in SEPARATE_BUILDS):
            continue
        name = PurePosixPath(path).name
        directory = _made_in(str(PurePosixPath(path).parent), makefiles)
        if directory is None or not (name.endswith((".c", ".sh", ".py")) or executable):
            continue
        program = name[:-2] if name.endswith(".c") else name
        index.setdefault(program, [])
        if directory not in index[program]:
            index[program].append(directory)
    return index


def _made_in(directory: str, makefiles: set[str]) -> str | None:
    """The nearest directory at or above `directory` (within testcases/) with a Makefile."""
    path = PurePosixPath(directory)
    while path.parts[:1] == ("testcases",) and len(path.parts) > 1:
        if str(path) in makefiles:
            return str(path)
        path = path.parent
    return None


def runtest_entries(text: str) -> list[tuple[str, str]]:
    """(tag, command) of every test line of a runtest file, in order.

    Tag and command are separated by spaces or TABs (LTP's sched, syscalls, fs, mm and
    tracing files use TABs); blank lines and `#` comments are no test.
    """
    entries = []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if words and not words[0].startswith("#"):
            entries.append((words[0], words[1].strip() if len(words) > 1 else ""))
    return entries


def programs_of(command: str) -> list[str]:
    """The words of a runtest command that may be programs (not options or numbers)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    return [w for w in words if w and not w.startswith("-") and not w[0].isdigit() and "=" not in w]


def _lookup(program: str, index: dict[str, list[str]]) -> list[str]:
    """The directories of `program`; `x_64`, `x_16` variants are built beside `x`."""
    for name in (program, re.sub(r"_(?:64|16)$", "", program)):
        if name in index:
            return index[name]
    return []


def directories_for(source: SourceListing,
                    commands: list[str]) -> tuple[list[str], list[str]]:
    """(directories to build, sorted; programs found nowhere) for these runtest commands.

    Shell tests also need the libraries they source (`. fs_bind_lib.sh`), found the same way.
    """
    files = source.files()
    index = source_index(files)
    wanted: set[str] = set()
    unknown: list[str] = []
    pending = [(word, first) for command in commands
               for first, word in ((i == 0, w) for i, w in enumerate(programs_of(command)))]
    seen: set[str] = set()
    while pending:
        program, first = pending.pop()
        if program in seen:
            continue
        seen.add(program)
        found = _lookup(program, index)
        if not found and first and program not in unknown:
            unknown.append(program)
        wanted.update(found)
        if program.endswith(".sh"):
            pending += [(lib, False) for directory in found
                        for lib in SOURCED.findall(source.script(f"{directory}/{program}"))]
    wanted.discard("testcases/lib")  # built (and installed) before every directory
    trunks = [d + "/" for d in wanted]  # a directory's make builds its subdirectories too
    return sorted(d for d in wanted if not any(d.startswith(t) for t in trunks)), sorted(unknown)


class LtpSourceTree(Protocol):
    """What a run reads of the source: is it a directory."""

    @property
    def is_dir(self) -> bool: ...


class LtpInputs(Protocol):
    """What one run of the steps reads of a validated `ltp.LtpBuild`."""

    source: Path
    arch: Arch
    tool: Toolchain
    linking: str
    chosen: list[str]
    directories: list[str]
    unknown: list[str]
    jobs: int
    cache_dir: Path
    shown: str
    key_inputs: dict[str, Any]
    progress: ProgressCallback | None

    @property
    def src(self) -> LtpSourceTree: ...
    @property
    def triplet(self) -> str: ...
    @property
    def compiler(self) -> str: ...


class LtpBuildRun:
    """One execution of an LtpBuild into `<cache_dir>/<key>`: steps, log, metadata."""

    def __init__(self, build: LtpInputs, key: str) -> None:
        self.b, self.key = build, key
        self.out = (build.cache_dir / key[:32]).resolve()
        self.src, self.install = self.out / "src", self.out / "install"
        self.done: list[Step] = []
        self.first_errors: list[str] = []
        self.directories: dict[str, str] = {}
        self.steps: dict[str, str] = {}
        self.started = time.monotonic()
        self.env = {"LC_ALL": "C"}

    def make(self, directory: str, *args: str) -> Step:
        return Step("make", ("make", f"--jobs={self.b.jobs}", "-C", directory, *args), self.src)

    def configure(self) -> Step:
        b = self.b
        args = [f"--host={b.triplet}", f"--prefix={PREFIX}", f"CC={b.compiler}",
                f"PKG_CONFIG_LIBDIR={self.out / 'no-pkgconfig'}"]  # never the host's libraries
        if b.linking == "static":
            args.append("LDFLAGS=-static")
        return Step("configure", ("./configure", *args), self.src)

    def unpack(self) -> Step:
        if self.b.src.is_dir:
            return Step("unpack", ("cp", "-a", f"{self.b.source}/.", str(self.src)), self.out)
        return Step("unpack", ("tar", "-xf", str(self.b.source), "-C", str(self.src),
                               "--strip-components=1"), self.out)

    # -- execution --

    def execute(self) -> tuple[Path, dict[str, Any]]:
        """Run every step, then write metadata.json and reproducer.sh; (output, metadata)."""
        self.prepare()
        with (self.out / "build.log").open("w", errors="replace") as self.log:
            passed = self.run_stage("unpack", [self.unpack()]) and self.run_stage(
                "configure", [self.configure()]) and self.run_stage("lib", [
                    self.make("lib"), self.make("testcases/lib"),
                    self.make("testcases/lib", "install", f"DESTDIR={self.install}")])
            if passed:
                self.build_directories()
                self.finish()
        metadata = self.metadata(passed)
        write_json(self.out / "metadata.json", metadata)
        self.write_reproducer()
        return self.out, metadata

    def prepare(self) -> None:
        for stale in (self.src, self.install, self.out / "no-pkgconfig"):
            shutil.rmtree(stale, ignore_errors=True)
        for name in ("metadata.json", "ltp.tar.xz"):
            (self.out / name).unlink(missing_ok=True)
        try:
            for directory in (self.src, self.install, self.out / "no-pkgconfig"):
                directory.mkdir(parents=True)
        except OSError as error:
            raise BuildError(f"cannot use LTP build directory {self.out}: "
                             f"{error.strerror}") from None

    def run_stage(self, name: str, steps: list[Step]) -> bool:
        start = time.monotonic()
        ok = all(self.run_step(step) for step in steps)
        self.steps[name] = "PASS" if ok else "FAIL"
        self.log.write(f"I: {name}: {self.steps[name]} in {time.monotonic() - start:.1f}s\n")
        return ok

    def build_directories(self) -> None:
        """Build and install each directory the runtest files need; a failure is its own."""
        for program in self.b.unknown:
            self.log.write(f"W: no source builds {program!r} (a shell command?)\n")
        for directory in self.b.directories:
            ok = self.run_step(self.make(directory)) and self.run_step(
                self.make(directory, "install", f"DESTDIR={self.install}"))
            self.directories[directory] = "PASS" if ok else "FAIL"

    def finish(self) -> None:
        """Runtest files in, binaries stripped, the tarball made."""
        ltp = self.install / PREFIX.lstrip("/")
        runtest = ltp / "runtest"
        runtest.mkdir(parents=True, exist_ok=True)
        for name in self.b.chosen:
            shutil.copyfile(self.src / "runtest" / name, runtest / name)
        (ltp / "Version").write_text(self._version() + "\n")
        elves = sorted(str(p) for p in ltp.rglob("*") if p.is_file() and _is_elf(p))
        strip = "strip" if self.b.arch.native else f"{self.b.triplet}-strip"
        steps = []
        if elves:
            steps.append(Step("strip", (strip, "--strip-unneeded", *elves), self.out))
        steps.append(Step("tarball", ("tar", "--sort=name", "--owner=0", "--group=0",
                                      "--mtime=@0", "-I", "xz -T2 -3", "-cf",
                                      str(self.out / "ltp.tar.xz"), "-C", str(self.install),
                                      "opt"), self.out))
        self.run_stage("install", steps)

    def run_step(self, step: Step) -> bool:
        """Run one command, its output to build.log and the progress callback."""
        self.done.append(step)
        self.log.write(f"$ {step.shell(self.src)}\n")
        self.log.flush()
        tail: list[str] = []
        self.show(step, " ".join(step.argv[:4]))
        try:
            process = subprocess.Popen(step.argv, cwd=step.cwd, env={**os.environ, **self.env},
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, text=True, errors="replace")
        except OSError as error:
            raise BuildError(f"cannot run {step.argv[0]}: {error.strerror}") from None
        assert process.stdout is not None
        with process:
            for line in process.stdout:
                self.log.write(line)
                tail = [*tail[-(FIRST_ERRORS - 1):], line.rstrip()]
                clean = ANSI.sub("", line.rstrip())
                if (ERROR.search(clean) or MAKE_ERROR.search(clean)) and len(
                        self.first_errors) < FIRST_ERRORS:
                    self.first_errors.append(clean)
        if process.returncode != 0 and not self.first_errors:
            self.first_errors = tail or [f"{step.argv[0]} exited with {process.returncode}"]
        return process.returncode == 0

    def show(self, step: Step, line: str) -> None:
        if self.b.progress is not None:
            where = step.argv[3] if step.target == "make" else step.target
            self.b.progress(Progress(where, time.monotonic() - self.started, line))

    # -- records --

    def metadata(self, passed: bool) -> dict[str, Any]:
        """What was built, from what, with what, and how it went."""
        b = self.b
        artifacts = ["build.log", "install", "ltp.tar.xz"] if passed else ["build.log"]
        version = compiler_version(b.compiler)
        return {
            "build": {"target_arch": b.arch.name, "toolchain": b.tool.name, "linking": b.linking,
                      "host": b.triplet, "jobs": b.jobs, "environment": self.env},
            "compiler": {"name": "gcc", "version_full": version},
            "source": {"path": b.shown},
            "ltp": {"version": self._version(), "runtests": list(b.chosen),
                    "unresolved": b.unknown},
            "results": {"status": "PASS" if passed else "FAIL", "steps": self.steps,
                        "directories": self.directories, "artifacts": artifacts,
                        "duration": {"build": round(time.monotonic() - self.started, 3)}},
            "os": os_release(), "uname": uname(),
            "lkft": {"cache_key": self.key, "inputs": b.key_inputs,
                     "first_errors": "\n".join(self.first_errors), "output_dir": str(self.out)},
        }

    def _version(self) -> str:
        path = self.src / "VERSION"
        return path.read_text(errors="replace").strip() if path.is_file() else "unknown"

    def write_reproducer(self) -> None:
        """reproducer.sh: the same commands, in order."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        lines = ["#!/bin/sh", f"# Rebuilds {self.out} as `lkft ltp-build` did "
                 f"(cache key {self.key[:16]}).", "set -eu", f"export {exports}",
                 f"mkdir -p {shlex.quote(str(self.src))} {shlex.quote(str(self.install))}",
                 f"cd {shlex.quote(str(self.src))}",
                 *(step.shell(self.src) for step in self.done)]
        write_text(self.out / "reproducer.sh", "\n".join(lines) + "\n", mode=0o755)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == ELF_MAGIC
