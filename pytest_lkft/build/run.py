"""One execution of a KernelBuild: its steps, build.log, metadata.json and reproducer.sh."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_lkft.build.inputs import (
    _git,
    ccache_stats,
    compiler_version,
    config_value,
    git_metadata,
    git_state,
    kernel_version,
    os_release,
    read_json,
    requested_options,
    uname,
    write_json,
    write_text,
)
from pytest_lkft.build.result import (
    ANSI,
    ARTIFACTS,
    DEPENDS,
    ERROR,
    FAIL,
    FIRST_ERRORS,
    MAKE_ERROR,
    PASS,
    PERF_MAKE_VARS,
    SKIP,
    TARGETS,
    WARNING,
    BuildError,
    BuildInputs,
    BuildProgress,
    BuildResult,
)
from pytest_lkft.errors import UserError

CONFIG_STATE = ".lkft-config.json"  # in the object tree: what its .config was made from


@dataclass(frozen=True)
class Step:
    """One command of the build: argv, the directory it runs in, the target it belongs to."""

    target: str
    argv: tuple[str, ...]
    cwd: Path

    def shell(self, tree: Path) -> str:
        """The command as reproducer.sh runs it (from the source tree)."""
        line = shlex.join(self.argv)
        return line if self.cwd == tree else f"(cd {shlex.quote(str(self.cwd))} && {line})"



class BuildRun:
    """One execution of a KernelBuild into its output directory: steps, log, metadata.

    Targets run in TARGETS order; a failing step fails its target and the targets that
    depend on it are skipped, the others still run (make's --keep-going, one level up).
    """

    def __init__(self, build: BuildInputs, key: str) -> None:
        self.b, self.key = build, key
        self.out = (build.build_dir or build.cache_dir / key[:32]).expanduser().resolve()
        self.obj = self.out / "build"
        self.results: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, list[str]] = {"log": ["build.log"]}
        self.done: list[Step] = []
        self.first_errors: list[str] = []
        self.warnings = self.errors = 0
        self.unmet: list[str] = []
        self.started = time.monotonic()
        self.shown = 0.0
        self.timestamp = self._timestamp()
        self.env = {"KBUILD_BUILD_TIMESTAMP": f"@{self.timestamp}", "KBUILD_BUILD_USER": "lkft",
                    "KBUILD_BUILD_HOST": "lkft", "LC_ALL": "C"}

    def _timestamp(self) -> int:
        committed = _git(self.b.tree, "log", "-1", "--format=%ct")
        if committed and committed.strip().isdigit() and self.in_git():
            return int(committed.strip())
        return int((self.b.tree / "Makefile").stat().st_mtime)

    def in_git(self) -> bool:
        """True for a git checkout: the cache key's source state says so already."""
        source = self.b.key_inputs.get("source", {})
        if "kind" in source:
            return bool(source["kind"] == "git")
        return git_state(self.b.tree) is not None

    # -- commands --

    def make(self, *args: str) -> tuple[str, ...]:
        """The top-level make command as tuxmake runs it, with `args` at the end."""
        tool_vars = self.b.tool.make_vars(self.b.arch, self.b.wrapper)
        variables = [f"{k}={v}" for k, v in {**tool_vars, **self.b.make_vars}.items()]
        return ("make", "--keep-going", f"--jobs={self.b.jobs}", f"O={self.obj}", *variables,
                *args)

    def tar(self, source: Path, name: str, *members: str) -> tuple[str, ...]:
        """A reproducible tarball command (sorted, root-owned, clamped times)."""
        return ("tar", "--sort=name", "--owner=0", "--group=0", f"--mtime=@{self.timestamp}",
                "--clamp-mtime", "-cJf", str(self.out / name), "-C", str(source), *members)

    def steps_for(self, target: str) -> list[Step] | None:
        """The commands of `target`, None when it does not apply (modules without MODULES)."""
        plan: dict[str, Callable[[], list[tuple[str, ...]] | None]] = {
            "config": self._config, "kernel": self._kernel, "modules": self._modules,
            "dtbs": self._dtbs, "headers": self._headers, "kselftest": self._kselftest,
            "perf": self._perf}
        commands = plan[target]()
        if commands is None:
            return None
        return [self._step(target, command) for command in commands]

    def _step(self, target: str, command: tuple[str, ...]) -> Step:
        """A step run in the source tree, or in the object tree when it starts `@obj`."""
        if command[0] == "@obj":
            return Step(target, command[1:], self.obj)
        return Step(target, command, self.b.tree)

    def _config(self) -> list[tuple[str, ...]]:
        b, obj = self.b, self.obj
        steps: list[tuple[str, ...]] = []
        if b.base_kind == "make":
            steps.append(self.make(b.kconfig))
        else:
            steps.append(("cp", str(self.out / "kconfig" / "base.config"), str(obj / ".config")))
        merge = str(b.tree / "scripts" / "kconfig" / "merge_config.sh")
        for kind, value in self.fragment_groups():
            if kind == "make":
                steps.append(self.make(value))
            else:  # merge_config.sh makes its temporary files in the current directory
                steps.append(("@obj", "sh", merge, "-m", "-O", str(obj), str(obj / ".config"),
                              value))
        if b.fragments or b.base_kind != "make":
            steps.append(self.make("olddefconfig"))
        steps.append(("cp", str(obj / ".config"), str(self.out / "config")))
        return steps

    def _kernel(self) -> list[tuple[str, ...]]:
        arch = self.b.arch
        return [self.make(arch.kernel_image),
                ("cp", str(self.obj / arch.kernel_path), str(self.out / arch.kernel_image)),
                ("cp", str(self.obj / "System.map"), str(self.out / "System.map"))]

    def _modules(self) -> list[tuple[str, ...]] | None:
        if config_value(self.obj / ".config", "MODULES") != "y":
            return None
        install = self.obj / "modinstall"
        # modules_install links lib/modules/<release>/build and source to this machine's
        # trees: links out of the device's rootfs, which its overlay refuses (issue 18)
        links = ("find", str(install / "lib" / "modules"), "-maxdepth", "2", "-type", "l",
                 "(", "-name", "build", "-o", "-name", "source", ")", "-delete")
        return [self.make("modules"), ("rm", "-rf", str(install)),
                self.make("modules_install", f"INSTALL_MOD_PATH={install}", "INSTALL_MOD_STRIP=1"),
                links, self.tar(install, "modules.tar.xz", "lib")]

    def _dtbs(self) -> list[tuple[str, ...]] | None:
        if not self.b.arch.dtbs or config_value(self.obj / ".config", "OF") != "y":
            return None
        install = self.obj / "dtbsinstall"
        return [self.make("dtbs"), ("rm", "-rf", str(install)),
                self.make("dtbs_install", f"INSTALL_DTBS_PATH={install}/dtbs"),
                self.tar(install, "dtbs.tar.xz", "dtbs")]

    def _headers(self) -> list[tuple[str, ...]]:
        install = self.obj / "install_hdr"
        return [("rm", "-rf", str(install)),
                self.make("headers_install", f"INSTALL_HDR_PATH={install}"),
                self.tar(install, "headers.tar.xz", ".")]

    def _kselftest(self) -> list[tuple[str, ...]]:
        b, install = self.b, self.obj / "kselftest_install"
        tool_vars = b.tool.make_vars(b.arch, "")
        cross = [f"{k}={v}" for k, v in tool_vars.items() if k in ("ARCH", "CROSS_COMPILE", "LLVM")]
        user = [f"{k}={v}" for k, v in b.make_vars.items()]
        selftests = b.tree / "tools" / "testing" / "selftests"
        return [self.make("headers"), ("rm", "-rf", str(install)),
                ("make", "--keep-going", f"--jobs={b.jobs}", "-C", str(selftests), *cross,
                 f"O={self.obj}", f"INSTALL_PATH={install}", *user, "install"),
                self.tar(install, "kselftest.tar.xz", ".")]

    def _perf(self) -> list[tuple[str, ...]]:
        """tools/perf for the target, static (PERF_MAKE_VARS), installed under usr/ and
        packed as perf.tar.xz (tuxmake's perf target); its objects in <obj>/tools/perf."""
        b, install, out = self.b, self.obj / "perf_install", self.obj / "tools" / "perf"
        tools = [f"{k}={v}" for k, v in b.tool.make_vars(b.arch, b.wrapper).items()]
        return [("rm", "-rf", str(install)), ("mkdir", "-p", str(out)),
                ("make", f"--jobs={b.jobs}", "-C", str(b.tree / "tools" / "perf"), *tools,
                 f"O={out}", *PERF_MAKE_VARS, "prefix=/usr", f"DESTDIR={install}",
                 "install-bin"),
                self.tar(install, "perf.tar.xz", ".")]

    def fragment_groups(self) -> list[tuple[str, str]]:
        """('make', target) or ('merge', staged file) in order; inline lines grouped."""
        groups: list[tuple[str, str]] = []
        for index, fragment in enumerate(self.b.fragments):
            staged = self.out / "kconfig" / f"{index:02d}-{fragment.kind}.config"
            if fragment.kind == "make":
                groups.append(("make", fragment.value))
            elif fragment.kind == "inline" and groups and groups[-1][0] == "inline":
                continue  # staged into the group's first file
            elif fragment.kind == "inline":
                groups.append(("inline", str(staged)))
            else:
                groups.append(("merge", str(staged)))
        return groups

    def stage_inputs(self) -> None:
        """Copy the kconfig file and fragments into <output>/kconfig, for the reproducer too."""
        staging = self.out / "kconfig"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        b = self.b
        if b.base_kind != "make":
            shutil.copyfile(self._input(b.base_kind, b.kconfig), staging / "base.config")
        group: Path | None = None
        for index, fragment in enumerate(b.fragments):
            staged = staging / f"{index:02d}-{fragment.kind}.config"
            if fragment.kind == "inline":
                if group is None:
                    group = staged
                with group.open("a") as f:
                    f.write(fragment.value + "\n")
                continue
            group = None
            if fragment.kind in ("file", "url"):
                shutil.copyfile(self._input(fragment.kind, fragment.value), staged)

    def _input(self, kind: str, value: str) -> Path:
        """A kconfig input's file: fetched when it is a URL."""
        if kind == "url":
            return self.b.fetch_url(value)
        return Path(value).expanduser()

    # -- execution --

    def execute(self) -> BuildResult:
        """Run every target, then write metadata.json and reproducer.sh."""
        self.prepare()
        before = ccache_stats() if self.b.wrapper else {}
        with (self.out / "build.log").open("w", errors="replace") as self.log:
            self.stage_inputs()
            for target in self.ordered_targets():
                self.run_target(target)
        self.remember_config()
        metadata = self.metadata(before)
        write_json(self.out / "metadata.json", metadata)
        self.write_reproducer()
        return BuildResult(self.out, metadata, metadata["lkft"]["first_errors"])

    def prepare(self) -> None:
        """Make the output and object directories; drop a previous run's artifacts."""
        try:
            self.obj.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"cannot use build directory {self.out}: {error.strerror}; "
                            "pass another --lkft-build-dir") from None
        made = [name for names in ARTIFACTS.values() for name in names]
        for name in ("metadata.json", "System.map", self.b.arch.kernel_image, *made):
            (self.out / name).unlink(missing_ok=True)

    def ordered_targets(self) -> list[str]:
        """The asked targets plus what they depend on, in TARGETS order."""
        wanted = set(self.b.targets)
        for target in list(wanted):
            while target in DEPENDS:
                target = DEPENDS[target]
                wanted.add(target)
        return [t for t in TARGETS if t in wanted]

    def run_target(self, target: str) -> None:
        """Run one target's steps unless its dependency failed; record status and artifacts."""
        start = time.monotonic()
        dependency = DEPENDS.get(target)
        steps = None
        if dependency is None or self.results[dependency]["status"] == PASS:
            steps = self.steps_for(target)
        self.show(target, "starting", force=True)
        status = SKIP
        if steps is not None and target == "config" and self.config_unchanged():
            status = self.keep_config(steps)
        elif steps is not None:
            status = PASS if all(self.run_step(step) for step in steps) else FAIL
        duration = round(time.monotonic() - start, 3)
        self.results[target] = {"status": status, "duration": duration}
        self.log.write(f"I: {target}: {status} in {duration:.1f}s\n")
        if status == PASS:
            self.artifacts[target] = self.target_artifacts(target)
        if target == "config" and status == PASS:
            self.check_fragments()

    # -- an unchanged config is kept (issue 12: a bisection's steps share one object tree) --

    def config_inputs(self) -> str:
        """Digest of what the config steps are given: commands, staged fragments, compiler."""
        commands = [step.argv for step in self.steps_for("config") or []]
        digest = hashlib.sha256(json.dumps([commands, self.b.key_inputs["compiler"]]).encode())
        for path in sorted((self.out / "kconfig").glob("*")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def config_sources(self) -> list[str] | None:
        """The tree's files the config depends on: every Kconfig file kbuild read (its
        include/config/auto.conf.cmd, written when make synced this .config), the top
        Makefile, kconfig itself and the config targets' files; None when unknown."""
        cmd, config = self.obj / "include" / "config" / "auto.conf.cmd", self.obj / ".config"
        if not cmd.is_file() or cmd.stat().st_mtime_ns < config.stat().st_mtime_ns:
            return None
        head = cmd.read_text(errors="replace").split("\n\n", 1)[0]
        listed = re.findall(r"^\t(\S+)(?: \\)?$", head, re.MULTILINE)
        tree = self.b.tree
        dirs = [tree / "scripts" / "kconfig", tree / "kernel" / "configs",
                tree / "arch" / self.b.arch.srcarch / "configs"]
        found = [str(p.relative_to(tree)) for d in dirs if d.is_dir() for p in d.iterdir()]
        return sorted({*listed, "Makefile", *found})

    def config_stamps(self, names: list[str]) -> dict[str, list[int]]:
        """Size and mtime of each file and of the .config (a checkout rewrites exactly the
        files it changes)."""
        paths = {name: self.b.tree / name for name in names}
        paths[str(self.obj / ".config")] = self.obj / ".config"
        stamps: dict[str, list[int]] = {}
        for name, path in paths.items():
            found = path.stat() if path.exists() else None
            stamps[name] = [found.st_size, found.st_mtime_ns] if found else []
        return stamps

    def config_unchanged(self) -> bool:
        """True when this object tree's .config came from the same inputs and no file it
        depends on changed since, so the config steps would write the same .config."""
        state_path = self.obj / CONFIG_STATE
        state = read_json(state_path)
        state_path.unlink(missing_ok=True)  # written again once this build's config passes
        if state.get("inputs") != self.config_inputs() or not state.get("sources"):
            return False
        return bool(state["stamps"] == self.config_stamps(state["sources"]))

    def keep_config(self, steps: list[Step]) -> str:
        """Skip the config steps (reproducer.sh keeps them) and publish the kept .config."""
        self.log.write("I: config: the object tree's .config is kept: same inputs, and no "
                       "Kconfig file changed since it was made\n")
        self.done += steps[:-1]
        return PASS if self.run_step(steps[-1]) else FAIL  # its copy to <output>/config

    def remember_config(self) -> None:
        """After a build whose config passed, note its inputs and the files it read."""
        sources = None
        if self.results.get("config", {}).get("status") == PASS:
            sources = self.config_sources()
        if sources is not None:
            write_json(self.obj / CONFIG_STATE, {"inputs": self.config_inputs(),
                                                 "sources": sources,
                                                 "stamps": self.config_stamps(sources)})

    def target_artifacts(self, target: str) -> list[str]:
        """The files of the output directory a passed target made."""
        names = ARTIFACTS.get(target, (self.b.arch.kernel_image, "System.map"))
        return [n for n in names if (self.out / n).exists()]

    def run_step(self, step: Step) -> bool:
        """Run one command, its output to build.log and the progress callback."""
        self.done.append(step)
        self.log.write(f"$ {step.shell(self.b.tree)}\n")
        self.log.flush()
        tail: list[str] = []
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
                self.count(line.rstrip())
                self.show(step.target, line.rstrip())
        if process.returncode != 0 and not self.first_errors:
            self.first_errors = tail or [f"{step.argv[0]} exited with {process.returncode}"]
        return process.returncode == 0

    def count(self, line: str) -> None:
        """Count warnings and errors; keep the first error lines."""
        line = ANSI.sub("", line)
        if WARNING.search(line):
            self.warnings += 1
        elif ERROR.search(line) or MAKE_ERROR.search(line):
            self.errors += bool(ERROR.search(line))
            if len(self.first_errors) < FIRST_ERRORS:
                self.first_errors.append(line)

    def show(self, target: str, line: str, force: bool = False) -> None:
        """Hand progress to the callback, at most five times a second."""
        now = time.monotonic()
        if self.b.progress is None or (not force and now - self.shown < 0.2):
            return
        self.shown = now
        self.b.progress(BuildProgress(target, now - self.started, line))

    def check_fragments(self) -> None:
        """Log the fragment options the final .config does not have (merge_config.sh's check).

        The last fragment asking for an option wins, as in the merge.
        """
        wanted: dict[str, tuple[str, str]] = {}
        for source in self.fragment_files():
            for name, value in requested_options(source).items():
                wanted[name] = (value, source.name)
        final = self.obj / ".config"
        for name, (value, source_name) in wanted.items():
            got = config_value(final, name.removeprefix("CONFIG_")) or "n"
            if got != value:
                self.unmet.append(f"{name}={value} ({source_name}) is {got}")
        for line in self.unmet:
            self.log.write(f"W: kconfig: {line} in the final .config\n")

    def fragment_files(self) -> list[Path]:
        """The merged fragment files in order, `make:` ones found in the tree's configs."""
        b, files = self.b, []
        for kind, value in self.fragment_groups():
            if kind != "make":
                files.append(Path(value))
                continue
            for directory in (b.tree / "kernel" / "configs",
                              b.tree / "arch" / b.arch.srcarch / "configs"):
                if (directory / value).is_file():
                    files.append(directory / value)
                    break
        return files

    # -- records --

    def metadata(self, ccache_before: dict[str, int]) -> dict[str, Any]:
        """tuxmake's metadata groups, plus an `lkft` group with the cache key."""
        b = self.b
        overall = PASS
        if any(r["status"] == FAIL for r in self.results.values()):
            overall = FAIL
        version_full = compiler_version(b.tool.compiler(b.arch))
        data: dict[str, Any] = {
            "build": {"targets": list(b.targets), "target_arch": b.arch.name,
                      "toolchain": b.tool.name, "wrapper": b.wrapper or "none",
                      "environment": self.env, "kconfig": b.kconfig,
                      "kconfig_add": list(b.kconfig_add), "make_variables": b.make_vars,
                      "jobs": b.jobs, "runtime": "null", "verbose": True,
                      "kernel_image": b.arch.kernel_image},
            "compiler": {"name": b.tool.family, "version_full": version_full,
                         "version": next((w for w in reversed(version_full.split())
                                          if w[:1].isdigit()), "")},
            "source": {"tree": str(b.tree), "kernelversion": kernel_version(b.tree)},
            "results": {"status": overall, "targets": self.results,
                        "artifacts": self.artifacts, "errors": self.errors,
                        "warnings": self.warnings,
                        "duration": {"build": round(time.monotonic() - self.started, 3)}},
            "os": os_release(), "uname": uname(),
            "lkft": {"cache_key": self.key, "inputs": b.key_inputs,
                     "first_errors": "\n".join(self.first_errors),
                     "kconfig_unmet": self.unmet, "output_dir": str(self.out)},
        }
        git = git_metadata(b.tree, b.git) if self.in_git() else {}
        if git:
            data["git"] = git
        if ccache_before:
            after = ccache_stats()
            data["ccache"] = {k: after.get(k, 0) - v for k, v in ccache_before.items()}
        return data

    def write_reproducer(self) -> None:
        """reproducer.sh: the same commands, in order, from the source tree (tuxmake's)."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        lines = ["#!/bin/sh",
                 f"# Rebuilds {self.out} as `lkft build` did (cache key {self.key[:16]}).",
                 "set -eu", f"export {exports}", f"cd {shlex.quote(str(self.b.tree))}",
                 f"mkdir -p {shlex.quote(str(self.obj))}",
                 *(step.shell(self.b.tree) for step in self.done)]
        write_text(self.out / "reproducer.sh", "\n".join(lines) + "\n", mode=0o755)
